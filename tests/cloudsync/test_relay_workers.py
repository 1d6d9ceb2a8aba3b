"""The portal relay with ``serve --workers 2``: a box's socket is held by one worker, yet a
resident's request reaches it whichever worker the kernel hands the connection to."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from tests.cloudsync.helpers import Cloud, PgCluster, cli_provision, wait_for
from tests.conftest import free_port, wait_port
from tests.edge.portal.test_cloud import FAST


async def test_resident_requests_reach_the_box_from_any_worker(
    pg_cluster: PgCluster, make_config, run_box, tmp_path: Path
) -> None:
    db = await pg_cluster.new_database()
    port = free_port()
    bin_dir = Path(sys.executable).parent
    made = await asyncio.create_subprocess_exec(
        str(bin_dir / "qilu-cloudsync"), "ops-user", "--db", db, "--name", "root",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    admin = (await made.communicate())[0].decode().split()[-1]
    proc = await asyncio.create_subprocess_exec(
        str(bin_dir / "qilu-cloudsync"), "--log-level", "WARNING", "serve", "--db", db,
        "--blobs", str(tmp_path / "blobs"), "--port", str(port), "--workers", "2",
        "--relay-same-origin-unsafe",  # relayed pages on 127.0.0.1 (no wildcard DNS here)
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    cloud = Cloud(url=f"http://127.0.0.1:{port}", db=db, admin=admin, port=port)
    try:
        await asyncio.to_thread(wait_port, port, 30)
        await cloud.community(community="c1")
        config = make_config(extra=FAST)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        box = await run_box(config)
        relay = box.service("portal_relay")

        async def connected() -> bool:
            return relay.connected

        await wait_for(connected, 15)
        workers, answers = set(), []
        for _ in range(30):  # a fresh connection each time: the kernel spreads them
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{cloud.url}/healthz") as r:
                    workers.add((await r.json())["worker"])
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                async with s.get(f"{cloud.url}/r/at/c1") as r:
                    answers.append((r.status, "社区居民登录" in await r.text()))
        assert len(workers) == 2  # both workers answered some of the requests ...
        assert answers == [(200, True)] * 30  # ... and every resident request got through
        assert relay.served >= 30
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
