"""An upload is one statement on PostgreSQL (PostgresStorage.upload): the same guarantees as
the five-round-trip transaction it replaced. Stored once per (box, seq), the watermark the
highest contiguous seq, exact even when another upload of the same box commits while this one
waits for the box's lock (test_faults.py kills boxes and the cloud mid-upload through HTTP)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cloudsync.storage import open_storage
from cloudsync.storage.base import Replayed
from cloudsync.storage.postgres import PostgresStorage
from tests.cloudsync.helpers import PgCluster, wait_for

NOW = "2026-11-24T00:00:00+00:00"


def recs(seqs: list[int]) -> list[dict]:
    return [{"seq": s, "priority": 1, "kind": "access_event", "record_id": f"r{s}",
             "ts": "2026-11-24T08:00:00+00:00", "payload": f'{{"n": {s}}}'}
            for s in seqs]  # fmt: skip


@pytest.fixture
async def db(pg_cluster: PgCluster) -> AsyncIterator[str]:
    url = await pg_cluster.new_database()
    storage = await open_storage(url)  # migrated
    await storage.close()
    c = await asyncpg.connect(url)
    await c.execute("INSERT INTO areas VALUES ('c1', NULL, 'community', 'C1', '/c1/', $1)", NOW)
    await c.execute(
        "INSERT INTO boxes (id, community_id, name, secret, created_at)"
        " VALUES ('box-1', 'c1', 'b', 's', $1)",
        NOW,
    )
    await c.close()
    yield url


async def stored(url: str) -> tuple[list[int], int, int]:
    c = await asyncpg.connect(url)
    try:
        seqs = [r[0] for r in await c.fetch("SELECT seq FROM records ORDER BY seq")]
        acked, top = await c.fetchrow("SELECT acked_seq, max_seq FROM boxes WHERE id = 'box-1'")
    finally:
        await c.close()
    return seqs, acked, top


async def test_upload_waiting_for_the_lock_walks_on_what_was_committed(db: str) -> None:
    """Seqs 7-10 are committed by another upload while this one (1-5) waits for the box's
    lock: its snapshot predates them. The walk over them runs in a fresh transaction and
    stops at the missing 6: the watermark is 5, and 10 once 6 arrives."""
    storage = await open_storage(db, migrate=False)
    assert isinstance(storage, PostgresStorage)
    other = await asyncpg.connect(db)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM boxes WHERE id = 'box-1' FOR UPDATE")
        up = asyncio.create_task(storage.upload("box-1", 1, recs([1, 2, 3, 4, 5])))

        async def blocked() -> bool:
            return bool(await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND datname = current_database()"))  # fmt: skip

        await wait_for(blocked, 10, 0.02)
        await other.execute(
            "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
            " received_at) SELECT 'box-1', s, 1, 'access_event', 'r' || s,"
            " '2026-11-24T08:00:00+00:00', '{}', $1 FROM generate_series(7, 10) s",
            NOW,
        )
        await other.execute("UPDATE boxes SET max_seq = 10 WHERE id = 'box-1'")
        await tx.commit()
        assert await asyncio.wait_for(up, 10) == (5, 0, 5)
        assert storage.upload_rechecks == 1  # the walk ran, in its own transaction
        assert await stored(db) == ([1, 2, 3, 4, 5, 7, 8, 9, 10], 5, 10)
        # the missing seq arrives: the watermark walks over 7-10
        assert await storage.upload("box-1", 1, recs([6])) == (1, 0, 10)
        assert storage.upload_rechecks == 2
        # a resend of everything stores nothing again, and in order needs no walk
        assert await storage.upload("box-1", 1, recs(list(range(1, 11)))) == (0, 10, 10)
        assert await storage.upload("box-1", 11, recs([11, 12])) == (2, 0, 12)
        assert storage.upload_rechecks == 2
    finally:
        await other.close()
        await storage.close()


async def test_concurrent_out_of_order_uploads_from_two_workers(db: str) -> None:
    """40 batches of one box, each sent twice, all at once, shuffled, through two pools (two
    workers): every seq stored exactly once and the final watermark is the last seq."""
    workers = [await open_storage(db, migrate=False) for _ in range(2)]
    batches = [list(range(1 + 25 * i, 26 + 25 * i)) for i in range(40)] * 2
    random.Random(7).shuffle(batches)
    try:
        got = await asyncio.gather(*(workers[i % 2].upload("box-1", 1, recs(b))
                                     for i, b in enumerate(batches)))  # fmt: skip
    finally:
        for w in workers:
            await w.close()
    assert sum(s for s, _d, _a in got) == 1000
    assert sum(d for _s, d, _a in got) == 1000
    assert max(a for _s, _d, a in got) == 1000
    assert await stored(db) == (list(range(1, 1001)), 1000, 1000)


async def test_replayed_nonce_stores_nothing_and_bad_json_names_the_record(db: str) -> None:
    storage = await open_storage(db, migrate=False)
    try:
        nonce = ("box-1", "n-1", 1_700_000_001, 1_699_999_000)
        assert await storage.upload("box-1", 1, recs([1]), nonce) == (1, 0, 1)
        with pytest.raises(Replayed):
            await storage.upload("box-1", 1, recs([2]), nonce)
        bad = recs([2, 3])
        bad[1]["payload"] = "{not json"
        with pytest.raises(ValueError, match=r"records\.1\.payload"):
            await storage.upload("box-1", 1, bad)
        # a floor-only upload (empty batch) lifts the watermark past a quarantined seq
        assert await storage.upload("box-1", 3, []) == (0, 0, 2)
    finally:
        await storage.close()
    assert await stored(db) == ([1], 2, 1)
