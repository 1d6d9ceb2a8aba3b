"""Two cloud "hosts" (two workers each, on 127.0.0.2 and 127.0.0.3) behind a real HAProxy
doing plain round-robin, one PostgreSQL: a resident's request reaches its box's relay socket
whichever worker it lands on (the relay bus, LISTEN/NOTIFY), and killing one host loses no
upload while every box reconnects to the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from edge.core.standard import AccessEvent
from edge.features import parse_config
from tests.cloudsync.helpers import VENV_BIN, Cloud, PgCluster, cli_provision, wait_for
from tests.cloudsync.hosts import HaProxy, Host, start_haproxy, start_host
from tests.conftest import box_toml
from tests.edge.portal.test_cloud import FAST

COMMUNITIES = ("c1", "c2")


@pytest.fixture
async def two_hosts(
    pg_cluster: PgCluster, tmp_path: Path
) -> AsyncIterator[tuple[list[Host], HaProxy, Cloud]]:
    db = await pg_cluster.new_database()
    for args in (("migrate", "--db", db), ("ops-user", "--db", db, "--name", "root")):
        proc = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "qilu-cloudsync"), *args, stdout=asyncio.subprocess.PIPE
        )
        out = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
        assert proc.returncode == 0
    admin = out.split()[-1]
    hosts = [
        await asyncio.to_thread(start_host, addr, db, tmp_path / "blobs")
        for addr in ("127.0.0.2", "127.0.0.3")
    ]
    lb = await asyncio.to_thread(start_haproxy, hosts, tmp_path)
    try:
        yield hosts, lb, Cloud(url=lb.url, db=db, admin=admin)
    finally:
        lb.stop()
        for h in hosts:
            h.stop()


async def resident_visits(url: str, community: str, n: int) -> list[tuple[int, bool]]:
    """n fresh resident sessions (new connections, so round-robin spreads them)."""
    got = []
    for _ in range(n):
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(f"{url}/r/at/{community}") as r:
                got.append((r.status, "社区居民登录" in await r.text()))
    return got


async def live_holders(db: str) -> dict[str, int]:
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT s.box_id, s.worker_pid FROM relay_sockets s JOIN pg_stat_activity a"
            " ON a.pid = s.worker_pid AND a.backend_start = s.worker_start"
        )
    finally:
        await conn.close()
    return {r["box_id"]: r["worker_pid"] for r in rows}


async def test_any_worker_any_host_and_a_host_dies(
    two_hosts: tuple[list[Host], HaProxy, Cloud], run_box, tmp_path: Path
) -> None:
    hosts, lb, cloud = two_hosts
    boxes = []
    for c in COMMUNITIES:
        await cloud.community(community=c)
        (tmp_path / c).mkdir()
        path = tmp_path / c / "edge.toml"
        path.write_text(box_toml(tmp_path / c, extra=FAST))
        config = parse_config(path.read_text(), source=path)
        await cli_provision(path, lb.url, await cloud.claim(c))
        boxes.append(await run_box(config))
    relays = [b.service("portal_relay") for b in boxes]

    async def all_connected() -> bool:
        return all(r.connected for r in relays) and len(await live_holders(cloud.db)) == 2

    await wait_for(all_connected, 20)

    # Every worker of both hosts answers through the balancer ...
    workers = set()
    for _ in range(16):
        async with aiohttp.ClientSession() as s, s.get(f"{lb.url}/healthz") as r:
            workers.add((await r.json())["worker"])
    assert len(workers) == 4
    # ... and every resident request reaches its box, mostly through another worker's socket.
    served = [r.served for r in relays]
    for c in COMMUNITIES:
        assert await resident_visits(lb.url, c, 12) == [(200, True)] * 12
    assert [r.served - s for r, s in zip(relays, served, strict=True)] >= [12, 12]

    # Uploads keep coming while host 1 loses power (SIGKILL of its whole process group).
    async def record(box, start: int, n: int) -> None:
        for i in range(start, start + n):
            await box.store.record(
                AccessEvent(id=f"ae-{i}", door_id="door-1", method="qr", decision="granted")
            )
            await asyncio.sleep(0.01)

    writers = [asyncio.create_task(record(b, 0, 150)) for b in boxes]
    await asyncio.sleep(0.5)
    hosts[0].kill()
    await asyncio.gather(*writers)
    for b in boxes:
        await record(b, 150, 20)

    async def all_uploaded() -> bool:
        conn = await asyncpg.connect(cloud.db)
        try:
            counts = await conn.fetch(
                "SELECT box_id, count(*) AS n, max(seq) AS top,"
                " count(DISTINCT record_id) FILTER (WHERE record_id LIKE 'ae-%') AS doors"
                " FROM records GROUP BY box_id"
            )
        finally:
            await conn.close()
        # all 170 door events of each box, each once, and no gap in any box's seqs
        return len(counts) == 2 and all(r["n"] == r["top"] and r["doors"] == 170 for r in counts)

    await wait_for(all_uploaded, 30)

    async def reconnected() -> bool:  # both sockets now on host 2's live workers
        return all(r.connected for r in relays) and len(await live_holders(cloud.db)) == 2

    await wait_for(reconnected, 20)
    for c in COMMUNITIES:
        assert await resident_visits(lb.url, c, 6) == [(200, True)] * 6
