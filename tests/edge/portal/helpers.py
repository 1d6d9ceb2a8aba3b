"""Shared steps of the portal tests: a box, staff calls, residents logged in by code."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.conftest import STAFF_TOKEN

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
FAST = """
[portal]
stats_interval_s = 3600
"""


async def staff(s: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with s.request(method, url, headers=STAFF, **kw) as r:
        body = await r.json()
        assert r.status < 300, (r.status, body)
        return body


async def login(
    s: aiohttp.ClientSession, base: str, rid: str, building: str = "1", name: str = ""
) -> dict[str, str]:
    """Issue a code as staff and spend it as the resident; bearer headers of the session."""
    code = await staff(
        s,
        "POST",
        f"{base}/api/v1/portal/codes",
        json={"resident_id": rid, "building": building, "name": name or rid},
    )
    async with s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]}) as r:
        assert r.status == 200, await r.text()
        tok = (await r.json())["token"]
    s.cookie_jar.clear()  # tests say who they are with the bearer header
    return {"Authorization": f"Bearer {tok}"}


async def article(
    s: aiohttp.ClientSession, base: str, aid: str, title: str, tags: list[str], **kw: Any
) -> None:
    await staff(
        s,
        "POST",
        f"{base}/api/v1/portal/articles",
        json={"id": aid, "title": title, "body": f"{title}的正文。\n第二段。", "tags": tags, **kw},
    )
