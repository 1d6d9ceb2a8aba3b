"""Ops reads from a real PostgreSQL streaming replica (pg_basebackup -R), writes on the primary:
while the replica's replay is paused, a scoped ops user's lists do not show what boxes just
uploaded (they come from the replica), the upload itself succeeds (the primary); resumed, the
rows appear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.cloudsync.helpers import PgCluster, start_cloud, start_pg, start_replica, wait_for
from tests.cloudsync.test_ops_api import rec, upload


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[PgCluster, PgCluster]]:
    primary = start_pg()
    replica = None
    try:
        replica = start_replica(primary)
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


async def test_ops_lists_read_the_replica(
    primary_and_replica: tuple[PgCluster, PgCluster], tmp_path: Path
) -> None:
    primary, replica = primary_and_replica
    db = await primary.new_database()
    name = db.rsplit("/", 1)[1]

    async def replicated() -> bool:  # CREATE DATABASE reaches the replica a moment later
        try:
            await (await asyncpg.connect(replica.url(name))).close()
        except asyncpg.InvalidCatalogNameError:
            return False
        return True

    await wait_for(replicated, 10)
    cloud = await start_cloud(db, tmp_path, read_db=replica.url(name))
    standby = None
    try:
        a = await cloud.new_box("c1", district="lixia", street="s1")
        b = await cloud.new_box("c2", district="shizhong", street="s2")
        await upload(a, [rec(1, "report", 2, "2026-01-01T10:00:00", category="noise", text="吵")])
        await upload(b, [rec(1, "report", 2, "2026-01-01T11:00:00", category="noise", text="闹")])
        token = await cloud.ops_user("lixia-viewer", "viewer", "lixia")  # scoped, read-only

        async def reports() -> list[str]:
            status, body = await cloud.call("GET", "/api/v1/ops/reports", token)
            assert status == 200, body
            return [r["record_id"] for r in body["items"]]

        async def replayed() -> bool:  # schema and rows reach the replica a moment later
            status, body = await cloud.call("GET", "/api/v1/ops/reports", token)
            return status == 200 and bool(body["items"])

        await wait_for(replayed, 10)  # the replica caught up: only its own district's report
        assert await reports() == ["report-1"]

        standby = await asyncpg.connect(replica.url(name))
        assert await standby.fetchval("SELECT pg_is_in_recovery()")
        await standby.execute("SELECT pg_wal_replay_pause()")
        await upload(a, [rec(2, "report", 2, "2026-01-01T12:00:00", category="noise", text="又吵")])
        primary_conn = await asyncpg.connect(db)
        try:  # stored on the primary ...
            assert await primary_conn.fetchval("SELECT count(*) FROM records") == 3
        finally:
            await primary_conn.close()
        assert await reports() == ["report-1"]  # ... not yet visible: the list reads the replica
        status, body = await cloud.call("GET", "/api/v1/ops/stats/access", token)
        assert status == 200, body

        await standby.execute("SELECT pg_wal_replay_resume()")

        async def caught_up() -> bool:
            return await reports() == ["report-2", "report-1"]

        await wait_for(caught_up, 10)
    finally:
        if standby is not None:
            await standby.close()
        await cloud.stop()
