"""Reading counts reach the real cloud service once, and ops see reach per item and area."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp

from tests.cloudsync.helpers import FAST_SYNC, cli_provision, start_cloud, wait_for
from tests.conftest import api_url
from tests.edge.portal.helpers import article, login, staff

FAST = FAST_SYNC + """
[portal]
stats_interval_s = 3600
"""


async def test_reading_counts_reach_the_cloud_once(make_config, run_box, tmp_path) -> None:
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    try:
        await cloud.community(community="c1")
        config = make_config(extra=FAST)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        box = await run_box(config)
        base = api_url(box)
        async with aiohttp.ClientSession() as s:
            await article(s, base, "a-1", "防汛通知", ["safety"], must_read=True)
            residents = [await login(s, base, f"r-{i}") for i in range(3)]
            for h in residents:
                for _ in range(2):
                    r = await s.post(
                        f"{base}/api/v1/portal/reads", headers=h, json={"content_id": "a-1"}
                    )
                    assert r.status == 201
            await s.post(f"{base}/api/v1/portal/acks", headers=residents[0],
                         json={"content_id": "a-1"})  # fmt: skip
            assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 1
            assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 0

        async def reach() -> dict | None:
            status, body = await cloud.call(
                "GET", "/api/v1/ops/stats/reading?group=content_community"
            )
            assert status == 200, body
            items = body["items"]
            return items[0] if items and items[0]["reads"] else None

        got = await wait_for(reach, 10)
        await asyncio.sleep(1.0)  # more heartbeats and uploads must not count anything twice
        got = await reach()
        assert got["content_id"] == "a-1" and got["community_id"] == "c1"
        assert (got["reads"], got["new_readers"], got["acks"]) == (6, 3, 1)
        status, body = await cloud.call("GET", "/api/v1/ops/stats/reading?group=community")
        assert status == 200, body
        assert body["items"][0]["area_path"].endswith("/c1/")
        # what reached the cloud holds counts only: no resident id in any uploaded payload
        db = sqlite3.connect(tmp_path / "cloud.db")
        payloads = [p for (k, p) in db.execute("SELECT kind, payload FROM records")]
        db.close()
        assert any('"qilu.v1.reading_stats"' in p for p in payloads)
        assert not any(f"r-{i}" in p for p in payloads for i in range(3))
    finally:
        await cloud.stop()
