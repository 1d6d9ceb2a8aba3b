"""Cross-site writes with a resident's session cookie (security probe 4).

The resident pages (/r/) are plain forms whose only guard was the cookie's ``SameSite=Lax``.
Lax keeps the cookie off *cross-site* posts only: a page on the same site but another origin
still posts with it. With ``--relay-domain`` every box's pages live on a sibling origin
(``<box id>.r.example.cn``), so a page served from one box's (or any sibling host's) origin
could make a logged-in resident of another community open that community's door, issue
passes or change their door PIN, without any click on the box's own confirmation page. On the
LAN, any page on the box's address at another port is the same site too.

Here Chromium resolves ``*.r.example.test`` to 127.0.0.1: the box is ``boxb.r.example.test``,
the attacker's page ``evil.r.example.test`` (another port), a real sibling origin.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from aiohttp import web

from tests.conftest import api_url, free_port
from tests.edge.portal.test_look_chromium import PHONE, config, log_in, seed
from tests.peers.chromium import browser

RESOLVE = "--host-resolver-rules=MAP *.r.example.test 127.0.0.1"


def granted_remote_opens(box: Any) -> int:
    con = sqlite3.connect(box.config.db_path)
    try:
        return con.execute("SELECT COUNT(*) FROM access_events WHERE method = 'remote'"
                           " AND decision = 'granted'").fetchone()[0]  # fmt: skip
    finally:
        con.close()


async def test_a_sibling_origin_cannot_open_a_door_with_the_residents_cookie(
    run_box, tmp_path
) -> None:
    box = await run_box(config(tmp_path))
    port = api_url(box).rsplit(":", 1)[1]
    base = f"http://boxb.r.example.test:{port}"
    codes = await seed(api_url(box))

    # the attacker's page: posts the door form of the resident's box as soon as it loads
    evil = web.Application()

    async def lure(_request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f"<form id=f method=post action='{base}/r/doors/d-east/open'></form>"
            "<script>document.getElementById('f').submit()</script>"))

    evil.router.add_get("/", lure)
    runner = web.AppRunner(evil)
    await runner.setup()
    evil_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", evil_port).start()
    try:
        async with browser(RESOLVE) as b:
            ctx = await b.new_context(**PHONE)
            page = await ctx.new_page()
            await log_in(page, base, codes["code1"])
            # she may open this door herself (after the confirmation page)
            assert granted_remote_opens(box) == 0
            resp = await page.goto(f"http://evil.r.example.test:{evil_port}/", timeout=15000)
            assert resp is not None
            await page.wait_for_url(f"{base}/**", timeout=10000)  # the form was posted
            await page.wait_for_load_state("load", timeout=10000)
            assert granted_remote_opens(box) == 0, "a sibling origin opened the door"

            # her own confirmation page still opens it (same origin)
            await page.goto(f"{base}/r/doors/d-east/open", timeout=15000)
            await page.click("#confirm-open")
            await page.wait_for_url(f"{base}/r/me**", timeout=10000)
            assert granted_remote_opens(box) == 1
            await ctx.close()
    finally:
        await runner.cleanup()
