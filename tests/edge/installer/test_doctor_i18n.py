"""The doctor's details and fix hints in Chinese (default) and English: the CLI (a real pymodbus
peer and a Modbus door on a closed loopback port), --json with both texts, the installer page
in real Chromium switching language, and a catalogue with both texts for every check."""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import os
import re
import time
from pathlib import Path

import pytest

from edge.core.i18n import catalogue, fields, lang_from_env, registered
from tests.conftest import STAFF_TOKEN, api_url, free_port
from tests.edge.installer.modbus_peer import modbus_server
from tests.edge.installer.test_doctor import DOORS, doctor_cli, write

ROOT = Path(__file__).resolve().parents[3]
CJK = re.compile(r"[\u4e00-\u9fff]")
CHECK = (Path(__file__).resolve().parents[1] / "portal/contrast.js").read_text(encoding="utf-8")
ZH_RELAY = "检查继电器板的电源、接线和地址"
EN_RELAY = "check the relay board's power, wiring and address"


def no_locale() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("LANG", "LC_ALL", "LC_MESSAGES")}


def rows(out: str) -> dict[str, list[str]]:
    """check id -> its row and the fix line under it, from the human table."""
    got: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(" ") and (":" in parts[1] or parts[1].isalpha()):
            current = parts[1]
            got[current] = [line]
        elif current and line.startswith(" "):
            got[current].append(line)
    return got


@pytest.mark.timeout(120)
async def test_cli_chinese_by_default_english_on_request(tmp_path: Path) -> None:
    pytest.importorskip("drivers.doors.modbus")
    async with modbus_server((1,)) as (port, _):
        dead = free_port()  # nothing listens there: the door's driver goes offline
        path = write(tmp_path, DOORS.format(ok=port, dead=dead))

        # The four runs are independent (the doctor writes nothing): run them side by side,
        # each mostly waits on the dead door; then check each in turn.
        zh, en, en_env, as_json = await asyncio.gather(
            doctor_cli(path, lang=None, env=no_locale()),
            doctor_cli(path),  # --lang en
            doctor_cli(path, lang=None, env={**no_locale(), "LANG": "en_US.UTF-8"}),
            doctor_cli(path, "--json", lang=None, env=no_locale()),
        )
        code, out = zh
        assert code == 1, out
        door = "\n".join(rows(out)["door:door-dead"])
        assert door.startswith("失败") and "modbus：离线" in door, out
        assert f"修复：{ZH_RELAY}（`qilu-edge modbus scan`）" in door, door
        assert "check the" not in out and "未就绪：" in out and "1 项失败" in out
        assert rows(out)["door:door-ok"][0].startswith("通过")
        assert "还没有数据库" in out  # another check's detail, with its path kept
        assert str(tmp_path) in out

        code, out = en
        assert code == 1
        door = "\n".join(rows(out)["door:door-dead"])
        assert door.startswith("FAIL") and "modbus: offline" in door, out
        assert f"fix: {EN_RELAY} (`qilu-edge modbus scan`)" in door
        assert not CJK.search(out) and "NOT READY: " in out

        code, out = en_env
        assert code == 1 and f"fix: {EN_RELAY}" in out and not CJK.search(out)

        # --json: stable ids, status and message keys; both texts; detail/hint in the language
        code, out = as_json
    report = json.loads(out)
    assert report["lang"] == "zh"
    by = {c["id"]: c for c in report["checks"]}
    c = by["door:door-dead"]
    assert c["status"] == "fail" and c["hint_key"] == "door.hint"
    assert c["detail"] == c["detail_zh"] and c["hint"] == c["hint_zh"]
    assert ZH_RELAY in c["hint_zh"] and EN_RELAY in c["hint_en"]
    assert "modbus: offline" in c["detail_en"] and "modbus：离线" in c["detail_zh"]
    assert c["title_en"].startswith("Door door-dead") and c["title_zh"].startswith("门 door-dead")
    db = by["database"]
    assert db["detail_key"] == "database.none" and str(tmp_path) in db["detail_en"]
    assert str(tmp_path) in db["detail_zh"] and CJK.search(db["detail_zh"])
    assert by["broker"]["status"] == "skip" and by["broker"]["title"] == "消息代理"


def _catalogue_modules() -> list[str]:
    """Every module under edge/ that registers texts (a new feature's checks included)."""
    out = []
    for path in sorted((ROOT / "edge").rglob("*.py")):
        if "catalogue(" in path.read_text(encoding="utf-8") and path.name != "i18n.py":
            out.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return out


def _keys_used() -> dict[str, str]:
    """key -> file, for every T("check.reason", ...) call in edge/."""
    used = {}
    for path in sorted((ROOT / "edge").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "T" and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):  # fmt: skip
                used[node.args[0].value] = str(path.relative_to(ROOT))
    return used


def test_every_check_has_its_texts_in_both_languages(make_config) -> None:
    from edge.installer.doctor import Doctor

    modules = _catalogue_modules()
    assert "edge.installer.doctor_texts" in modules and "edge.sync.health" in modules
    for name in modules:
        importlib.import_module(name)
    texts = registered()
    for key, (en, zh) in texts.items():
        assert en.strip() and zh.strip(), key
        assert fields(en) == fields(zh), key  # neither language drops a port, path or name
        # Chinese words, or only values and punctuation ("{type}：{state}"): no English left
        words = re.search(r"[A-Za-z]", re.sub(r"\{[^}]*\}", "", zh))
        assert CJK.search(zh) or not words, f"{key}: no Chinese in {zh!r}"
    # every text a check asks for exists
    missing = {k: f for k, f in _keys_used().items() if k not in texts}
    assert not missing, missing
    # every check the doctor can plan has a title in both languages and texts under its id
    cfg = make_config(extra=(
        '[[doors]]\nid = "d1"\ntype = "sim"\n'
        '[[cameras]]\nid = "c1"\ntype = "file"\npath = "/nonexistent"\n'
        '[[screens]]\nid = "s1"\ntype = "sim"\n'
    ))  # fmt: skip
    plan = Doctor(config=cfg).plan()
    assert {"door:d1", "camera:c1", "screen:s1", "sync_quarantine"} <= {c.id for c in plan}
    for check in plan:
        en, sep, zh = check.title.partition(" / ")
        assert sep and en and CJK.search(zh), check.title
        prefix = check.id.split(":")[0] + "."
        assert any(k.startswith(prefix) for k in texts), f"no texts for the {check.id} check"
    for kind in ("door", "camera", "screen"):
        assert f"{kind}.hint" in texts


def test_a_text_without_chinese_is_refused() -> None:
    from edge.installer.doctor import Result

    with pytest.raises(ValueError, match="Chinese"):
        catalogue({"test_only.no_zh": ("port {port} closed", "")})
    with pytest.raises(ValueError, match="different values"):
        catalogue({"test_only.drops": ("port {port} closed", "端口已关闭")})
    with pytest.raises(TypeError, match="catalogue"):
        Result("disk", "", "fail", "plain English only")  # type: ignore[arg-type]
    assert "test_only.no_zh" not in registered()


def test_lang_from_env() -> None:
    assert lang_from_env({}) == "zh"
    assert lang_from_env({"LANG": "C.UTF-8"}) == "zh"
    assert lang_from_env({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert lang_from_env({"LANG": "en_US.UTF-8"}) == "en"
    assert lang_from_env({"LANG": "en_US.UTF-8", "LC_ALL": "zh_CN.UTF-8"}) == "zh"


def test_doctor_help_documents_the_language() -> None:
    from click.testing import CliRunner

    from edge.cli import main

    out = CliRunner().invoke(main, ["doctor", "--help"]).output
    assert "--lang [zh|en]" in out and "LANG=en_US.UTF-8" in out and "detail_zh" in out


async def _run_doctor_on_page(page, base: str, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/installer/", timeout=15000)
    await page.fill("#token", STAFF_TOKEN)
    await page.click("#signin-form button")
    await page.wait_for_selector("#signed:not([hidden])", timeout=10000)
    await page.click("[data-click=doctor]")
    await page.wait_for_selector("#verdict h3", timeout=40000)
    hint = page.locator("#report tr", has_text="door-dead").locator(".hint")
    said = await hint.inner_text()
    assert ZH_RELAY in said and "check the" not in said, said
    row = await page.locator("#report tr", has_text="door-dead").inner_text()
    assert "失败" in row and "门 door-dead" in row and "离线" in row, row
    assert await page.inner_text("#verdict") == "未就绪"
    got = await page.evaluate(CHECK)
    assert not got["bad"] and got["minText"] >= 16, got
    await page.screenshot(path=str(tmp_path / f"doctor-{name}-zh.png"), full_page=True)
    # English: the same results re-rendered at once, no new run
    await page.click("[data-click='lang:en']")
    await page.wait_for_function(
        "() => [...document.querySelectorAll('#report .hint')]"
        ".some(e => e.textContent.includes(\"check the relay board's power\"))",
        timeout=5000)  # fmt: skip
    said = await hint.inner_text()
    assert EN_RELAY in said and not CJK.search(said), said
    row = await page.locator("#report tr", has_text="door-dead").inner_text()
    assert "FAIL" in row and "Door door-dead" in row and "offline" in row, row
    assert await page.inner_text("#verdict") == "NOT READY"
    await page.screenshot(path=str(tmp_path / f"doctor-{name}-en.png"), full_page=True)
    await page.click("[data-click='lang:zh']")  # and back
    assert ZH_RELAY in await hint.inner_text()


@pytest.mark.timeout(150)
async def test_installer_page_doctor_hints_switch_language(make_config, run_box, tmp_path) -> None:
    pytest.importorskip("drivers.doors.modbus")
    from tests.peers.chromium import browser

    async with modbus_server((1,)) as (port, _):
        box = await run_box(make_config(extra=DOORS.format(ok=port, dead=free_port())))
        base = api_url(box)
        t0 = time.monotonic()
        async with browser() as b:
            for name, size in (("console", (1366, 768)), ("phone", (390, 844))):
                ctx = await b.new_context(viewport={"width": size[0], "height": size[1]})
                page = await ctx.new_page()
                await _run_doctor_on_page(page, base, tmp_path, name)
                await ctx.close()
        assert time.monotonic() - t0 < 120
    print("screenshots in", tmp_path)
