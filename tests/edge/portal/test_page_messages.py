"""Security probe 4: the resident pages showed any ``?ok=`` / ``?err=`` text of their address
as the box's own green or red message, so a link to the box (or through the cloud, on its
trusted domain) could put "物业通知：您的门禁即将停用，请把登录码发给 138…" into a resident's
我的 page in the box's voice (content spoofing, phishing elderly residents). Only messages the
box itself put into its redirects are shown now."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from tests.conftest import api_url
from tests.edge.portal.test_look_chromium import config, seed

PHISH = "物业通知：您的门禁即将停用，请把登录码发给13800000000"


async def test_only_the_boxs_own_messages_show_on_its_pages(run_box, tmp_path) -> None:
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as phone:
        async with phone.post(f"{base}/r/login", data={"code": codes["code1"]}) as r:
            assert r.status == 200 and str(r.url).endswith("/r/read")
        for path in ("/r/me", "/r/pin", "/r/events", "/r/login"):
            for kind in ("err", "ok"):
                async with phone.get(f"{base}{path}?{kind}={quote(PHISH)}") as r:
                    assert PHISH not in await r.text(), (path, kind)
        # the box's own outcome still shows: a door opened after the confirmation
        async with phone.post(f"{base}/r/doors/d-east/open") as r:
            assert r.status == 200 and "门已打开（东门）" in await r.text()
        # ...and a refusal of its own, after a redirect
        async with phone.post(f"{base}/r/pin", data={"pin": "135790", "pin2": "135791"}) as r:
            assert "两次输入的密码不一样" in await r.text()
