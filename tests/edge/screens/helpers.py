"""Screen device keys for the tests: provisioned through the staff API, as an installer does."""

from __future__ import annotations

import aiohttp

from tests.conftest import STAFF_TOKEN


async def screen_key(base: str, screen_id: str) -> dict:
    """POST /api/v1/screens/<id>/key as staff: {"key", "player_url", ...}."""
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/v1/screens/{screen_id}/key",
                          headers={"Authorization": f"Bearer {STAFF_TOKEN}"}) as r:
            assert r.status == 201, await r.text()
            return await r.json()
