"""SQLite backend: one connection on one thread (SQLite has one writer anyway).

Transactions are serialised with an asyncio lock so two requests never interleave statements
on the shared connection; each statement runs on the storage thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cloudsync.protocol import UploadRecord
from cloudsync.storage.base import Storage, StorageError

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

        return await self.s.run(run)

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def execute(self, sql: str, *args: Any) -> int:
        return await self.s.run(lambda: self.s.db.execute(_sql(sql), args).rowcount)

    async def insert_records(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int:
        def run() -> int:
            db = self.s.db
            for r in rows:  # a bad payload fails the whole batch, naming the record
                if not r.payload.startswith("{"):
                    raise StorageError(f"records[seq={r.seq}].payload: not a JSON object")
            before = db.total_changes
            try:
                db.executemany(
                    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
                    " received_at) VALUES (?, ?, ?, ?, ?, ?, json(?), ?) ON CONFLICT DO NOTHING",
                    [
                        (box_id, r.seq, r.priority, r.kind, r.record_id, r.ts, r.payload, now)
                        for r in rows
                    ],
                )
            except sqlite3.OperationalError as e:
                raise StorageError(f"records: {e}") from e
            return db.total_changes - before

        return await self.s.run(run)


class SqliteStorage(Storage):
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.db: sqlite3.Connection = None  # type: ignore[assignment]
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-sqlite")
        self._lock = asyncio.Lock()

    async def run(self, fn: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")  # a second worker process may write
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable at checkpoint
            db.execute("PRAGMA foreign_keys = ON")
            return db

        self.db = await self.run(connect)

    async def close(self) -> None:
        if self.db is not None:
            await self.run(self.db.close)
        self._pool.shutdown(wait=True)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[SqliteConn]:
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
            buf = ""
            for line in sql.splitlines(keepends=True):
                if line.lstrip().startswith("--"):
                    continue
                buf += line
                if sqlite3.complete_statement(buf):
                    self.db.execute(buf)
                    buf = ""

        await self.run(run)

    def jtext(self, column: str, field: str) -> str:
        return f"json_extract({column}, '$.{field}')"
