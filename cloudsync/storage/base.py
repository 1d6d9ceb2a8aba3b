"""The storage interface of the cloud service, written once over two SQL backends.

All SQL is written with ``$n`` placeholders (asyncpg's style); the SQLite backend rewrites
them to ``?n``. Backends provide a connection (``tx()``) with ``fetch``/``fetchrow``/
``execute``/``insert_records`` and a few dialect hooks (JSON extraction, migration lock).
Timestamps are ISO 8601 UTC text, so both backends answer with identical rows.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import orjson

from common.protocol import UploadRecord

log = logging.getLogger(__name__)
LEVELS = ("city", "district", "street", "community")
# Kinds whose records carry their box's district (``records.district``, the first two levels
# of the box's area path, stamped at upload: postgres migration 0009, sqlite 0007): the
# record classes the ops lists read (cloudsync/retention.py CLASSES "report" and "alert").
DISTRICT_KINDS = ("report", "report_correction", "repair_ticket", "community_event",
                  "board_post", "alert")  # fmt: skip
PARENT_LEVEL = {"district": "city", "street": "district", "community": "street"}


# Statements of the per-request path that backends may run their own way (fewer round trips).
BOX_GET = (
    "SELECT b.*, a.path AS area_path FROM boxes b JOIN areas a"
    " ON a.id = b.community_id WHERE b.id = $1"
)
NONCE_INSERT = "INSERT INTO nonces (box_id, nonce, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
NONCE_PRUNE = "DELETE FROM nonces WHERE ts < $1"


async def prune_nonces(c: Any, ts: int, older_than: int) -> None:
    """Forget nonces outside the window now and then (one request in 16), not every time."""
    if ts % 16 == 0:
        await c.execute(NONCE_PRUNE, older_than)


class StorageError(ValueError):
    """A request the data does not allow (unknown parent, used claim code...); names why."""


class NotFound(StorageError):
    pass


class Replayed(StorageError):
    """The request's nonce was used before (a replayed signed request)."""


class BadRecord(StorageError):
    """One record of an upload batch the database refuses; names it by index (and seq), so
    the box can quarantine that record and send the rest (edge/sync/service.py)."""

    def __init__(self, index: int, seq: int, field: str, reason: str) -> None:
        super().__init__(f"body.records.{index}.{field}: {reason} (seq {seq})")
        self.index, self.seq, self.field = index, seq, f"body.records.{index}.{field}"


def find_bad_record(rows: Sequence[UploadRecord]) -> BadRecord | None:
    """The first record a backend would refuse, checked in Python; run only after the batch
    insert failed (the hot path leaves the checks to the database). Covers what either
    backend refuses: malformed JSON or a non-object payload, and NUL characters (PostgreSQL
    text and jsonb cannot hold them)."""
    for i, r in enumerate(rows):
        for name in ("kind", "record_id", "ts", "payload"):
            if "\x00" in r[name]:
                return BadRecord(i, r["seq"], name, "contains a NUL character")
        try:
            value = orjson.loads(r["payload"])
        except orjson.JSONDecodeError as e:
            return BadRecord(i, r["seq"], "payload", f"not valid JSON ({e})")
        if not isinstance(value, dict):
            return BadRecord(i, r["seq"], "payload", "not a JSON object")
        if "\\u0000" in r["payload"] and _has_nul(value):
            return BadRecord(i, r["seq"], "payload", "contains an escaped NUL (\\u0000)")
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def in_scope(scope: str, n: int = 1, column: str = "a.path") -> str:
    """SQL: the area path ``column`` lies inside the scope passed as ``$n``. For the whole
    network ("/") the condition reads the parameter only, so the planner plans for every row:
    PostgreSQL guessed the prefix test keeps a few areas and walked a million records in a
    nested loop to find the newest 50 (bench/console.py)."""
    if scope == "/":
        return f"CAST(${n} AS TEXT) <> ''"
    return f"substr({column}, 1, length(${n})) = ${n}"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...  # rows affected
    async def insert_records(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int: ...


class StorageBase:
    """The backend primitives (implemented by sqlite.py and postgres.py) and the schema; the
    domains (areas.py, boxes.py, records.py, feed.py, queries.py, content.py) build on
    them and cloudsync.storage.Storage combines them."""

    dialect = ""
    listens = False  # True when feed notifications cross worker processes (PG NOTIFY)
    # Statistics read the roll-ups (PostgreSQL, migrations 0008-0013, storage/rollups.py);
    # bench/stats100m.py turns it off to time the raw aggregation beside them (its baseline).
    rollups = False
    # Lists scope a city or district by the records' district (record_scope) where the
    # records have one: records.district exists (found by migrate / detect_schema).
    district_column = False
    # Per-community figures read whole years where a window covers them: play_yearly exists
    # (postgres 0013, detect_schema; bench/stats100m.py turns it off to time 0012's months).
    years_table = False
    # Per-community hours before this day were pruned (retention, postgres 0011): read from
    # the records instead. Re-read after hours_ttl_s; retention deletes rows only
    # CommunityHours.grace_s after it moved the day, which must be longer.
    hours_table = False  # community_hours_horizon exists (detect_schema)
    hours_ttl_s = 30.0
    _hours_from: tuple[str, float] = ("", float("-inf"))

    # --- backend primitives -------------------------------------------------------------

    def tx(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    def in_list(self, column: str, n: int) -> str:
        """SQL: ``column`` is one of the texts in parameter ``$n`` (see :meth:`text_list`)."""
        raise NotImplementedError

    def text_list(self, values: list[str]) -> Any:
        """The parameter value :meth:`in_list` reads."""
        raise NotImplementedError

    async def scope_filter(self, c: Conn, scope: str) -> tuple[str, Any]:
        """(SQL on ``r.box_id`` with ``$1``, the value of ``$1``) keeping the records of the
        scope's boxes. The boxes go in as a list: PostgreSQL then plans with the real number
        of boxes; joined on a path prefix it guessed a few areas and read every record of a
        district, or of the city, in a nested loop (seconds at 1M reports: bench/console.py)."""
        if scope == "/":
            return in_scope(scope), scope
        rows = await c.fetch(
            "SELECT b.id FROM boxes b JOIN areas a ON a.id = b.community_id"
            f" WHERE {in_scope(scope)}",
            scope,
        )
        return self.in_list("r.box_id", 1), self.text_list([r["id"] for r in rows])

    async def record_scope(self, c: Conn, scope: str, kinds: Sequence[str]) -> tuple[str, Any]:
        """:meth:`scope_filter` for records of ``kinds``: a city or a district goes in as its
        district paths on ``r.district`` (a city: ~10, a district: 1) when every kind carries
        one (:data:`DISTRICT_KINDS`). A city's 5,000 box ids in ``box_id = ANY(...)`` cost
        PostgreSQL 0.3-0.6 s to plan, per month partition's statistics (bench/stats100m.py).
        A record keeps the district its box was in when it was stored."""
        deep = scope.count("/") - 1 > 2
        kept = set(kinds) <= set(DISTRICT_KINDS) and self.district_column
        if scope == "/" or deep or not kept:
            return await self.scope_filter(c, scope)
        rows = await c.fetch(  # the scope's areas of depth 1-2 (a box may hang on a city)
            f"SELECT a.path FROM areas a WHERE {in_scope(scope)}"
            " AND length(a.path) - length(replace(a.path, '/', '')) <= 3",
            scope,
        )
        return self.in_list("r.district", 1), self.text_list([r["path"] for r in rows])

    def read_tx(self) -> AbstractAsyncContextManager[Conn]:
        """For reads that may lag the primary by a moment (ops lists and statistics): a
        streaming replica when one is configured (PostgreSQL ``read_url``), else ``tx()``."""
        return self.tx()

    def jtext(self, column: str, field: str) -> str:
        """SQL for the text value of a JSON field (field names are whitelisted by callers)."""
        raise NotImplementedError

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def lock_migrations(self, c: Conn) -> None:
        pass

    async def notify_feed(self, c: Conn, box_ids: list[str]) -> None:
        pass

    async def listen_feed(self, callback: Any, state: Any) -> None:
        """Feed notifications across workers (PostgreSQL); others never call back."""

    async def run_script(self, c: Conn, sql: str) -> None:
        raise NotImplementedError

    async def relax_commit(self, c: Conn) -> None:
        """This transaction need not wait for its commit to reach disk (nonces only)."""

    # --- schema ---------------------------------------------------------------------------

    async def migrate(self, upto: int | None = None) -> list[int]:
        """Apply pending migrations (``upto``: only those numbered up to it; tests and
        bench/partitions.py build an older schema with it)."""
        files = []
        for entry in resources.files("cloudsync").joinpath("migrations", self.dialect).iterdir():
            if entry.name.endswith(".sql"):
                files.append((int(entry.name.partition("_")[0]), entry.name, entry.read_text()))
        files.sort()
        # Two branches numbering a migration alike would otherwise apply one and fail on the
        # other's version row; say which files clash instead.
        for (n, a, _), (m, b, _) in itertools.pairwise(files):
            if n == m:
                raise RuntimeError(f"cloud migrations {a} and {b} share the number {n}")
        applied = []
        async with self.tx() as c:
            await self.lock_migrations(c)
            await c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {r["version"] for r in await c.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in files:
                if version in done or (upto is not None and version > upto):
                    continue
                await self.run_script(c, sql)
                await c.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, $3)", version, name, utcnow()
                )
                applied.append(version)
                log.info("cloud schema: applied %s", name)
        await self.detect_schema()
        return applied

    async def detect_schema(self) -> None:
        """Note what the database's schema holds that the statements depend on."""
        sql = (
            "SELECT count(*) AS n FROM information_schema.columns"
            " WHERE table_name = 'records' AND column_name = 'district'"
            if self.dialect == "postgres"
            else "SELECT count(*) AS n FROM pragma_table_info('records') WHERE name = 'district'"
        )
        async with self.tx() as c:
            self.district_column = (await c.fetchrow(sql))["n"] > 0  # type: ignore[index]
            if self.dialect == "postgres":
                self.hours_table = bool(await c.fetchrow(
                    "SELECT 1 AS x FROM information_schema.tables"
                    " WHERE table_name = 'community_hours_horizon'"
                ))  # fmt: skip
                self.years_table = bool(await c.fetchrow(
                    "SELECT 1 AS x FROM information_schema.tables"
                    " WHERE table_name = 'play_yearly'"
                ))  # fmt: skip

    async def rollup_options(self, by_community: bool) -> dict[str, Any]:
        """What every ``rollups.totals_sql`` of this storage is given beside the window:
        whether the years exist and, per community, the first day whose hours retention kept
        (a per-community figure built without it would read pruned hours as zero)."""
        return {
            "years": self.years_table,
            "hours_from": await self.community_hours_from() if by_community else "",
        }  # fmt: skip

    async def community_hours_from(self) -> str:
        """The first day ("YYYY-MM-DD") whose per-community hours are kept; "" all are."""
        if not self.hours_table:
            return ""
        value, at = self._hours_from
        if time.monotonic() - at >= self.hours_ttl_s:
            async with self.read_tx() as c:
                row = await c.fetchrow("SELECT read_from FROM community_hours_horizon")
            value = row["read_from"] if row else ""
            self._hours_from = (value, time.monotonic())
        return value
