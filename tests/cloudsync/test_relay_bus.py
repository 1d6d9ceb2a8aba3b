"""The relay bus on a real PostgreSQL: two workers' buses in one process, each with its own
listener connection. Bodies larger than a NOTIFY payload go through relay_bodies and come back
byte for byte; a box held by nobody (or by a dead worker) is None at once, not a timeout."""

from __future__ import annotations

import os
import time
from typing import Any

import asyncpg

from cloudsync.relay_bus import PAYLOAD_MAX, RelayBus
from cloudsync.storage import open_storage
from tests.cloudsync.helpers import PgCluster


async def test_requests_and_large_bodies_cross_workers(pg_cluster: PgCluster) -> None:
    db = await pg_cluster.new_database()
    storage = await open_storage(db)
    served: list[tuple[str, dict[str, Any], bytes]] = []

    async def holder(box_id: str, head: dict[str, Any], body: bytes) -> Any:
        served.append((box_id, head, body))
        return {"status": 200, "headers": [["X-Len", str(len(body))]]}, body[::-1]

    async def nobody(box_id: str, head: dict[str, Any], body: bytes) -> Any:
        raise LookupError(box_id)

    a = RelayBus(storage.pool, db, holder)
    b = RelayBus(storage.pool, db, nobody)
    try:
        await a.open()
        await b.open()
        assert await b.call("box-1", {"path": "/r/read"}, b"") is None  # no socket anywhere
        await a.claim("box-1")
        assert await b.holders(["box-1", "box-2"]) == {"box-1": a.pid}

        small = await b.call("box-1", {"method": "GET", "path": "/r/read"}, b"hi")
        assert small == ({"status": 200, "headers": [["X-Len", "2"]]}, b"ih")
        big = os.urandom(300_000)  # far above PAYLOAD_MAX both ways
        assert len(big) > PAYLOAD_MAX
        head, out = await b.call("box-1", {"method": "POST", "path": "/r/x"}, big)
        assert head["headers"] == [["X-Len", "300000"]] and out == big[::-1]
        assert served[-1][2] == big
        conn = await asyncpg.connect(db)
        try:  # each side deleted the body row it read
            assert await conn.fetchval("SELECT count(*) FROM relay_bodies") == 0
        finally:
            await conn.close()

        # The holder dies (its listener connection closes with the process; _closed: no
        # reconnect, as in a dead process): its rows stop matching at once.
        a._closed = True
        await a.conn.close()
        t0 = time.monotonic()
        assert await b.call("box-1", {"path": "/r/read"}, b"") is None
        assert time.monotonic() - t0 < 1.0
    finally:
        await b.close()
        await a.close()
        await storage.close()
