"""PostgreSQL backend (asyncpg pool): the production store; workers are stateless on it.

Batches go in as one ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``: one
round trip per batch whatever its size. Feed inserts NOTIFY so a long-poll waiting on another
worker process wakes at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from cloudsync.storage import Storage
from cloudsync.storage.base import (
    BOX_GET,
    DISTRICT_KINDS,
    NONCE_PRUNE,
    Replayed,
    StorageError,
    find_bad_record,
    prune_nonces,
    utcnow,
)
from cloudsync.storage.feed import FEED_AFTER, FeedWake, Notified
from cloudsync.storage.rollups import BACKFILLS
from cloudsync.storage.rollups import backfill as backfill_rollups
from common.protocol import UploadRecord

log = logging.getLogger(__name__)
CHANNEL = "qilu_feed"
FEED_LOCK = 7009  # pg_advisory_xact_lock of feed writes (7007 migrations, 7008 backfills)
NOTIFY_MAX = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


def _affected(status: str) -> int:
    # "INSERT 0 5", "UPDATE 3", "DELETE 0"
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# One upload in one statement (PostgresStorage.upload). The data-modifying CTEs run in this
# order because each reads the one before: the nonce (n, when the request's nonce was not
# used at authentication), the box row locked (b; nothing at all happens when the nonce was
# used before), the watermark (v), then the insert and the box update, which read v. The
# rule is RecordStorage.upload's: acked_seq is the highest contiguous seq stored; it moves
# when the floor lifts it or the batch holds acked_seq + 1. Only an out-of-order batch (seqs
# already stored above the new watermark) needs a walk over the stored seqs: the statement
# then stores the watermark before the walk (a lower bound) and says "walk", and the walk runs
# in a second, fresh transaction. Walking inside the statement made PostgreSQL plan a scan of
# every partition on each call (~1 ms of planning per upload, idle fleet's PostgreSQL CPU
# doubled at 10,000 boxes) and saw records only as of the statement's start.
UPLOAD = """
WITH n AS (
  INSERT INTO nonces (box_id, nonce, ts) SELECT $1, $13, $14 WHERE $13::text IS NOT NULL
  ON CONFLICT DO NOTHING RETURNING 1
), b AS MATERIALIZED (
  SELECT acked_seq, max_seq, greatest(acked_seq, $2::bigint - 1) AS a,
    (SELECT qilu_district(p.path) FROM areas p WHERE p.id = boxes.community_id) AS district
  FROM boxes WHERE id = $1 AND ($13::text IS NULL OR EXISTS (SELECT 1 FROM n)) FOR UPDATE
), v AS MATERIALIZED (
  SELECT greatest(b.max_seq, coalesce($11::bigint, 0)) AS top, b.district,
    (b.a > b.acked_seq OR b.a + 1 = ANY($3::bigint[])) AS may_move,
    CASE WHEN $12::bool AND $10::bigint = b.a + 1 THEN $11::bigint ELSE b.a END AS acked
  FROM b
), ins AS (
  INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at, district)
  SELECT $1, s, p, k, r, t, d::jsonb, $9, CASE WHEN k IN ({DISTRICT_IN}) THEN v.district END
  FROM v, unnest($3::bigint[], $4::int[],
  $5::text[], $6::text[], $7::text[], $8::text[]) AS u(s, p, k, r, t, d)
  ON CONFLICT DO NOTHING RETURNING 1
), upd AS (
  UPDATE boxes SET acked_seq = v.acked, max_seq = v.top, last_seen_at = $9 FROM v WHERE id = $1
)
SELECT (SELECT count(*) FROM ins)::int AS stored, acked, may_move AND acked < top AS walk
FROM v
"""
# Records of the listed classes carry their box's district (migration 0009): the ops lists
# scope a city or a district by it (StorageBase.record_scope).
# A database not yet at 0009 (mid-upgrade, or tests and benches building an older schema)
# stores without it: the *_BEFORE_0009 statements.
DISTRICT_IN = ", ".join(f"'{k}'" for k in DISTRICT_KINDS)
UPLOAD_BEFORE_0009 = (
    UPLOAD.replace(",\n    (SELECT qilu_district(p.path) FROM areas p"
                   " WHERE p.id = boxes.community_id) AS district", "")
    .replace(" b.district,", "")
    .replace(", district)", ")")
    .replace(", CASE WHEN k IN ({DISTRICT_IN}) THEN v.district END", "")
)
UPLOAD = UPLOAD.replace("{DISTRICT_IN}", DISTRICT_IN)
INSERT_BEFORE_0009 = (
    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at)"
    " SELECT $1, s, p, k, r, t, d::jsonb, $8 FROM unnest($2::bigint[], $3::int[],"
    " $4::text[], $5::text[], $6::text[], $7::text[]) AS u(s, p, k, r, t, d)"
    " ON CONFLICT DO NOTHING"
)
INSERT = (
    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at,"
    " district) SELECT $1, s, p, k, r, t, d::jsonb, $8, CASE WHEN k IN ({DISTRICT_IN}) THEN"
    " (SELECT qilu_district(a.path) FROM boxes b JOIN areas a ON a.id = b.community_id"
    " WHERE b.id = $1) END FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[],"
    " $6::text[], $7::text[]) AS u(s, p, k, r, t, d) ON CONFLICT DO NOTHING"
).replace("{DISTRICT_IN}", DISTRICT_IN)


def _columns(rows: Sequence[UploadRecord]) -> list[list[Any]]:
    """An upload's records as the column arrays both insert statements unnest."""
    return [[r[c] for r in rows] for c in ("seq", "priority", "kind", "record_id", "ts",
                                           "payload")]


class PgConn:
    def __init__(self, conn: asyncpg.Connection, district: bool = True) -> None:
        self.c = conn
        self.district = district  # records.district exists (migration 0009)

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.c.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        r = await self.c.fetchrow(sql, *args)
        return dict(r) if r is not None else None

    async def execute(self, sql: str, *args: Any) -> int:
        return _affected(await self.c.execute(sql, *args))

    async def insert_records(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int:
        try:
            return await self._insert(box_id, now, rows)
        except asyncpg.DataError as e:
            bad = find_bad_record(rows)
            if bad is not None:  # name the record, so the box can quarantine it
                raise bad from e
            raise

    async def _insert(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int:
        status = await self.c.execute(
            INSERT if self.district else INSERT_BEFORE_0009,
            box_id,
            *_columns(rows),
            now,
        )
        return _affected(status)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset that skips asyncpg's default reset query (a round trip per release): pool
    connections never carry session state here. Settings are SET LOCAL, advisory locks are
    transaction-scoped, LISTEN uses its own connection, and asyncpg still rolls back a
    transaction left open before calling this."""


class PostgresStorage(Storage):
    dialect = "postgres"
    listens = True
    rollups = True

    def __init__(
        self, dsn: str, *, min_size: int = 2, max_size: int = 10, read_dsn: str | None = None
    ) -> None:
        self.dsn = dsn
        self.read_dsn = read_dsn  # a streaming replica for ops reads (read_tx)
        self.pool: asyncpg.Pool | None = None
        self.read_pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._closing = False
        self._relisten: asyncio.Future[None] | None = None
        self._feed_cb: Callable[[str, FeedWake | None], None] = lambda _b, _i: None
        self._feed_state: Callable[[bool], None] = lambda _up: None
        self._sizes = (min_size, max_size)
        self.upload_rechecks = 0  # uploads whose watermark walked in a second transaction

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.dsn, min_size=self._sizes[0], max_size=self._sizes[1], reset=_keep_session
        )
        if self.read_dsn:
            self.read_pool = await asyncpg.create_pool(
                self.read_dsn, min_size=1, max_size=self._sizes[1], reset=_keep_session
            )

    async def close(self) -> None:
        self._closing = True
        if self._listener is not None:
            await self._listener.close()
        if self.pool is not None:
            await self.pool.close()
        if self.read_pool is not None:
            await self.read_pool.close()

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[PgConn]:
        assert self.pool is not None, "storage not opened"
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                yield PgConn(conn, self.district_column)
            except asyncpg.DataError as e:  # e.g. invalid JSON in a payload
                raise StorageError(str(e)) from e

    @asynccontextmanager
    async def read_tx(self) -> AsyncIterator[PgConn]:
        if self.read_pool is None:
            async with self.tx() as c:
                yield c
            return
        async with self.read_pool.acquire() as conn, conn.transaction(readonly=True):
            yield PgConn(conn, self.district_column)

    # --- the per-request path, in as few round trips as it allows ----------------------------

    async def upload(
        self,
        box_id: str,
        floor: int,
        rows: Sequence[UploadRecord],
        nonce: tuple[str, str, int, int] | None = None,
    ) -> tuple[int, int, int]:
        """:meth:`RecordStorage.upload` in one statement, so one round trip and one implicit
        transaction (was five: BEGIN, lock, insert, watermark, COMMIT). Same order inside:
        nonce, the box row locked, the records inserted, the watermark moved. A worker killed
        mid-upload commits all of it or none; a resend is stored once (ON CONFLICT). An
        out-of-order batch takes a second transaction for the watermark's walk (``UPLOAD``)."""
        assert self.pool is not None, "storage not opened"
        seqs = sorted(r["seq"] for r in rows)
        contiguous = bool(seqs) and seqs[-1] - seqs[0] == len(seqs) - 1
        n = nonce or (box_id, None, None, 0)
        try:
            row = await self.pool.fetchrow(
                UPLOAD if self.district_column else UPLOAD_BEFORE_0009,
                box_id,
                floor,
                *_columns(rows),
                utcnow(),
                seqs[0] if seqs else None,
                seqs[-1] if seqs else None,
                contiguous,
                n[1],
                n[2],
            )
        except asyncpg.DataError as e:  # e.g. invalid JSON in a payload: nothing stored
            bad = find_bad_record(rows)
            if bad is not None:  # name the record, so the box can quarantine it
                raise bad from e
            raise StorageError(str(e)) from e
        if row is None:
            if nonce is not None:
                raise Replayed("nonce already used")
            raise StorageError(f"no box {box_id}")
        if nonce is not None:
            await prune_nonces(self.pool, nonce[2], nonce[3])
        acked = row["acked"]
        if row["walk"]:
            self.upload_rechecks += 1
            # An out-of-order batch: seqs stored above the watermark may now continue it
            # (rare; the box sends in order but for resends). Walk on a fresh snapshot,
            # under the box's lock, from what is stored now.
            async with self.tx() as c:
                box = await c.fetchrow(
                    "SELECT acked_seq FROM boxes WHERE id = $1 FOR UPDATE", box_id
                )
                acked = await self._walk(c, box_id, box["acked_seq"])  # type: ignore[index]
                await c.execute("UPDATE boxes SET acked_seq = $1 WHERE id = $2", acked, box_id)
        return row["stored"], len(rows) - row["stored"], acked

    async def box_get(self, box_id: str) -> dict[str, Any] | None:
        assert self.pool is not None, "storage not opened"
        r = await self.pool.fetchrow(BOX_GET, box_id)  # one statement: no BEGIN/COMMIT trips
        return dict(r) if r is not None else None

    async def boxes_get(self, box_ids: list[str]) -> dict[str, dict[str, Any]]:
        """:meth:`box_get` for many boxes in one statement (cloudsync/batch.py)."""
        assert self.pool is not None, "storage not opened"
        rows = await self.pool.fetch(BOX_GET.replace("b.id = $1", "b.id = ANY($1::text[])"),
                                     box_ids)  # fmt: skip
        return {r["id"]: dict(r) for r in rows}

    async def use_nonce(self, box_id: str, nonce: str, ts: int, older_than: int) -> bool:
        assert self.pool is not None, "storage not opened"
        async with self.pool.acquire() as conn:
            # One statement in its own implicit transaction. set_config(..., is_local => true)
            # lasts to that transaction's end, and the commit record is written before the
            # setting is undone, so the commit does not wait for a disk flush (relax_commit's
            # reasoning), in one round trip instead of four.
            status = await conn.execute(
                "WITH relax AS (SELECT set_config('synchronous_commit', 'off', true))"
                " INSERT INTO nonces (box_id, nonce, ts) SELECT $1, $2, $3 FROM relax"
                " ON CONFLICT DO NOTHING",
                box_id,
                nonce,
                ts,
            )
            await prune_nonces(conn, ts, older_than)
        return _affected(status) == 1

    async def use_nonces(
        self, items: list[tuple[str, str, int]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Many requests' nonces in one statement (cloudsync/box_auth.py): for each fresh
        one, the box's current secrets and revocation; used nonces are left out. Commits
        without waiting for the disk, as :meth:`use_nonce` does."""
        assert self.pool is not None, "storage not opened"
        rows = await self.pool.fetch(
            "WITH relax AS (SELECT set_config('synchronous_commit', 'off', true)),"
            " ins AS (INSERT INTO nonces (box_id, nonce, ts) SELECT u.b, u.n, u.t FROM relax,"
            " unnest($1::text[], $2::text[], $3::bigint[]) AS u(b, n, t)"
            " ON CONFLICT DO NOTHING RETURNING box_id, nonce)"
            " SELECT ins.box_id, ins.nonce, b.secret, b.prev_secret, b.revoked_at"
            " FROM ins JOIN boxes b ON b.id = ins.box_id",
            [i[0] for i in items],
            [i[1] for i in items],
            [i[2] for i in items],
        )
        return {
            (r["box_id"], r["nonce"]): {
                "id": r["box_id"],
                "secret": r["secret"],
                "prev_secret": r["prev_secret"],
                "revoked_at": r["revoked_at"],
            }
            for r in rows
        }

    async def prune_nonces_before(self, older_than: int) -> None:
        assert self.pool is not None, "storage not opened"
        await self.pool.execute(NONCE_PRUNE, older_than)

    async def box_heartbeat(
        self, box_id: str, version: str, devices: list, rows: int, size: int, cursor: int
    ) -> None:
        # One statement, no BEGIN/COMMIT round trips: every box sends one a minute.
        assert self.pool is not None, "storage not opened"
        await self.pool.execute(
            "UPDATE boxes SET last_seen_at = $1, software_version = $2, devices = $3::jsonb,"
            " outbox_rows = $4, outbox_bytes = $5, feed_cursor = $6 WHERE id = $7",
            utcnow(),
            version,
            json.dumps(devices, ensure_ascii=False),
            rows,
            size,
            cursor,
            box_id,
        )

    async def lock_box(
        self, c: Any, box_id: str, nonce: tuple[str, str, int, int] | None
    ) -> dict[str, Any]:
        if nonce is None:
            return await super().lock_box(c, box_id, nonce)
        # The nonce insert rides in the row-lock statement: one round trip for both.
        row = await c.fetchrow(
            "WITH n AS (INSERT INTO nonces (box_id, nonce, ts) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING 1)"
            " SELECT acked_seq, max_seq, (SELECT count(*) FROM n) AS fresh FROM boxes"
            " WHERE id = $1 FOR UPDATE",
            *nonce[:3],
        )
        if row is None or row["fresh"] != 1:
            raise Replayed("nonce already used")
        await prune_nonces(c, nonce[2], nonce[3])
        return row

    async def migrate(self, upto: int | None = None) -> list[int]:
        """Then count the rows stored before the daily roll-ups existed (migration 0008),
        before the hourly ones and the records' districts (0009) and before the 10-day blocks,
        per-community hours and open critical alert counts (0010), one partition per
        transaction: see rollups.backfill."""
        applied = await super().migrate(upto)
        assert self.pool is not None, "storage not opened"
        async with self.pool.acquire() as conn:
            for table in BACKFILLS:
                if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                    continue
                # One backfill at a time across workers and hosts; the others wait for it,
                # so no worker serves statistics from half-counted roll-ups.
                await conn.execute("SELECT pg_advisory_lock(7008)")
                try:
                    await backfill_rollups(conn, log.info, table)
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(7008)")
        return applied

    async def run_script(self, c: Any, sql: str) -> None:
        await c.c.execute(sql)

    async def lock_migrations(self, c: Any) -> None:
        # Two workers starting together: the second waits, then finds nothing to do.
        await c.c.execute("SELECT pg_advisory_xact_lock(7007)")

    async def relax_commit(self, c: Any) -> None:
        # A nonce lost in a database crash only reopens replay of requests signed in the
        # last seconds, inside the 300 s window; not worth a disk flush per request.
        await c.c.execute("SET LOCAL synchronous_commit = off")

    def jtext(self, column: str, field: str) -> str:
        return f"({column} ->> '{field}')"

    def in_list(self, column: str, n: int) -> str:
        return f"{column} = ANY(${n}::text[])"

    def text_list(self, values: list[str]) -> Any:
        return values

    def json_param(self, n: int) -> str:
        return f"${n}::jsonb"

    def for_update(self) -> str:
        return " FOR UPDATE"

    async def feed_add(
        self,
        box_ids: list[str],
        target_kind: str,
        target_id: str,
        action: str,
        args: dict[str, Any],
        by: str,
        expires_at: str | None,
    ) -> list[int]:
        # One statement for any number of boxes: a city-wide emergency is 10,000 rows, which
        # row by row took seconds before the first box could be woken.
        now = utcnow()
        args_text = json.dumps(args, ensure_ascii=False)
        async with self.tx() as c:
            # Feed writes one at a time, ids taken and committed in order: a box's cursor is
            # the last id it applied, so an id committed after a higher one (a broadcast still
            # inserting while a door open for the same box commits) was never delivered.
            await c.c.execute("SELECT pg_advisory_xact_lock($1)", FEED_LOCK)
            rows = await c.c.fetch(
                "INSERT INTO feed (box_id, target_kind, target_id, action, args, created_at,"
                " expires_at, created_by) SELECT b, $2, $3, $4, $5::jsonb, $6, $7, $8"
                " FROM unnest($1::text[]) WITH ORDINALITY AS u(b, n) ORDER BY n"
                " RETURNING id, box_id",
                box_ids,
                target_kind,
                target_id,
                action,
                args_text,
                now,
                expires_at,
                by,
            )
            item = json.dumps(
                {"target_kind": target_kind, "target_id": target_id, "action": action,
                 "args": args, "created_at": now, "expires_at": expires_at},
                ensure_ascii=False, separators=(",", ":"),
            )  # fmt: skip
            await self.notify_feed(c, [r["box_id"] for r in rows], item, [r["id"] for r in rows])
        return [r["id"] for r in rows]

    async def feed_after(self, box_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        # One statement, no BEGIN/COMMIT: a broadcast wakes every box's long-poll at once and
        # each runs this, so its round trips are what the fan-out waits on.
        assert self.pool is not None, "storage not opened"
        rows = await self.pool.fetch(FEED_AFTER, box_id, after, limit)
        return [{**r, "args": json.loads(r["args"])} for r in rows]

    async def notify_feed(
        self,
        c: Any,
        box_ids: list[str],
        item: str | None = None,
        ids: list[int] | None = None,
    ) -> None:
        """Wake the boxes' long-polls on every worker, as many boxes per NOTIFY as fit its
        8000 bytes (a broadcast to 10,000 boxes is ~40 notifications, not 10,000). With the
        item (its JSON without id) and each box's feed id, the notification carries the item
        itself, so a waiting long-poll answers without querying the feed
        (``@<item>\n<box>:<id>,...``); without (or an item too large), box ids only."""
        if item is not None and ids is not None and len(item.encode()) <= NOTIFY_MAX // 2:
            head = f"@{item}\n"
            parts = [f"{b}:{i}" for b, i in zip(box_ids, ids, strict=True)]
        else:
            head, parts = "", sorted(set(box_ids))
        room = NOTIFY_MAX - len(head.encode())
        chunk: list[str] = []
        size = 0
        for part in parts:
            if chunk and size + len(part) + 1 > room:
                await c.c.execute("SELECT pg_notify($1, $2)", CHANNEL, head + ",".join(chunk))
                chunk, size = [], 0
            chunk.append(part)
            size += len(part) + 1
        if chunk:
            await c.c.execute("SELECT pg_notify($1, $2)", CHANNEL, head + ",".join(chunk))

    async def listen_feed(
        self, callback: Callable[[str, FeedWake | None], None], state: Callable[[bool], None]
    ) -> None:
        """Call ``callback(box_id, item or None)`` for every feed notification, and
        ``state(True/False)`` when notifications start or may have been missed (the listener
        connection was lost; it reconnects)."""
        self._feed_cb, self._feed_state = callback, state
        await self._listen()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(self._feed_lost)
        await conn.add_listener(CHANNEL, self._feed_payload)
        self._listener = conn
        self._feed_state(True)

    def _feed_payload(self, _c: Any, _pid: int, _ch: str, payload: str) -> None:
        item: Notified | None = None
        if payload.startswith("@"):
            text, _, payload = payload[1:].partition("\n")
            item = Notified(text)
            for part in payload.split(","):
                box_id, _, fid = part.rpartition(":")
                self._feed_cb(box_id, (int(fid), item))
            return
        for box_id in payload.split(","):
            self._feed_cb(box_id, None)

    def _feed_lost(self, _conn: Any) -> None:
        self._feed_state(False)
        if not self._closing:
            log.warning("feed listener: connection lost, reconnecting")
            self._relisten = asyncio.ensure_future(self._reconnect_feed())

    async def _reconnect_feed(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._listen()
                return
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("feed listener: reconnect failed (%s), retry in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
