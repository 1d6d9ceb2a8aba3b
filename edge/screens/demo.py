"""Demo step: Chinese publicity content on the demo screen, to open in a browser."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import click

from edge.core.demo import say

DEMO_SCREEN = "scr-east"
# The [[screens]] table the demo config carries (edge/demo.py writes it).
DEMO_SCREEN_TOML = f"""
[[screens]]
id = "{DEMO_SCREEN}"
type = "sim"
name = "东门户外宣传屏"
tags = ["outdoor"]
power_on_at = "06:30"
power_off_at = "23:00"
brightness = {{ "06:30" = 70, "18:00" = 100 }}
"""

POSTER = """<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="900"
 viewBox="0 0 1600 900">
<rect width="1600" height="900" fill="#b71c1c"/>
<rect x="60" y="60" width="1480" height="780" fill="none" stroke="#ffd54f" stroke-width="12"/>
<text x="800" y="380" font-size="150" fill="#ffd54f" text-anchor="middle"
 font-family="WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif">党建引领 共建家园</text>
<text x="800" y="560" font-size="80" fill="#ffffff" text-anchor="middle"
 font-family="WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif">齐鲁智慧社区 · 邻里守望</text>
</svg>"""

NOTICES = [
    (
        "notice-water",
        "停水通知",
        "因管网检修，本周六 9:00–15:00 3号楼、4号楼暂停供水。\n请提前储水，不便之处敬请谅解。",
    ),
    (
        "notice-clinic",
        "社区义诊",
        "本周日上午 8:30 在社区服务中心开展免费义诊：\n测血压、血糖，中医咨询。欢迎居民参加。",
    ),
    (
        "notice-garbage",
        "垃圾分类",
        "可回收物、有害垃圾、厨余垃圾、其他垃圾\n请分类投放，共建美丽家园。",
    ),
]


async def step_screens(d: Any) -> None:
    """Publish a poster and three notices to the demo screen and say where to look."""
    api = d.api
    async with aiohttp.ClientSession(headers=d.headers) as s:
        r = await s.put(
            f"{api}/api/v1/screens/content/poster/file?title=党建宣传&duration_s=8",
            data=POSTER.encode(),
            headers={"Content-Type": "image/svg+xml"},
        )
        r.raise_for_status()
        for cid, title, body in NOTICES:
            item = {"id": cid, "kind": "html", "title": title, "body": body, "duration_s": 8}
            (await s.post(f"{api}/api/v1/screens/content", json=item)).raise_for_status()
        ids = ["poster", *(n[0] for n in NOTICES)]
        pl = {"id": "daily", "name": "日常宣传", "items": [{"content_id": c} for c in ids]}
        (await s.post(f"{api}/api/v1/screens/playlists", json=pl)).raise_for_status()
        entry = {"id": "all-day", "playlist_id": "daily", "tags": ["outdoor"]}
        (await s.post(f"{api}/api/v1/screens/schedules", json=entry)).raise_for_status()
        # The screen's device key (issue 13): the page plays only with it.
        async with s.post(f"{api}/api/v1/screens/{DEMO_SCREEN}/key") as r:
            r.raise_for_status()
            player = (await r.json())["player_url"]
    d.links["screen"] = player
    # A stand-in player on the screen's socket until the demo ends, so the commissioning
    # report sees the screen as a site would after the kiosk opened its address.
    d.tasks.append(asyncio.create_task(stand_in_player(player)))
    say(
        "A publicity screen (户外宣传屏) with Chinese content",
        f"  open {player} in a browser (full screen: F11; the key after '#' is this"
        " screen's device key)\n"
        f"  emergency broadcast: qilu-edge screens emergency '紧急通知：燃气检修' --minutes 2 "
        f"-c {d.work_dir.resolve() / 'edge.toml'}\n"
        f"  proof of play:       qilu-edge screens plays {DEMO_SCREEN} -c "
        f"{d.work_dir.resolve() / 'edge.toml'}",
    )
    click.echo("  the page keeps playing if you stop the demo box; its plays arrive when back")


async def stand_in_player(player_url: str) -> None:
    base, _, key = player_url.partition("#key=")
    ws_url = base.replace("http://", "ws://", 1) + "/ws?key=" + key
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_url, heartbeat=15) as ws:
        async for _msg in ws:  # plans and overlays: a browser would show them
            pass
