"""Records that grow for years: monthly partitions made ahead, and retention per record class.

PostgreSQL (migration 0006): ``records`` is partitioned by class (the box's outbox classes,
:data:`CLASSES`), each class by month of the record's own ts, plus a DEFAULT partition per
class for a ts without a month. :func:`maintain`

- creates each class's months up to ``months_ahead`` ahead (CREATE TABLE LIKE + ATTACH, the
  class's inserts held for those milliseconds: see :meth:`_Pg.create`; records that arrived
  early and sit in the default partition move into the new month first, else ATTACH refuses);
- for a class with ``keep_days``, detaches each month that ended before the cutoff, exports it
  (gzip'd CSV) and drops it; rows in the default partition go ``keep_days`` after they
  *arrived* (received_at: the cloud's clock, not a box clock stuck at 1970).

DETACH ... CONCURRENTLY is refused while a partitioned table has a DEFAULT partition (which
keeps ingest from ever failing for an out-of-range ts), so the detach is the plain one: an
ACCESS EXCLUSIVE lock on the class's table for the catalogue change only (milliseconds, no
scan), taken with a short ``lock_timeout`` and retried, so ingest never queues behind it for
longer than that. Export and DROP then work on a table nobody writes any more.

SQLite stays one table: the same cutoffs, rows exported and deleted in small batches.

Run by ``qilu-cloudsync retention run [--dry-run]`` and every ``interval_s`` in ``serve``;
across workers and hosts one run at a time (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import io
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from cloudsync.storage.rollups import COMMUNITY_HOURS, forget_month, forget_rows

log = logging.getLogger(__name__)

# Record kinds by class (the box's outbox classes, edge/core/standard.py Priority). Keep equal
# to the LIST partitions of migrations/postgres/0006 (tests/cloudsync/test_partitions.py).
CLASSES: dict[str, tuple[str, ...]] = {
    "alert": ("alert",),
    "access": ("access_event", "intercom_call"),
    "report": ("report", "report_correction", "repair_ticket", "community_event", "board_post"),
    "play": ("play_record",),
    "telemetry": ("device_health", "reading_stats"),
}
OTHER = "other"  # any other kind (the DEFAULT list partition)
ALL_CLASSES = (*CLASSES, OTHER)
COLUMNS = ("box_id", "seq", "priority", "kind", "record_id", "ts", "payload", "received_at")
LOCK_KEY = 7020  # advisory lock: one retention run at a time across workers and hosts
SQLITE_BATCH = 5000  # rows per SQLite transaction: ingest waits at most one batch


class ClassRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keep_days: int | None = Field(None, ge=1, le=36_500)  # None: kept for ever
    export: bool = True  # write the rows to export_dir before they are dropped


class CommunityHours(BaseModel):
    """Per-community 10-hour blocks and hours of the statistics' roll-ups (PostgreSQL 0010:
    play_/reading_tenhour, play_/reading_leaf_hourly), most of their disk: kept this many
    days, older ones deleted; a window reaching further back reads those hours from the
    records (storage/rollups.py hours_kept), so every figure stays exact. The default
    covers the console's 90-day statistics (its 365-day view reads its first partial day
    from the records)."""

    model_config = ConfigDict(extra="forbid")
    keep_days: int | None = Field(92, ge=2, le=36_500)  # None: kept for ever
    # The day readers start from moves first; rows go only this long after, so that no
    # worker still reads with the day before (each re-reads it every 30 s, storage
    # hours_ttl_s; also covers a replica's lag).
    grace_s: float = Field(600.0, ge=0)


def _keep(days: int | None) -> Any:
    return Field(default_factory=lambda: ClassRetention(keep_days=days))


class RetentionConfig(BaseModel):
    """``[retention]`` of the cloud config (cloudsync/config.py); one table per class."""

    model_config = ConfigDict(extra="forbid")
    alert: ClassRetention = _keep(5 * 365)
    access: ClassRetention = _keep(365)
    report: ClassRetention = _keep(5 * 365)
    play: ClassRetention = _keep(2 * 365)
    telemetry: ClassRetention = _keep(90)
    other: ClassRetention = _keep(None)
    community_hours: CommunityHours = Field(default_factory=CommunityHours)
    export_dir: Path = Path("var/cloud/exports")
    months_ahead: int = Field(3, ge=1, le=36)  # partitions made this many months ahead
    interval_s: float = Field(3600.0, ge=10)  # serve runs maintain() this often
    timer: bool = True  # False: serve leaves it to `retention run` (cron, a systemd timer)
    lock_timeout_ms: int = Field(500, ge=10, le=60_000)  # longest ingest waits on a detach
    lock_retries: int = Field(30, ge=1, le=1000)

    def of(self, cls: str) -> ClassRetention:
        rule: ClassRetention = getattr(self, cls)
        return rule


class RetentionError(RuntimeError):
    pass


@dataclass
class Step:
    """One thing a run did (or, dry, would do)."""

    cls: str
    action: str  # "create" a month, "drop" a month (export first), "purge" rows, "prune" hours
    table: str
    rows: int = 0  # estimated in a dry run (PostgreSQL statistics for whole months)
    bytes: int = 0  # on disk (dry run), or the export file's size
    file: str = ""

    def line(self) -> str:
        what = {"create": "create", "drop": "export+drop", "purge": "export+delete",
                "prune": "delete"}[self.action]  # fmt: skip
        out = f"{self.cls:9} {what:13} {self.table}"
        if self.action != "create":
            out += f"  {self.rows:,} rows"
            if self.bytes:
                out += f", {self.bytes / 1e6:,.1f} MB"
        return out + (f" -> {self.file}" if self.file else "")


# --- months --------------------------------------------------------------------------------


def month_of(when: datetime) -> date:
    return when.astimezone(UTC).date().replace(day=1)


def add_months(m: date, n: int) -> date:
    y, mo = divmod(m.month - 1 + n, 12)
    return date(m.year + y, mo + 1, 1)


def month_table(cls: str, m: date) -> str:
    return f"records_{cls}_p{m:%Y%m}"


def cutoff(now: datetime, days: int) -> str:
    """ts text below which a class's records go (the boxes stamp ISO 8601 UTC)."""
    return (now - timedelta(days=days)).astimezone(UTC).isoformat(timespec="microseconds")


def class_condition(cls: str) -> str:
    """SQL on ``kind`` selecting a class's records (the kinds are our own constants)."""
    if cls == OTHER:
        kinds = [k for ks in CLASSES.values() for k in ks]
        return "kind NOT IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"
    return "kind IN (" + ", ".join(f"'{k}'" for k in CLASSES[cls]) + ")"


# --- export files --------------------------------------------------------------------------


class Export:
    """A gzip'd CSV (header row, the columns of ``records``) written beside its final name and
    renamed there once complete and on disk: a file under the final name is always whole."""

    def __init__(self, path: Path, progress: Callable[[str], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.tmp = path, path.with_name(path.name + ".part")
        self._raw = open(self.tmp, "wb")  # closed in finish() or abort()
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)
        self.read = 0
        self._progress = progress
        self._said = time.monotonic()

    async def write(self, data: bytes) -> None:
        # Compression off the event loop: in serve this runs beside live requests.
        await asyncio.to_thread(self._gz.write, data)
        self.read += len(data)
        if time.monotonic() - self._said > 5:
            self._said = time.monotonic()
            self._progress(f"  {self.path.name}: {self.read / 1e6:,.0f} MB of CSV so far")

    def finish(self) -> int:
        self._gz.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self.tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash before the DROP that follows
        finally:
            os.close(dir_fd)
        return self.path.stat().st_size

    def flush(self) -> None:
        self._gz.flush()
        self._raw.flush()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._gz.close()
            self._raw.close()
            self.tmp.unlink()


def csv_bytes(rows: list[dict[str, Any]], header: bool) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r[c] for c in COLUMNS])
    return out.getvalue().encode()


# --- PostgreSQL ----------------------------------------------------------------------------

_BOUND = re.compile(r"FROM \('([^']*)'\) TO \('([^']*)'\)")


class _Pg:
    def __init__(self, storage: Any, cfg: RetentionConfig, progress: Callable[[str], None]):
        self.dsn = storage.dsn
        self.cfg, self.say = cfg, progress
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")

    async def run(self, now: datetime, dry_run: bool) -> list[Step]:
        import asyncpg

        # A connection of its own, not the pool's: an export may hold it for minutes, and
        # closing it is always safe. Stopped mid-step (serve shutting down cancels the run),
        # a connection left inside a COPY once never answered again (seen 1 in ~15 runs of
        # test_serve_runs_retention_on_its_timer); terminate() ends it, its transaction and
        # the advisory lock at once, and the next run finishes a month left detached.
        conn = await asyncpg.connect(self.dsn)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                self.say("retention: another worker is running it now; skipped")
                return []
            return await self._run(conn, now, dry_run)
        except BaseException:
            conn.terminate()
            raise
        finally:
            if not conn.is_closed():
                await conn.close()  # also frees the advisory lock

    async def _run(self, conn: Any, now: datetime, dry_run: bool) -> list[Step]:
        steps: list[Step] = []
        first = month_of(now)
        for cls in ALL_CLASSES:
            have = {lo for _, lo, _ in await self.partitions(conn, cls)}
            for i in range(self.cfg.months_ahead + 1):
                m = add_months(first, i)
                if f"{m:%Y-%m}" in have:
                    continue
                step = Step(cls, "create", month_table(cls, m))
                if not dry_run:
                    await self._locked(step.table, partial(self.create, conn, cls, m))
                self.say(step.line())
                steps.append(step)
        for cls in ALL_CLASSES:
            rule = self.cfg.of(cls)
            if rule.keep_days is None:
                continue
            cut = cutoff(now, rule.keep_days)
            for name, lo, hi in await self.partitions(conn, cls):
                if lo is None or hi is None or hi > cut:
                    continue  # the default partition, or a month not wholly past the cutoff
                if dry_run:
                    steps.append(await self.estimate(conn, cls, name))
                    self.say(steps[-1].line())
                    continue
                await self._locked(name, partial(self.detach, conn, cls, name))
                steps.append(await self.export_drop(conn, cls, name, rule.export))
            # Months detached by an earlier run that stopped before its export finished.
            for name in await self.detached(conn, cls):
                if dry_run:
                    steps.append(await self.estimate(conn, cls, name))
                    self.say(steps[-1].line())
                else:
                    steps.append(await self.export_drop(conn, cls, name, rule.export))
            purged = await self.purge_default(conn, cls, cut, rule.export, dry_run)
            if purged is not None:
                steps.append(purged)
        steps += await self.prune_hours(conn, now, dry_run)
        return steps

    async def prune_hours(self, conn: Any, now: datetime, dry_run: bool) -> list[Step]:
        """Per-community hours before ``keep_days`` ago (:class:`CommunityHours`) deleted:
        first the day readers start from moves (they read older hours from the records),
        then, ``grace_s`` later (this run or a later one), the rows before it go, one day
        per transaction. Plain DELETEs through the period index (no table lock: uploads
        go on; one that adds to an hour being deleted waits for that day's transaction)."""
        import asyncpg

        rule = self.cfg.community_hours
        if rule.keep_days is None or not await conn.fetchval(
            "SELECT to_regclass('community_hours_horizon') IS NOT NULL"
        ):
            return []
        target = (now - timedelta(days=rule.keep_days)).astimezone(UTC).date().isoformat()
        if not dry_run:
            await conn.execute(
                "UPDATE community_hours_horizon SET read_from = $1, since = now()"
                " WHERE read_from < $1",
                target,
            )
        row = await conn.fetchrow(
            "SELECT read_from, since <= now() - make_interval(secs => $1) AS settled"
            " FROM community_hours_horizon",
            rule.grace_s,
        )
        read_from = target if dry_run else row["read_from"]
        if not read_from or not (row["settled"] or dry_run):
            return []
        steps, deadlocks = [], 0
        for spec in COMMUNITY_HOURS:
            col, step = spec.period, Step("rollup", "prune", spec.table)
            if dry_run:
                step.rows = await conn.fetchval(
                    f"SELECT count(*) FROM {spec.table} WHERE {col} < $1", read_from
                )
            while not dry_run:
                first = await conn.fetchval(
                    f"SELECT min({col}) FROM {spec.table} WHERE {col} < $1", read_from
                )
                if first is None:
                    break
                # The rest of first's day (or all that sort before read_from, for a stamp
                # that is no date: "1970-01-01T0" is one, "not a date" sorts after).
                end = min(f"{first[:10]}\uffff", read_from)
                try:
                    status = await conn.execute(
                        f"DELETE FROM {spec.table} WHERE {col} >= $1 AND {col} < $2", first, end
                    )
                except asyncpg.DeadlockDetectedError as e:
                    # A late upload into this very day locked its rows in another order;
                    # if PostgreSQL chose this statement, the loop takes the day again.
                    deadlocks += 1
                    if deadlocks > self.cfg.lock_retries:
                        raise RetentionError(f"{spec.table}: deadlocks; run again") from e
                    self.say(f"  {spec.table}: deadlock with an upload, retrying {first[:10]}")
                    continue
                step.rows += int(status.split()[-1])
            if step.rows:
                self.say(step.line())
                steps.append(step)
        return steps

    async def partitions(self, conn: Any, cls: str) -> list[tuple[str, str | None, str | None]]:
        """(table, lower, upper) of a class's partitions; bounds None for the default."""
        rows = await conn.fetch(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass"
            " ORDER BY c.relname",
            f"records_{cls}",
        )
        out: list[tuple[str, str | None, str | None]] = []
        for r in rows:
            m = _BOUND.search(r["bound"])
            out.append((r["relname"], m.group(1), m.group(2)) if m else (r["relname"], None, None))
        return out

    async def detached(self, conn: Any, cls: str) -> list[str]:
        rows = await conn.fetch(
            "SELECT relname FROM pg_class WHERE relname ~ $1 AND relkind = 'r'"
            " AND NOT relispartition ORDER BY relname",
            f"^records_{cls}_p[0-9]{{6}}$",
        )
        return [r["relname"] for r in rows]

    async def _locked(self, what: str, op: Callable[[], Awaitable[None]]) -> None:
        """Run a DDL step that needs a lock ingest also takes: give up waiting after
        lock_timeout (so inserts never queue behind it for longer), then retry."""
        import asyncpg

        for attempt in range(self.cfg.lock_retries):
            try:
                await op()
                return
            except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
                self.say(f"  {what}: lock busy (try {attempt + 1}), retrying")
                await asyncio.sleep(min(0.05 * 2**attempt, 5.0))
        raise RetentionError(f"{what}: no lock in {self.cfg.lock_retries} tries; run again")

    async def create(self, conn: Any, cls: str, m: date) -> None:
        name, lo, hi = month_table(cls, m), f"{m:%Y-%m}", f"{add_months(m, 1):%Y-%m}"
        default = f"records_{cls}_default"
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {self.cfg.lock_timeout_ms}")
            # Inserts into the class wait for this transaction (milliseconds; reads go on).
            # ATTACH alone takes a lock inserts pass, but an insert that had routed its row to
            # the default partition before the new month existed then fails the default's new
            # constraint (tests/cloudsync/test_partitions.py, rotation under ingest, did).
            await conn.execute(f"LOCK TABLE records_{cls} IN SHARE MODE")
            # Early arrivals must move out of the default partition before ATTACH checks it.
            await conn.execute(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE")
            await conn.execute(
                f"CREATE TABLE {name} (LIKE records_{cls} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            await conn.execute(
                f"WITH early AS (DELETE FROM {default} WHERE ts >= $1 AND ts < $2 RETURNING *)"
                f" INSERT INTO {name} SELECT * FROM early",
                lo,
                hi,
            )
            await conn.execute(
                f"ALTER TABLE records_{cls} ATTACH PARTITION {name}"
                f" FOR VALUES FROM ('{lo}') TO ('{hi}')"
            )

    async def detach(self, conn: Any, cls: str, name: str) -> None:
        m = date(int(name[-6:-2]), int(name[-2:]), 1)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL lock_timeout = {self.cfg.lock_timeout_ms}")
            await conn.execute(f"ALTER TABLE records_{cls} DETACH PARTITION {name}")
            # The statistics stop counting the month when the records do (migration 0008).
            await forget_month(conn, cls, f"{m:%Y-%m}", f"{add_months(m, 1):%Y-%m}")
        self.say(f"{cls:9} detached      {name}")

    async def estimate(self, conn: Any, cls: str, name: str) -> Step:
        row = await conn.fetchrow(
            "SELECT c.reltuples::bigint AS n, pg_total_relation_size(c.oid) AS b"
            " FROM pg_class c WHERE c.relname = $1",
            name,
        )
        n = row["n"]
        if n < 1_000_000:  # small or never analysed (-1): count; big: the statistics will do
            n = await conn.fetchval(f"SELECT count(*) FROM {name}")
        return Step(cls, "drop", name, n, row["b"])

    async def export_drop(self, conn: Any, cls: str, name: str, export: bool) -> Step:
        step = Step(cls, "drop", name)
        if export:
            ex = Export(self.cfg.export_dir / cls / f"{name}.csv.gz", self.say)
            try:
                status = await conn.copy_from_table(
                    name, columns=list(COLUMNS), output=ex.write, format="csv", header=True
                )
                step.bytes = ex.finish()
            except BaseException:
                ex.abort()
                raise
            step.rows, step.file = int(status.split()[-1]), str(ex.path)
        else:
            step.rows = await conn.fetchval(f"SELECT count(*) FROM {name}")
        await conn.execute(f"DROP TABLE {name}")
        self.say(step.line())
        return step

    async def purge_default(
        self, conn: Any, cls: str, cut: str, export: bool, dry_run: bool
    ) -> Step | None:
        table = f"records_{cls}_default"
        n = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE received_at < $1", cut)
        if not n:
            return None
        step = Step(cls, "purge", table, n)
        if dry_run:
            self.say(step.line())
            return step
        delete = f"DELETE FROM {table} WHERE received_at < $1 RETURNING {', '.join(COLUMNS)}"
        async with conn.transaction():
            # The rows leave the statistics' roll-ups with the records, in this transaction.
            # (New rows arrive with received_at now: none joins the cut meanwhile.)
            await forget_rows(conn, cls, table, " AND r.received_at < $1", cut)
            if export:
                ex = Export(self.cfg.export_dir / cls / f"{table}_{self.stamp}.csv.gz", self.say)
                try:
                    status = await conn.copy_from_query(
                        delete, cut, output=ex.write, format="csv", header=True
                    )
                    # On disk before the delete commits: a failed commit leaves the rows
                    # exported twice (next run), never lost.
                    step.bytes = ex.finish()
                except BaseException:
                    ex.abort()
                    raise
                step.rows, step.file = int(status.split()[-1]), str(ex.path)
            else:
                status = await conn.execute(delete.split(" RETURNING")[0], cut)
                step.rows = int(status.split()[-1])
        self.say(step.line())
        return step


# --- SQLite ----------------------------------------------------------------------------------


class _Sqlite:
    """One table: a class's rows whose ts and arrival are both past the cutoff are exported and
    deleted, SQLITE_BATCH rows per transaction."""

    def __init__(self, storage: Any, cfg: RetentionConfig, progress: Callable[[str], None]):
        self.storage, self.cfg, self.say = storage, cfg, progress
        self.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")

    async def run(self, now: datetime, dry_run: bool) -> list[Step]:
        steps = []
        for cls in ALL_CLASSES:
            rule = self.cfg.of(cls)
            if rule.keep_days is None:
                continue
            cut = cutoff(now, rule.keep_days)
            where = f"{class_condition(cls)} AND ts < $1 AND received_at < $1"
            if dry_run:
                async with self.storage.tx() as c:
                    row = await c.fetchrow(f"SELECT count(*) AS n FROM records WHERE {where}", cut)
                if row and row["n"]:
                    steps.append(Step(cls, "purge", "records", row["n"]))
                    self.say(steps[-1].line())
                continue
            step = await self.purge(cls, where, cut, rule.export)
            if step is not None:
                steps.append(step)
                self.say(step.line())
        return steps

    async def purge(self, cls: str, where: str, cut: str, export: bool) -> Step | None:
        step = Step(cls, "purge", "records")
        ex: Export | None = None  # made at the first row: no empty files, no folders
        try:
            while True:
                async with self.storage.tx() as c:
                    rows = await c.fetch(
                        f"SELECT {', '.join(COLUMNS)} FROM records WHERE {where}"
                        f" ORDER BY kind, ts LIMIT {SQLITE_BATCH}",
                        cut,
                    )
                    if not rows:
                        break
                    if export:
                        if ex is None:
                            name = f"records_{cls}_{self.stamp}.csv.gz"
                            ex = Export(self.cfg.export_dir / cls / name, self.say)
                        await ex.write(csv_bytes(rows, header=step.rows == 0))
                        # Each batch is in the file before its delete commits.
                        await asyncio.to_thread(ex.flush)
                    keys = json.dumps([[r["box_id"], r["seq"]] for r in rows])
                    await c.execute(
                        "DELETE FROM records WHERE (box_id, seq) IN (SELECT"
                        " json_extract(value, '$[0]'), json_extract(value, '$[1]')"
                        " FROM json_each($1))",
                        keys,
                    )
                step.rows += len(rows)
        finally:
            if ex is not None:  # what was deleted is in the file, even if a later batch failed
                step.bytes, step.file = ex.finish(), str(ex.path)
        return step if step.rows else None


# --- entry points ---------------------------------------------------------------------------


async def maintain(
    storage: Any,
    cfg: RetentionConfig,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Step]:
    """Create months ahead and apply retention once; the steps taken (or, dry, planned)."""
    say = progress or (lambda s: log.info("retention: %s", s.strip()))
    now = now or datetime.now(UTC)
    if storage.dialect == "postgres":
        return await _Pg(storage, cfg, say).run(now, dry_run)
    return await _Sqlite(storage, cfg, say).run(now, dry_run)


TASK = web.AppKey("retention_task", asyncio.Task)


def install(app: web.Application, storage: Any, cfg: RetentionConfig) -> None:
    """Run :func:`maintain` at start-up and every ``interval_s`` while the app serves."""
    if not cfg.timer:
        return

    async def every() -> None:
        while True:
            try:
                steps = await maintain(storage, cfg)
                if steps:
                    log.info("retention: %d step(s) done", len(steps))
            except Exception:  # a failed run is retried at the next tick; serving goes on
                log.exception("retention run failed")
            await asyncio.sleep(cfg.interval_s)

    async def start(app: web.Application) -> None:
        app[TASK] = asyncio.create_task(every())

    async def stop(app: web.Application) -> None:
        task = app[TASK]
        task.cancel()
        # Bounded: shutting down never waits on a run (PostgreSQL: its own connection, which
        # the cancellation terminates; whatever is left is redone by the next run).
        await asyncio.wait({task}, timeout=5)  # asyncio.wait_for would wait on past 5 s

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
