"""The box's local SQLite store: the single place that writes to the database.

WAL mode and foreign keys are on; numbered migrations are applied at open; the file is checked
at open and a corrupt one is moved aside (never deleted) so the box can start on a fresh one.
Every record is written in one transaction together with its event-journal row (what the MQTT
bus publishes) and, if it must reach the cloud, its outbox row: a crash between the writes
leaves neither.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import sqlite_utils

from common.sql import sql_statements
from edge.core.files import to_folder_owner
from edge.core.standard import Record

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """A write was refused; nothing of it was stored."""


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full; the write was rolled back."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True)
class Event:
    id: int
    ts: str
    kind: str
    record_id: str
    device_kind: str
    device_id: str
    event: str
    payload: dict[str, Any]


def migrations() -> list[Migration]:
    """The numbered SQL files of the core (edge/core/store/migrations) and of each capability
    (edge/<feature>/migrations, found by that folder name), in number order; numbers are
    unique across the box (docs/architecture.md gives each capability its range)."""
    root = resources.files("edge")
    folders = [root.joinpath("core", "store", "migrations")]
    folders += [d.joinpath("migrations") for d in root.iterdir() if d.is_dir()]
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.endswith(".sql"):
                number, _, rest = entry.name.partition("_")
                found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a number: {versions}")
    return found


# SQLite's own codes for a damaged file (primary code: the low byte of the extended one).
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
NO_SPACE = ("SQLITE_FULL", "SQLITE_IOERR_SHMSIZE")  # the shared-memory file cannot grow


def _corrupt(e: sqlite3.DatabaseError) -> bool:
    """Whether opening failed because the file is damaged (move it aside), not because the
    disk is full or failing, the file is locked or read-only (keep it: moving a healthy
    database aside started the box on an empty one, without residents, faces or rights).
    Our own failed quick_check carries no SQLite code."""
    code = getattr(e, "sqlite_errorcode", None)
    return code is None or code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class Store:
    """Synchronous store; the daemon uses it through :class:`edge.core.store.AsyncStore`."""

    def __init__(self, path: str | Path, *, box_id: str = "box", check: bool = True) -> None:
        self.path = Path(path)
        self.box_id = box_id  # box-level records publish under box/<box_id>/...
        self.recovered_from: Path | None = None  # set when a corrupt file was moved aside
        self._listeners: list[Callable[[], object]] = []
        self._depth = 0
        self._emitted = False
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = self._connect(check)
        except sqlite3.DatabaseError as e:
            if not _corrupt(e):  # a full disk, an I/O error, a lock: the file is fine
                if getattr(e, "sqlite_errorname", "") in NO_SPACE:
                    raise StoreFullError(f"store is full, cannot open {self.path}: {e}") from e
                raise
            self.recovered_from = self._move_aside(str(e))
            self.db = self._connect(check)
        self.migrate()
        if self.recovered_from is not None:
            self._continue_outbox_seq(self.recovered_from)

    # --- opening ---------------------------------------------------------------------

    def _connect(self, check: bool) -> sqlite_utils.Database:
        self._owner_only()
        # isolation_level=None: no implicit transactions; every write is in transaction().
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if check:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {result}")
            conn.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed event survives power loss, not just a process crash.
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return sqlite_utils.Database(conn)

    def _owner_only(self) -> None:
        """The store holds face templates and secrets: owner read/write only (0600), whatever
        the umask. SQLite gives its -wal and -shm files the database file's mode."""
        if str(self.path) == ":memory:":
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size == 0:
                # A root command (`sudo qilu-edge resident add`) before the daemon's first
                # start: the file is the data folder owner's, the daemon's user (install.sh).
                # SQLite run as root gives its -wal and -shm files the database's owner.
                to_folder_owner(fd, self.path.parent)
        finally:
            os.close(fd)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(str(self.path) + suffix, 0o600)

    def _move_aside(self, why: str) -> Path:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{_utc_stamp()}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        log.critical(
            "DATABASE %s IS CORRUPT (%s): moved it aside to %s and started on a fresh one; "
            "nothing was deleted",
            self.path,
            why,
            aside,
        )
        return aside

    def _continue_outbox_seq(self, aside: Path) -> None:
        """A fresh file after a corrupt one: outbox seqs go on above the old file's, never
        from 1 again. The cloud stores each (box, seq) once, so reused seqs were taken for
        resends of old records and dropped. The old file's counter is read if it can be;
        else the clock in microseconds, far above any count of records a box writes."""
        last = 0
        try:
            old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
            try:
                row = old.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
                last = int(row.fetchone()[0])
            finally:
                old.close()
        except (sqlite3.Error, TypeError, ValueError) as e:
            log.warning("outbox seq of %s unreadable (%s): continuing from the clock", aside, e)
            last = time.time_ns() // 1000
        with self.transaction() as db:
            db.execute("DELETE FROM sqlite_sequence WHERE name = 'outbox'")
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox', ?)", (last,))

    def migrate(self) -> list[int]:
        """Apply every migration not applied yet; returns the versions applied now."""
        conn = self.db.conn
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for m in migrations():
            if m.version in done:
                continue
            # One transaction per migration: a failing one leaves the schema as it was.
            try:
                conn.execute("BEGIN IMMEDIATE")
                for statement in sql_statements(m.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (m.version, m.name, datetime.now(UTC).isoformat()),
                )
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
            applied.append(m.version)
            log.info("applied migration %04d %s", m.version, m.name)
        return applied

    def schema_versions(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT version FROM schema_migrations ORDER BY 1")]

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # --- transactions and records -------------------------------------------------------

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Call back after a transaction that added events commits (wakes the bus)."""
        self._listeners.append(callback)

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """All writes go through here; nested use joins the outer transaction."""
        with self._lock:
            conn = self.db.conn
            outer = self._depth == 0
            committed = False
            self._depth += 1
            try:
                if outer:
                    # IMMEDIATE takes the write lock up front: a CLI or another process
                    # writing at the same moment makes us wait (busy_timeout) instead of
                    # failing at once with SQLITE_BUSY when a read lock is upgraded.
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    with self.db.atomic():  # a savepoint: a nested block rolls back alone
                        yield self.db
                    if outer:
                        conn.execute("COMMIT")
                        committed = True
                except BaseException:
                    if outer and conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as e:
                if "full" in str(e).lower():
                    raise StoreFullError(f"store is full, nothing written: {e}") from e
                raise
            finally:
                self._depth -= 1
                fire = committed and self._emitted
                if outer:
                    self._emitted = False
        if fire:
            for callback in self._listeners:
                callback()

    def record(self, rec: Record, *, publish: bool = True) -> None:
        """Store a standard record, its event and (if it travels) its outbox row, atomically."""
        with self.transaction():
            if rec.TABLE:
                # an upsert, never INSERT OR REPLACE: REPLACE deletes the old row first, and
                # ON DELETE CASCADE would take a resident's templates, rights and PIN with it
                self.db.table(rec.TABLE).upsert(_row(rec), pk="id")
            self.emit(rec, publish=publish)

    def emit(self, rec: Record, *, publish: bool = True) -> None:
        """Journal and outbox rows for a record whose own row the caller writes (same tx)."""
        if self._depth == 0:
            raise StoreError("emit() must run inside store.transaction()")
        payload = json.dumps(rec.payload(), ensure_ascii=False, separators=(",", ":"))
        ts = datetime.now(UTC).isoformat()
        if publish:
            device_kind, device_id, event = rec.topic_parts(self.box_id)
            self.db.execute(
                "INSERT INTO events (ts, kind, record_id, device_kind, device_id, event, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, rec.KIND, rec.id, device_kind, device_id, event, payload),
            )
            self._emitted = True
        if rec.PRIORITY is not None:
            self._insert_outbox(ts, int(rec.PRIORITY), rec.KIND, rec.id, payload)

    def _insert_outbox(self, ts: str, priority: int, kind: str, rid: str, payload: str) -> None:
        self.db.execute(
            "INSERT INTO outbox (ts, priority, kind, record_id, payload, bytes)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (ts, priority, kind, rid, payload, len(payload.encode())),
        )

    @contextmanager
    def reading(self) -> Iterator[sqlite_utils.Database]:
        """The connection for reads: one thread at a time, so several reads see one state
        and never interleave with a transaction another thread has open on it."""
        with self._lock:
            yield self.db

    def select(
        self, table: str, *, order_by: str, limit: int, **equal: Any
    ) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values; a filter given as None is left out."""
        filters = {k: v for k, v in equal.items() if v is not None}
        where = " AND ".join(f"[{k}] = ?" for k in filters) or None
        with self._lock:
            rows = self.db[table].rows_where(
                where, list(filters.values()), order_by=order_by, limit=limit
            )
            return list(rows)

    # --- meta ---------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- event journal (the bus) ----------------------------------------------------------

    def events_after(self, after_id: int, limit: int = 500) -> list[Event]:
        with self._lock:
            rows = self.db.execute(
                "SELECT id, ts, kind, record_id, device_kind, device_id, event, payload"
                " FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [_event(r) for r in rows]

    def last_event_id(self) -> int:
        with self._lock:
            return self.db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    def prune_events(self, before_iso: str) -> int:
        """Drop journal rows older than the retention that the bus already published."""
        published = int(self.get_meta("bus_cursor", "0") or 0)
        with self.transaction():
            cur = self.db.execute(
                "DELETE FROM events WHERE ts < ? AND id <= ?", (before_iso, published)
            )
        return cur.rowcount

    # --- outbox ---------------------------------------------------------------------------

    def outbox_stats(self) -> dict[str, int]:
        with self._lock:
            count, size = self.db.execute(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM outbox"
            ).fetchone()
        return {"rows": count, "bytes": size}

    # --- devices --------------------------------------------------------------------------

    def device_states(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query("SELECT * FROM devices ORDER BY kind, id"))

    def upsert_device(self, kind: str, device_id: str, type_: str, name: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO devices (kind, id, type, name, since) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (kind, id) DO UPDATE SET type = excluded.type, name = excluded.name",
                (kind, device_id, type_, name, datetime.now(UTC).isoformat()),
            )

    def set_device_state(
        self, rec: Record, kind: str, device_id: str, state: str, reason: str
    ) -> None:
        """Update a device's current state and store its health record in one transaction."""
        with self.transaction():
            self.db.execute(
                "UPDATE devices SET state = ?, reason = ?, since = ? WHERE kind = ? AND id = ?",
                (state, reason, datetime.now(UTC).isoformat(), kind, device_id),
            )
            self.record(rec)

    # --- files ----------------------------------------------------------------------------

    def size_bytes(self) -> int:
        return sum(
            Path(str(self.path) + s).stat().st_size
            for s in ("", "-wal", "-shm")
            if Path(str(self.path) + s).exists()
        )

    def backup(self, dest_dir: str | Path) -> Path:
        """Online, consistent copy (SQLite backup API) while the daemon keeps writing."""
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"{self.path.stem}-{_utc_stamp()}.db"
        # A full copy (face templates, the box key): owner only like the store, whatever the
        # umask, from its first byte on.
        os.close(os.open(dest, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(dest, 0o600)
        target = sqlite3.connect(dest)
        try:
            with self._lock:
                self.db.conn.backup(target)
        finally:
            target.close()
        return dest


def _event(r: tuple[Any, ...]) -> Event:
    return Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))


def _row(rec: Record) -> dict[str, Any]:
    # Lists and dicts become JSON text columns; sqlite-utils does that for us on insert.
    return rec.model_dump(mode="json")


def check_file(db_path: str | Path) -> str:
    """Full integrity check of a database file from outside the daemon; "ok" when sound."""
    conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        return str(e)
    finally:
        conn.close()


def read_events(db_path: str | Path, after_id: int = 0, limit: int = 100) -> list[Event]:
    """Read the journal from another process (``events tail``) without taking a write lock."""
    conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True)
    try:
        if after_id < 0:  # the last -after_id events
            after_id = max(
                0, conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0] + after_id
            )
        rows = conn.execute(
            "SELECT id, ts, kind, record_id, device_kind, device_id, event, payload"
            " FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
    finally:
        conn.close()
    return [_event(r) for r in rows]
