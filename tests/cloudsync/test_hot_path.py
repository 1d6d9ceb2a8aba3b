"""The box requests' hot path on PostgreSQL (cloudsync/box_auth.py, the feed's carried items):
secrets cached per worker and checked against the database on every request, nonces used in
batches, broadcast items carried by the notification to every worker's long-polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from cloudsync.box_auth import NonceBatch
from cloudsync.context import CLOUD
from common import protocol as p
from common.relay import PATH as RELAY_PATH
from edge.sync.client import CloudClient, CloudError, Revoked
from edge.sync.identity import Identity
from tests.cloudsync.helpers import Cloud, PgCluster, start_cloud, wait_for
from tests.conftest import free_port

HB = p.Heartbeat(software_version="t")


@pytest.fixture
async def two_workers(pg_cluster: PgCluster, tmp_path: Path) -> AsyncIterator[tuple[Cloud, Cloud]]:
    """Two worker processes on one database (separate caches, one PostgreSQL)."""
    db = await pg_cluster.new_database()
    w1 = await start_cloud(db, tmp_path, subprocess_=True)
    port = free_port()
    w2 = Cloud(f"http://127.0.0.1:{port}", db, w1.admin, port=port, blobs=tmp_path / "blobs")
    await asyncio.to_thread(w2.start_proc)
    try:
        yield w1, w2
    finally:
        await w1.stop()
        await w2.stop()


def via(ident: Identity, cloud: Cloud, secret: str | None = None) -> CloudClient:
    return CloudClient(Identity(cloud.url, ident.box_id, secret or ident.secret))


async def test_revoked_box_is_refused_at_once_by_every_worker(
    two_workers: tuple[Cloud, Cloud],
) -> None:
    w1, w2 = two_workers
    ident = await w1.new_box()
    other = await w1.new_box()
    c1, c2, o2 = via(ident, w1), via(ident, w2), via(other, w2)
    try:
        for _ in range(3):  # both workers now hold the box's secret in their cache
            await c1.heartbeat(HB)
            await c2.heartbeat(HB)
            await c2.feed(0, 0)
        status, _ = await w1.call("POST", f"/api/v1/ops/boxes/{ident.box_id}/revoke")
        assert status == 200
        # The very next request, on the worker that did not revoke it too: refused.
        with pytest.raises(Revoked):
            await c2.heartbeat(HB)
        with pytest.raises(Revoked):
            await c2.feed(0, 0)
        with pytest.raises(Revoked):
            await c1.heartbeat(HB)
        await o2.heartbeat(HB)  # another box on the same worker is not affected
    finally:
        for c in (c1, c2, o2):
            await c.close()


async def test_rotated_secret_on_one_worker_replaces_the_cache_of_the_other(
    two_workers: tuple[Cloud, Cloud],
) -> None:
    w1, w2 = two_workers
    ident = await w1.new_box()
    old1, old2 = via(ident, w1), via(ident, w2)
    try:
        await old1.heartbeat(HB)
        await old2.heartbeat(HB)  # both caches: the old secret, no previous one
        new = await old1.rotate()
        new2 = via(ident, w2, new)
        await new2.heartbeat(HB)  # w2 never saw the rotation: it looks again and accepts
        await new2.heartbeat(HB)
        # The box signed with its new secret, so the old one is retired: refused on both
        # workers although each cached it as the box's current secret.
        for client in (old1, old2):
            with pytest.raises(CloudError) as e:
                await client.heartbeat(HB)
            assert e.value.status == 401
        await new2.close()
    finally:
        await old1.close()
        await old2.close()


async def test_broadcast_reaches_every_box_across_two_workers(
    two_workers: tuple[Cloud, Cloud],
) -> None:
    w1, w2 = two_workers
    boxes = [await w1.new_box(community=f"c{i}") for i in range(12)]
    clients = [via(b, (w1, w2)[i % 2]) for i, b in enumerate(boxes)]
    try:
        # Each box long-polls; its first poll queried the feed and found nothing.
        for c in clients:
            assert (await c.feed(0, 0))["items"] == []
        polls = [asyncio.create_task(c.feed(0, 10)) for c in clients]
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        status, body = await w1.call(
            "POST",
            "/api/v1/ops/emergency",
            json={"message": "暴雨红色预警", "targets": {"areas": ["jinan"]}, "duration_s": 600},
        )
        assert status == 201 and body["boxes"] == 12, body
        pages = await asyncio.wait_for(asyncio.gather(*polls), 10)
        assert time.monotonic() - t0 < 5
        # Counted on the boxes: every one got the emergency, once.
        got = [[i["action"] for i in page["items"]] for page in pages]
        assert got == [["emergency"]] * 12
        for c, page in zip(clients, pages, strict=True):
            item = page["items"][0]
            assert page["cursor"] == item["id"] and item["expired"] is False
            assert item["args"]["body"] == "暴雨红色预警"
            # What the notification carried is what the feed holds for that box.
            stored = (await c.feed(0, 0))["items"]
            assert stored == [item]
        # Re-polled at the cursor: nothing new (no duplicate), until a door command comes.
        again = [
            asyncio.create_task(c.feed(p["cursor"], 10))
            for c, p in zip(clients, pages, strict=True)
        ]
        await asyncio.sleep(0.5)
        assert not any(t.done() for t in again)
        status, _ = await w2.call(
            "POST",
            f"/api/v1/ops/boxes/{boxes[3].box_id}/commands",
            json={"target_kind": "door", "target_id": "door-1", "action": "open"},
        )
        assert status == 201
        page = await asyncio.wait_for(again[3], 5)
        assert [i["action"] for i in page["items"]] == ["open"]
        assert page["items"][0]["id"] > pages[3]["cursor"]
        await asyncio.sleep(0.3)
        assert sum(t.done() for t in again) == 1
        for t in again:
            t.cancel()
        await asyncio.gather(*again, return_exceptions=True)
    finally:
        for c in clients:
            await c.close()


async def test_nonces_used_in_batches(pg_cluster: PgCluster, tmp_path: Path) -> None:
    cloud = await start_cloud(await pg_cluster.new_database(), tmp_path)
    try:
        a, b = await cloud.new_box(), await cloud.new_box()
        storage = cloud.storage
        await storage.box_revoke(b.box_id)
        batch = NonceBatch(storage.use_nonces, storage.prune_nonces_before, p.WINDOW_S)
        now = int(time.time())
        assert await batch.use(a.box_id, "seen-before-0001", now) is not None
        keys = [(a.box_id, f"nonce-{i:04d}") for i in range(20)]
        # Each nonce twice at once (a replay inside one batch), one used before, one of a
        # revoked box: one answer per fresh nonce, with the box's current row.
        calls = [*keys, *keys, (a.box_id, "seen-before-0001"), (b.box_id, "revoked-0001")]
        got = await asyncio.gather(*(batch.use(box, n, now) for box, n in calls))
        fresh = got[:20]
        assert all(r is not None and r["revoked_at"] is None for r in fresh)
        assert fresh[0]["secret"] == a.secret  # type: ignore[index]
        assert got[20:40] == [None] * 20 and got[40] is None
        assert got[41] is not None and got[41]["revoked_at"]
        assert batch.batches == 2  # the first call, then all 42 together
        conn = await asyncpg.connect(cloud.db)
        try:
            n = await conn.fetchval("SELECT count(*) FROM nonces WHERE nonce LIKE 'nonce-%'")
        finally:
            await conn.close()
        assert n == 20
    finally:
        await cloud.stop()


async def test_feed_listener_lost_and_back(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """Notifications missed while the listener was away: the long-polls query instead of
    trusting what they were told, and the listener comes back by itself."""
    cloud = await start_cloud(await pg_cluster.new_database(), tmp_path)
    ident = await cloud.new_box()
    client = via(ident, cloud)
    try:
        assert (await client.feed(0, 0))["items"] == []
        waiter = cloud.app[CLOUD].feed  # type: ignore[index]
        assert waiter.live and waiter.heads.get(ident.box_id) == 0
        epoch = waiter.epoch
        listener = cloud.storage._listener
        conn = await asyncpg.connect(cloud.db)
        try:
            await conn.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
        finally:
            await conn.close()
        assert await wait_for(
            lambda: asyncio.sleep(0, waiter.live and waiter.epoch >= epoch + 2), 10
        )
        assert ident.box_id not in waiter.heads  # forgotten with the lost notifications
        poll = asyncio.create_task(client.feed(0, 10))
        await asyncio.sleep(0.3)
        status, _ = await cloud.call(
            "POST",
            f"/api/v1/ops/boxes/{ident.box_id}/commands",
            json={"target_kind": "door", "target_id": "door-1", "action": "open"},
        )
        assert status == 201
        page = await asyncio.wait_for(poll, 5)
        assert [i["action"] for i in page["items"]] == ["open"]
    finally:
        await client.close()
        await cloud.stop()


async def test_a_slow_nonce_prune_holds_up_no_request(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """The periodic DELETE of old nonces runs beside the batches: while it waits (here on a
    row another transaction holds), requests' nonces still go in at once."""
    cloud = await start_cloud(await pg_cluster.new_database(), tmp_path)
    conn = await asyncpg.connect(cloud.db)
    try:
        a = await cloud.new_box()
        storage = cloud.storage
        now = int(time.time())
        await conn.execute(
            "INSERT INTO nonces (box_id, nonce, ts) VALUES ($1, 'old-0001', $2)",
            a.box_id,
            now - 9999,
        )
        tx = conn.transaction()
        await tx.start()
        await conn.execute("SELECT 1 FROM nonces WHERE nonce = 'old-0001' FOR UPDATE")
        batch = NonceBatch(storage.use_nonces, storage.prune_nonces_before, p.WINDOW_S)
        assert await batch.use(a.box_id, "fresh-0001", now) is not None  # starts the prune
        assert batch._pruning is not None  # ... which waits for the row lock
        t0 = time.monotonic()
        assert await asyncio.wait_for(batch.use(a.box_id, "fresh-0002", now), 5) is not None
        assert time.monotonic() - t0 < 2.0
        assert batch._pruning is not None  # still waiting
        await tx.rollback()
        await wait_for(lambda: _pruned(batch), 5, 0.05)
        assert not await conn.fetchval("SELECT count(*) FROM nonces WHERE nonce = 'old-0001'")
    finally:
        await conn.close()
        await cloud.stop()


async def _pruned(batch: NonceBatch) -> bool:
    return batch._pruning is None


async def test_boxes_reconnecting_at_once_are_looked_up_and_claimed_in_batches(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """A dead worker's boxes all reconnect to this one at once: their relay sockets'
    authentication misses the box cache, and each takes its row in relay_sockets. Both go
    in a few statements, not one per box, and every box's socket is held."""
    cloud = await start_cloud(await pg_cluster.new_database(), tmp_path)
    boxes = [await cloud.new_box() for _ in range(30)]
    state = cloud.app[CLOUD]  # type: ignore[index]
    assert state.lookups is not None and state.relays.bus is not None
    state.box_cache._rows.clear()  # none of them seen by this worker yet
    before = state.lookups.batches, state.relays.bus._claims.batches
    async with aiohttp.ClientSession() as s:
        sockets = await asyncio.gather(*(
            s.ws_connect(cloud.url + RELAY_PATH, headers=p.sign(b.secret, b.box_id, "GET",
                                                                RELAY_PATH))
            for b in boxes))  # fmt: skip
        try:
            conn = await asyncpg.connect(cloud.db)
            try:

                async def held() -> bool:
                    return await conn.fetchval("SELECT count(*) FROM relay_sockets") == 30

                await wait_for(held, 10, 0.05)
            finally:
                await conn.close()
            lookups = state.lookups.batches - before[0]
            claims = state.relays.bus._claims.batches - before[1]
            assert 1 <= lookups < 15 and 1 <= claims < 15, (lookups, claims)
        finally:
            for ws in sockets:
                await ws.close()
            await cloud.stop()
