"""SQLite backend: one connection on one thread (SQLite has one writer anyway).

Transactions are serialised with an asyncio lock so two requests never interleave statements
on the shared connection; each statement runs on the storage thread, off the event loop.
The operations of every box request (box lookup, nonce, upload) run whole on the storage thread
in one hop (``_whole``): a transaction then holds the lock for its SQL only, not for the event
loop's turns between statement hops, which under load were most of the time it held it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cloudsync.storage import Storage
from cloudsync.storage.base import BOX_GET, StorageError, find_bad_record
from common.protocol import UploadRecord
from common.sql import sql_statements

_PARAM = re.compile(r"\$(\d+)")


def _sql(sql: str) -> str:
    return _PARAM.sub(r"?\1", sql)


class SqliteConn:
    def __init__(self, storage: SqliteStorage) -> None:
        self.s = storage

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            cur = self.s.db.execute(_sql(sql), args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

        return await self.s.call(run)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        return await self.s.call(lambda: self.s.db.execute(_sql(sql), args).rowcount)

    async def insert_records(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int:
        def run() -> int:
            db = self.s.db
            stored = 0
            try:
                # rowcount, not total_changes: the console's search and roll-up triggers
                # write rows of their own, which are not records stored
                for sql, params in insert_statements(box_id, now, rows):
                    stored += db.execute(sql, params).rowcount
            except sqlite3.OperationalError as e:
                bad = find_bad_record(rows)
                if bad is not None:  # name the record, so the box can quarantine it
                    raise bad from e
                if "JSON" in str(e):
                    raise StorageError(f"records: {e}") from e
                raise  # e.g. locked: a failure on our side, which the box retries
            return stored

        return await self.s.call(run)


# Rows go in as multi-row INSERT ... VALUES (...), (...) statements of up to CHUNK rows rather
# than an executemany of one-row statements: SQLite steps once per chunk instead of once per
# row, so the storage thread releases and retakes the GIL twice a batch, not 500 times. In the
# service it had waited ~2 ms of each 500-row executemany (5.3 ms wall, 3.3 ms CPU) to get the
# GIL back from the event loop. Raw, alone on the machine, the two shapes are about as fast
# (bench/sync.py measures both for its floor and takes the better).
CHUNK = 250  # 2,000 parameters a statement, far under SQLite's limit (32,766)
_COLS = "(box_id, seq, priority, kind, record_id, ts, payload, received_at)"


@functools.lru_cache(maxsize=64)
def _values_sql(n: int) -> str:
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, json(?), ?)"] * n)
    return f"INSERT INTO records {_COLS} VALUES {rows} ON CONFLICT DO NOTHING"


def insert_statements(
    box_id: str, now: str, rows: Sequence[UploadRecord]
) -> list[tuple[str, list[Any]]]:
    """(SQL, parameters) for the batch, in seq order (also the floor's statement shape)."""
    out = []
    for i in range(0, len(rows), CHUNK):
        part = rows[i : i + CHUNK]
        params: list[Any] = []
        for r in part:
            params += (box_id, r["seq"], r["priority"], r["kind"], r["record_id"], r["ts"],
                       r["payload"], now)  # fmt: skip
        out.append((_values_sql(len(part)), params))
    return out


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (its awaits are direct calls) to its result."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a storage operation suspended on the storage thread")


class SqliteStorage(Storage):
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db: sqlite3.Connection = None  # type: ignore[assignment]
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-sqlite")
        self._lock = asyncio.Lock()
        self._thread_id = -1  # the storage thread, known once it has opened the connection

    async def run(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    def _on_thread(self) -> bool:
        return threading.get_ident() == self._thread_id

    async def call(self, fn: Any) -> Any:
        """Run ``fn`` on the storage thread: directly if already there (inside ``_whole``)."""
        return fn() if self._on_thread() else await self.run(fn)

    async def _whole(self, op: Any, *args: Any) -> Any:
        """Run one Storage operation, its whole transaction, in a single storage-thread hop.

        Such an operation cannot interleave with another on the one storage thread, so it
        needs the lock only to stay out of a multi-hop transaction (``tx()`` from the event
        loop) that holds it. Without the lock, operations of concurrent requests queue up in
        the executor and the thread runs them back to back: through the lock each one waited
        for an event-loop turn to be handed over, and the thread sat idle ~30 % of an ingest
        (py-spy, bench/sync.py)."""
        return await self._hop(lambda: _drive(op(*args)))

    async def _hop(self, fn: Any) -> Any:
        """``fn`` on the storage thread, outside any multi-hop transaction (see ``_whole``)."""
        if self._lock.locked():
            async with self._lock:
                return await self.run(fn)
        # Submitted now, before any await: a transaction that takes the lock after this
        # queues its BEGIN behind it on the same single thread.
        return await self.run(fn)

    async def box_get(self, box_id: str) -> dict[str, Any] | None:
        # One read: a plain statement in autocommit, not BEGIN IMMEDIATE ... COMMIT, which
        # took the write lock and cost two more statements on the storage thread per request.
        def run() -> dict[str, Any] | None:
            cur = self.db.execute(_sql(BOX_GET), (box_id,))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

        return await self._hop(run)

    async def use_nonce(self, box_id: str, nonce: str, ts: int, older_than: int) -> bool:
        return await self._whole(super().use_nonce, box_id, nonce, ts, older_than)

    async def upload(
        self,
        box_id: str,
        floor: int,
        rows: Sequence[UploadRecord],
        nonce: tuple[str, str, int, int] | None = None,
    ) -> tuple[int, int, int]:
        return await self._whole(super().upload, box_id, floor, rows, nonce)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")  # a second worker process may write
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoint
            db.execute("PRAGMA foreign_keys = ON")
            self._thread_id = threading.get_ident()
            return db

        self.db = await self.run(connect)

    async def close(self) -> None:
        if self.db is not None:
            await self.run(self.db.close)
        self._pool.shutdown(wait=True)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[SqliteConn]:
        if self._on_thread():  # inside _whole: the lock is held, statements run directly
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteConn(self)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            return
        async with self._lock:
            await self.run(lambda: self.db.execute("BEGIN IMMEDIATE"))
            try:
                yield SqliteConn(self)
            except BaseException:
                await self.run(lambda: self.db.execute("ROLLBACK"))
                raise
            await self.run(lambda: self.db.execute("COMMIT"))

    async def run_script(self, c: Any, sql: str) -> None:
        # executescript would COMMIT our transaction; run statement by statement instead.
        def run() -> None:
            for statement in sql_statements(sql):
                self.db.execute(statement)

        await self.run(run)

    def jtext(self, column: str, field: str) -> str:
        return f"json_extract({column}, '$.{field}')"

    def in_list(self, column: str, n: int) -> str:
        return f"{column} IN (SELECT value FROM json_each(${n}))"

    def text_list(self, values: list[str]) -> Any:
        return json.dumps(values)
