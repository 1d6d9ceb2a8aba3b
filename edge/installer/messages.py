"""The installer API's messages in the installer's language: Chinese unless the page (or a
script) asks for English (``Accept-Language: en`` or ``?lang=en``).

Every error answer carries ``error`` in that language, plus ``error_en`` and ``error_zh``, so a
script can match the English text whatever it sent and the page can switch without asking
again. Config validation errors (pydantic's English, with our file:line: field prefix) are put
into Chinese by :func:`config_zh`; a message it does not know keeps the English after a Chinese
lead-in, so nothing is lost.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from edge.core.http import json_error


def wants_english(request: web.Request) -> bool:
    q = request.query.get("lang")
    if q:
        return q.lower().startswith("en")
    first = request.headers.get("Accept-Language", "").split(",", 1)[0].strip().lower()
    return first.startswith("en")


def error(
    request: web.Request, status: int, en: str, zh: str, *, field: str | None = None,
    **extra: Any,
) -> web.Response:
    """A JSON error naming the problem in the installer's language (both texts included)."""
    text = en if wants_english(request) else zh
    return json_error(status, text, error_en=en, error_zh=zh, field=field, **extra)


# pydantic's (and our config loader's) English, most specific first: (pattern, Chinese).
_CONFIG = (
    (r"unknown key; did you mean '([^']*)'\??", r"没有这个配置项，您是不是要写 '\1'？"),
    (r"unknown key", "没有这个配置项"),
    (r"String should match pattern '.*'(?= \(got|$)", "格式不对"),
    (r"String should have at least (\d+) characters?", r"至少 \1 个字符"),
    (r"String should have at most (\d+) characters?", r"最多 \1 个字符"),
    (r"Input should be a valid integer[^(]*", "应为整数"),
    (r"Input should be a valid number[^(]*", "应为数字"),
    (r"Input should be a valid boolean[^(]*", "应为 true 或 false"),
    (r"Input should be a valid string", "应为文字"),
    (r"Input should be greater than or equal to (\S+)", r"不能小于 \1"),
    (r"Input should be greater than (\S+)", r"应大于 \1"),
    (r"Input should be less than or equal to (\S+)", r"不能大于 \1"),
    (r"Input should be less than (\S+)", r"应小于 \1"),
    (r"Input should be (.+?)(?= \(got|$)", r"应为 \1 之一"),
    (r"Field required", "必填"),
    (r"Value error, device id '([^']*)' is used twice", r"设备编号 '\1' 重复了"),
    (r"Value error, (.*)", r"取值不对：\1"),
    (r"' or '", "' 或 '"),
    (r"', '", "'、'"),
    (r" ?\(got (.*)\)$", r"（现在填的是 \1）"),
)
_WHERE = re.compile(r"^(?P<file>[^:]*):(?P<line>\d+|\?): (?P<rest>.*)$", re.S)


def config_zh(message: str) -> str:
    """A config validation error, e.g. ``edge.toml:3: box.community: String should match
    pattern ...`` -> ``配置第 3 行 box.community：格式不对（...）``."""
    first = message.splitlines()[0] if message else ""
    where = ""
    m = _WHERE.match(first)
    if m:
        where = f"配置第 {m['line']} 行 " if m["line"] != "?" else "配置 "
        first = m["rest"]
    field, sep, text = first.partition(": ")
    if not sep:
        field, text = "", first
    zh = text
    for pattern, repl in _CONFIG:
        zh = re.sub(pattern, repl, zh)
    if zh == text:  # nothing known in it: say so in Chinese and keep the details
        zh = f"取值不对（{text}）"
    head = f"{where}{field}：" if field else (where or "配置有误：")
    return f"{head}{zh}"


# The wizard's own refusals (edge/installer/setup_edit.py, provisioning.py): English -> Chinese.
_OWN = (
    (r"^cloud_url: the cloud is set by provisioning.*",
     "云端地址由“注册到云端”设置（或命令 `qilu-edge provision`），不写在配置文件里"),
    (r"^devices\.kind: must be doors, cameras or screens.*",
     "设备类型只能是 门（doors）、摄像头（cameras）或屏幕（screens）"),
    (r"^cloud_url: not a URL.*", "云端地址不是有效的网址"),
    (r"^cloud_url: expected http\(s\)://host\[:port\]", "云端地址应为 http(s)://主机[:端口]"),
    (r"^claim_code: required.*", "请填写认领码（在运维控制台生成）"),
    (r"^force: already provisioned as (\S+) at (\S+);.*",
     r"本机已注册到云端（\1，\2）；如要重新注册，请勾选“替换已有注册”"),
    (r"^claim_code: refused by the cloud: unknown, used or expired.*",
     "云端拒绝了认领码：不存在、已使用或已过期"),
    (r"^claim_code: refused by the cloud.*", "云端拒绝了认领码，请核对后重试"),
    (r"^cloud_url: cloud unreachable: (\S+): .*", r"连不上云端 \1：请检查网络和地址"),
    (r"^cloud_url: (\S+) is not a Qilu cloud.*", r"\1 不是齐鲁云端服务，请核对地址"),
    (r"^cloud_url: (\S+): (.*)", r"云端 \1 出错：\2"),
)


def own_zh(message: str) -> str | None:
    for pattern, repl in _OWN:
        if re.match(pattern, message, re.S):
            return re.sub(pattern, repl, message, count=1, flags=re.S)
    return None
