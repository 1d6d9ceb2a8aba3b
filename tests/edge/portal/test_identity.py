"""The portal session is the resident's identity for the access engine too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp

from tests.conftest import api_url
from tests.edge.portal.helpers import FAST, staff

DOOR = """
[[doors]]
id = "door-1"
type = "sim"
building = "5"
"""


async def test_portal_session_opens_doors_and_makes_passes(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST + DOOR))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await staff(
            s, "POST", f"{base}/api/v1/residents",
            json={"id": "r-501", "name": "李四", "building": "5"},
        )  # fmt: skip
        await staff(s, "PUT", f"{base}/api/v1/residents/r-501/access", json={"all_doors": True})
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes", json={"resident_id": "r-501"})
        r = await s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]})
        h = {"Authorization": f"Bearer {(await r.json())['token']}"}
        s.cookie_jar.clear()
        me = await (await s.get(f"{base}/api/v1/portal/me", headers=h)).json()
        assert (me["name"], me["building"]) == ("李四", "5")  # from the registry
        until = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        r = await s.post(
            f"{base}/api/v1/passes", headers=h, json={"doors": ["door-1"], "valid_to": until}
        )
        assert r.status == 201, await r.text()
        assert (await r.json())["resident_id"] == "r-501"
        r = await s.post(
            f"{base}/api/v1/passes",
            headers=h,
            json={"resident_id": "r-999", "doors": ["door-1"], "valid_to": until},
        )
        assert r.status == 403
        r = await s.post(f"{base}/api/v1/doors/door-1/open", headers=h)
        assert r.status in (200, 403), await r.text()
        body = await r.json()
        assert body.get("resident_id", "r-501") == "r-501"
        # after logout the same token no longer opens anything
        assert (await s.post(f"{base}/api/v1/portal/logout", headers=h)).status == 200
        r = await s.post(f"{base}/api/v1/doors/door-1/open", headers=h)
        assert r.status == 401
