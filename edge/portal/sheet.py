"""A printable A4 sheet of login cards (``qilu-edge portal codes-sheet``): one card per
resident with their masked name, address, a QR code of the login link, the digits and the
expiry. Plain HTML + CSS (print from any browser, CJK fonts of the printing machine), eight
cards to a page, cut along the dashed lines."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edge.core.qr import qr_svg
from edge.portal.codes import group_digits, login_link, mask_name

CSS = """
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
body { margin: 0; font-family: "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Source Han Sans SC",
  "Microsoft YaHei", "PingFang SC", sans-serif; color: #212121; }
.sheet { display: grid; grid-template-columns: 1fr 1fr; grid-auto-rows: 68mm; gap: 0; }
.card { border: 0.3mm dashed #999; padding: 4mm; display: flex; gap: 4mm; align-items: center;
  break-inside: avoid; page-break-inside: avoid; }
.card svg { width: 38mm; height: 38mm; flex: none; }
.card .org { font-size: 3mm; color: #666; }
.card h2 { margin: 0 0 1mm; font-size: 4.2mm; color: #b71c1c; }
.card .who { font-size: 4mm; font-weight: bold; }
.card .addr { font-size: 3.4mm; color: #444; }
.card .code { font-size: 7mm; font-weight: bold; letter-spacing: 0.6mm; margin: 2mm 0 1mm;
  font-family: monospace, sans-serif; }
.card .note { font-size: 2.8mm; color: #555; line-height: 1.4; }
"""


def address(card: dict[str, Any]) -> str:
    parts = []
    if card.get("building"):
        parts.append(f"{card['building']}号楼")
    for key in ("unit", "room"):
        if card.get(key):
            parts.append(str(card[key]))
    return " ".join(parts)


def render(cards: list[dict[str, Any]], *, base: str, title: str, tz: str) -> str:
    """``cards``: issue_code results (code, name, building, unit, expires_at) + ``room``."""
    zone = ZoneInfo(tz)
    out = []
    for c in cards:
        link = login_link(base, c["code"])
        until = c["expires_at"].astimezone(zone) if isinstance(c["expires_at"], datetime) else None
        out.append(
            f'<div class="card" data-resident="{html.escape(c["resident_id"])}">'
            f"{qr_svg(link)}<div>"
            f'<div class="org">{html.escape(title)}</div><h2>居民端登录卡</h2>'
            f'<div class="who">{html.escape(mask_name(c.get("name") or ""))}</div>'
            f'<div class="addr">{html.escape(address(c))}</div>'
            f'<div class="code">{html.escape(group_digits(c["code"]))}</div>'
            '<div class="note">手机扫码，或打开居民端输入登录码。仅限本人使用一次'
            + (f"，{until:%Y-%m-%d %H:%M} 前有效" if until else "")
            + "。</div></div></div>"
        )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} 登录卡</title><style>{CSS}</style></head>"
        f'<body><div class="sheet">{"".join(out)}</div></body></html>'
    )
