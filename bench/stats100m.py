"""Ops list and statistics endpoints at province scale: roll-ups vs raw rows, side by side.

One throw-away PostgreSQL cluster, three phases (``--phase all`` runs them in one go; the
cluster's port and database are kept in ``<cluster>/bench.json`` between phases):

1. ``generate``: the schema through migration 0007 (before the roll-ups), 10,000 communities
   with a box each (2 cities x 10 districts x 10 streets x 50 communities), then ``--rows``
   records made in the server, one ``INSERT ... SELECT generate_series`` per month partition
   (no Python per row; indexes dropped first and built afterwards, as a restore would), spread
   over the last 13 months, a fleet's mix by count: 50 % plays, 28 % access events, 15 %
   device health, 5 % portal reading stats, 1.5 % reports, 0.5 % alerts.
2. ``measure``: migrations 0008-0013 applied to that database (timed: the roll-ups', the
   districts' and the alert counts' backfills), then every list and statistics endpoint over
   loopback HTTP (aiohttp, the real app), p50/p95 over ``--rounds`` calls each cycling through
   windows, for a network admin, a city admin and a district admin, alternating call by call
   so every mode sees the same machine: statistics from the roll-ups and from raw rows only
   (``storage.rollups = False``, ``--raw-rounds`` calls); the console's content statistics
   also without 0013's years (``storage.years_table = False``, mode stats6), its answer
   compared with the new one, and its statement called directly as main before stats7
   built it (from now - N days, no years) and as now (from that day's start, years);
   answers compared;
   ``EXPLAIN (ANALYZE, BUFFERS)`` of each query written to ``--plans``; then the upload
   path's speed without a trigger, with 0009's, 0010's, 0011's (its report-class index),
   0012's and 0013's (``--ingest``). ``--only a,b`` measures those endpoints only;
   ``--alone`` makes the statistics' HTTP calls one after another, without the older
   statements' calls between them.
3. ``drop``: stop the cluster and delete it (disk is shared).

The cluster goes under ``TMPDIR`` (tests/cloudsync/helpers.py start_pg): 100 M rows (~71 GB
after the migrations) fitted on a 64 GB disk on a zstd-compressed btrfs loop file
(docs/deploy.md, "100 M rows").

    .venv/bin/python bench/stats100m.py --phase all --rows 20000000 --rounds 12 --plans docs/x.txt

Prints a JSON object on its last line (with the load average: the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
from aiohttp import web  # noqa: E402

from bench.console import pct  # noqa: E402
from bench.recordgen import Mix, generate_sql, upload_rate  # noqa: E402
from cloudsync.app import make_app, token_hash  # noqa: E402
from cloudsync.console.api import AREAS_SHOWN, ITEMS_SHOWN  # noqa: E402
from cloudsync.storage import open_storage  # noqa: E402
from cloudsync.storage.postgres import PgConn  # noqa: E402
from tests.cloudsync.helpers import PgCluster, start_pg  # noqa: E402
from tests.conftest import free_port  # noqa: E402

TARGET_P95_MS = 200
BOXES = 10_000
MONTHS = 13
CLASSES = ("alert", "access", "report", "play", "telemetry", "other")
# The box is a hash of g so that every box gets every kind; ts spreads the month ($3 its start,
# $4 its length in seconds) by a stride (rows arrive in seq order, not ts order, in a fleet).
GENERATE = generate_sql(
    Mix(200, (("play_record", 100, 3), ("access_event", 56, 1), ("device_health", 30, 4),
              ("reading_stats", 10, 4), ("report", 3, 2), ("alert", 1, 0))),
    box=f"'box-' || lpad(((hashint8(g) & 2147483647) % {BOXES})::text, 5, '0')",
    ts="$3::timestamptz + ((g * 7919) % $4) * interval '1 second'",
)  # fmt: skip
# What migrations 0006-0007 index records by: dropped for the load, built afterwards.
INDEXES = [
    ("ALTER TABLE records DROP CONSTRAINT records_pkey",
     "ALTER TABLE records ADD PRIMARY KEY (box_id, seq, kind, ts)"),
    ("DROP INDEX records_by_kind", "CREATE INDEX records_by_kind ON records (kind, ts)"),
    ("DROP INDEX records_by_arrival",
     "CREATE INDEX records_by_arrival ON records (kind, received_at)"),
    ("DROP INDEX records_by_record_id",
     "CREATE INDEX records_by_record_id ON records (kind, record_id)"),
    ("DROP INDEX records_report_recent", "CREATE INDEX records_report_recent ON records"
     " (ts, box_id, seq) WHERE kind = 'report'"),
    ("DROP INDEX records_report_text", "CREATE INDEX records_report_text ON records USING gin"
     " (qilu_bigrams(payload ->> 'text')) WHERE kind = 'report'"),
]  # fmt: skip


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def month_starts(now: datetime) -> list[datetime]:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    for back in range(MONTHS - 1, -1, -1):
        y, m = divmod(first.year * 12 + first.month - 1 - back, 12)
        out.append(first.replace(year=y, month=m + 1))
    return out


def next_month(d: datetime) -> datetime:
    y, m = divmod(d.year * 12 + d.month, 12)
    return d.replace(year=y, month=m + 1)


async def areas_and_boxes(conn: asyncpg.Connection) -> None:
    """2 cities x 10 districts x 10 streets x 50 communities, one box each."""
    await conn.execute(
        """
        INSERT INTO areas (id, parent_id, level, name, path, created_at)
        SELECT 'c' || c, NULL, 'city', '城市' || c, '/c' || c || '/', '2026-01-01'
        FROM generate_series(0, 1) c;
        INSERT INTO areas (id, parent_id, level, name, path, created_at)
        SELECT 'c' || c || 'd' || d, 'c' || c, 'district', '区' || d,
               '/c' || c || '/c' || c || 'd' || d || '/', '2026-01-01'
        FROM generate_series(0, 1) c, generate_series(0, 9) d;
        INSERT INTO areas (id, parent_id, level, name, path, created_at)
        SELECT a.id || 's' || s, a.id, 'street', '街道' || s, a.path || a.id || 's' || s || '/',
               '2026-01-01'
        FROM areas a, generate_series(0, 9) s WHERE a.level = 'district';
        INSERT INTO areas (id, parent_id, level, name, path, created_at)
        SELECT a.id || 'm' || m, a.id, 'community', '社区' || a.id || m,
               a.path || a.id || 'm' || m || '/', '2026-01-01'
        FROM areas a, generate_series(0, 49) m WHERE a.level = 'street';
        INSERT INTO boxes (id, community_id, name, secret, created_at, software_version)
        SELECT 'box-' || lpad((row_number() OVER (ORDER BY id) - 1)::text, 5, '0'), id,
               'box ' || id, 'x', '2026-01-01', '0.1.0'
        FROM areas WHERE level = 'community';
        """
    )
    assert await conn.fetchval("SELECT count(*) FROM boxes") == BOXES


async def generate(db: str, rows: int, now: datetime) -> dict[str, Any]:
    conn = await asyncpg.connect(db)
    months = month_starts(now)
    try:
        await areas_and_boxes(conn)
        for cls in CLASSES:
            for m in months:
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS records_{cls}_p{m:%Y%m} PARTITION OF"
                    f" records_{cls} FOR VALUES FROM ('{m:%Y-%m}') TO ('{next_month(m):%Y-%m}')"
                )
        for drop, _ in INDEXES:
            await conn.execute(drop)
    finally:
        await conn.close()
    # Rows per month in proportion to its seconds (the current month up to now).
    spans = [(m, int(((min(next_month(m), now)) - m).total_seconds())) for m in months]
    total_s = sum(s for _, s in spans)
    jobs: list[tuple[int, int, datetime, int]] = []
    lo = 1
    for i, (m, secs) in enumerate(spans):
        n = rows - (lo - 1) if i == len(spans) - 1 else round(rows * secs / total_s)
        for a in range(lo, lo + n, 1_000_000):  # one statement per million: progress shows
            jobs.append((a, min(lo + n - 1, a + 999_999), m, secs))
        lo += n
    t0 = time.monotonic()
    done = 0

    async def worker() -> None:
        nonlocal done
        c = await asyncpg.connect(db)
        try:
            while jobs:
                a, b, m, secs = jobs.pop(0)
                await c.execute(GENERATE, a, b, m, secs)
                done += b - a + 1
                log(f"{done:,} rows ({time.monotonic() - t0:.0f} s)")
        finally:
            await c.close()

    await asyncio.gather(worker(), worker())  # two cores
    t1 = time.monotonic()
    conn = await asyncpg.connect(db)
    try:
        for _, create in INDEXES:
            log(create[:70])
            await conn.execute(create)
        t2 = time.monotonic()
        await conn.execute("VACUUM ANALYZE")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {"rows": rows, "boxes": BOXES, "months": MONTHS, "insert_s": round(t1 - t0),
            "rows_per_s": round(rows / (t1 - t0)), "index_s": round(t2 - t1),
            "vacuum_analyze_s": round(time.monotonic() - t2), "database_gb": round(size / 1e9, 2),
            "bytes_per_row": round(size / rows)}  # fmt: skip


def state_path(base: Path) -> Path:
    return base / "bench.json"


async def phase_generate(args: argparse.Namespace) -> dict[str, Any]:
    free = shutil.disk_usage(tempfile.gettempdir()).free  # where start_pg puts the cluster
    need = args.rows * 650  # ~600 B per row measured with migration 0007's indexes, + slack
    if need > free - 15e9:  # leave 15 GB to the others sharing the disk
        raise SystemExit(
            f"{args.rows:,} rows need ~{need / 1e9:.0f} GB; {free / 1e9:.0f} GB free"
            " (15 GB left to others): choose fewer --rows"
        )
    pg = start_pg(fsync=False)
    now = datetime.now(UTC)
    state = {"base": str(pg.base), "port": pg.port, "user": pg.proc_user,
             "now": now.isoformat()}  # fmt: skip
    state_path(pg.base).write_text(json.dumps(state))
    log(f"cluster {pg.base} port {pg.port}")
    db = await pg.new_database()
    state["db"] = db
    state_path(pg.base).write_text(json.dumps(state))
    storage = await open_storage(db, migrate=False)
    await storage.migrate(upto=7)
    await storage.close()
    log("generating ...")
    state["data"] = await generate(db, args.rows, now)
    state_path(pg.base).write_text(json.dumps(state))
    log(json.dumps(state["data"]))
    return state


# --- measuring ---------------------------------------------------------------------------------

USERS = {"network": None, "city": "c0", "district": "c0d3"}  # ops users' areas
RAW_ROUNDS = 3  # the raw aggregation takes seconds per call: fewer rounds, same alternation


def day_ago(now: datetime, days: float, i: int = 0) -> str:
    """A window bound ``days`` back, moved 17 minutes per round so that every call asks for
    another window (its partial days differ, no result is reused)."""
    return (now - timedelta(days=days, minutes=17 * i)).isoformat()


def list_paths(now: datetime) -> dict[str, Any]:
    return {
        "reports_newest": lambda i: "/api/v1/ops/reports?limit=50",
        "reports_7d": lambda i: f"/api/v1/ops/reports?limit=50&since={day_ago(now, 7, i)}",
        "reports_category": lambda i: "/api/v1/ops/reports?limit=50&category=praise",
        "reports_urgent_open": lambda i: (
            "/api/v1/ops/reports?limit=50&urgency=immediate&status=received"
        ),
        "reports_search_rare": lambda i: f"/api/v1/ops/reports?limit=50&q=第{1000 + i * 7}号",
        "alerts": lambda i: "/api/v1/ops/alerts?limit=50",
        "alerts_critical_month": lambda i: (
            "/api/v1/ops/alerts?limit=50&level=critical"
            f"&since={day_ago(now, 60, i)}&until={day_ago(now, 30, i)}"
        ),
        "tickets": lambda i: "/api/v1/ops/tickets?limit=50",
        "boxes": lambda i: "/api/v1/ops/boxes?limit=100",
        # Not lists of records but console pages that read them (all open critical alerts,
        # each ticket's latest record): timed to show what they cost at this size.
        "console_overview": lambda i: "/api/v1/ops/overview",
        "console_tickets_board": lambda i: "/api/v1/ops/tickets/board?limit=200",
    }


def stats_paths(now: datetime) -> dict[str, Any]:
    return {
        "access_24h": lambda i: f"/api/v1/ops/stats/access?since={day_ago(now, 1, i)}",
        "access_30d": lambda i: f"/api/v1/ops/stats/access?since={day_ago(now, 30, i)}",
        "access_7d_a_month_ago": lambda i: (
            f"/api/v1/ops/stats/access?since={day_ago(now, 37, i)}&until={day_ago(now, 30, i)}"
        ),
        "access_all_time": lambda i: "/api/v1/ops/stats/access",
        "plays_30d": lambda i: f"/api/v1/ops/stats/plays?since={day_ago(now, 30, i)}",
        "plays_month_before": lambda i: (
            f"/api/v1/ops/stats/plays?since={day_ago(now, 60, i)}&until={day_ago(now, 30, i)}"
        ),
        "reading_by_content_30d": lambda i: (
            f"/api/v1/ops/stats/reading?group=content&since={day_ago(now, 30, i)}"
        ),
        "reading_by_community_30d": lambda i: (
            f"/api/v1/ops/stats/reading?group=community&since={day_ago(now, 30, i)}"
        ),
        # From the 15th of last month: half a month of daily per-community rows, then the
        # month so far from the monthly totals (the 30-day windows above, on the 30th, read
        # this month whole or 27-29 days of it).
        "reading_by_community_45d": lambda i: (
            f"/api/v1/ops/stats/reading?group=community&since={day_ago(now, 45, i)}"
        ),
        "console_content_30d": lambda i: f"/api/v1/ops/stats/content?days={30 - i % 3}",
        "console_content_45d": lambda i: f"/api/v1/ops/stats/content?days={45 - i % 3}",
        # Older than the per-community hours retention keeps (92 days by default, stats5):
        # the partial first day per community from the records.
        "reading_by_community_120d": lambda i: (
            f"/api/v1/ops/stats/reading?group=community&since={day_ago(now, 120, i)}"
        ),
        "console_content_365d": lambda i: f"/api/v1/ops/stats/content?days={365 - i % 3}",
        "console_content_90d": lambda i: f"/api/v1/ops/stats/content?days={90 - i % 3}",
    }


class Capture:
    """The SQL each request ran (PgConn.fetch/fetchrow), to EXPLAIN it afterwards."""

    def __init__(self) -> None:
        self.on = False
        self.seen: list[tuple[str, tuple]] = []
        for name in ("fetch", "fetchrow"):
            orig = getattr(PgConn, name)

            def wrap(self_: Any, sql: str, *args: Any, _orig: Any = orig) -> Any:
                if self.on:
                    self.seen.append((sql, args))
                return _orig(self_, sql, *args)

            setattr(PgConn, name, wrap)


ROLLUP_ENDS = ("_daily", "_hourly", "_monthly", "_yearly", "_tenday", "_tenhour", "_counts")


async def explain(conn: asyncpg.Connection, sql: str, args: tuple) -> tuple[list[str], dict]:
    plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)]
    tables = sorted({m for line in plan for m in re.findall(r" on (\w+)", line)})
    ms = float(re.search(r"Execution Time: ([\d.]+)", plan[-1]).group(1))  # type: ignore[union-attr]
    planning = [float(m.group(1)) for line in plan if (m := re.search(r"Planning Time: ([\d.]+)",
                                                                       line))]  # fmt: skip
    return plan, {"execution_ms": round(ms, 1), "planning_ms": round(sum(planning), 1),
                  "relations_read": len(tables),
                  "record_partitions": sorted(t for t in tables if t.startswith("records_")),
                  "rollup_tables": sorted(t for t in tables
                                          if t.endswith(ROLLUP_ENDS))}  # fmt: skip


async def time_one(s: aiohttp.ClientSession, url: str, path: str, token: str) -> tuple[float, Any]:
    t0 = time.perf_counter()
    async with s.get(url + path, headers={"Authorization": f"Bearer {token}"}) as r:
        body = await r.json()
        assert r.status == 200, (path, r.status, body)
    return (time.perf_counter() - t0) * 1000, body


def same_answer(name: str, a: Any, b: Any) -> bool | None:
    """Whether both modes answered alike (lists compared as sets; a page with the head of the
    whole listing). None for the console's
    content statistics: it keeps the top 200 items / 500 communities, and which of several
    tied at the cut it keeps depends on row order (tests/cloudsync/test_rollups.py compares
    the storage's full answers instead)."""
    if name.startswith("console_"):
        return None
    if isinstance(a, dict) and "next_offset" in a and "next_offset" not in b:
        # A page (portal reading since stats3) against the whole listing, both by their keys:
        # the page is the listing's head.
        b = {"items": b["items"][: len(a["items"])]}
        a = {"items": a["items"]}

    def norm(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, list):
            return sorted(json.dumps(norm(v), sort_keys=True) for v in x)
        return x

    return norm(a) == norm(b)


def summary(ms: list[float]) -> dict[str, Any]:
    # "slowest": which call (0 = first) took max_ms: one slow call of ten is the p95, and
    # a first call after the migrations or the prune is not a slow statement.
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(pct(ms, 0.95), 1),
            "max_ms": round(max(ms), 1), "calls": len(ms),
            "slowest": ms.index(max(ms))}  # fmt: skip


async def measure(state: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    db = state["db"]
    now = datetime.fromisoformat(state["now"])
    out: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    storage = await open_storage(db, migrate=False)
    log("migrations 0008-0013 (tables, trigger, backfills) ...")
    t0 = time.monotonic()
    applied = await storage.migrate(upto=args.upto)
    took = time.monotonic() - t0
    if args.prune_hours:
        out["prune_hours"] = await prune_hours(db, now, args.prune_hours)
        log(json.dumps(out["prune_hours"]))
    conn = await asyncpg.connect(db)
    try:
        backfills = {}
        for table in ("rollup_backfill", "backfill_0009", "backfill_0010"):
            if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                backfills[table] = await conn.fetch(
                    f"SELECT part, rows, seconds FROM {table} WHERE done_at IS NOT NULL"
                    " ORDER BY part"
                )
        sizes = await conn.fetch(
            "SELECT c.relname, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS b"
            " FROM pg_class c WHERE c.relname ~ '^((access|play|reading)_"
            "(daily|hourly|monthly|yearly|tenday|tenhour|leaf_hourly)|alert_counts"
            "|records_report_by_urgency_status)$'"
            " ORDER BY 1"
        )
        db_size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()

    def part_summary(parts: list, lists: bool) -> dict[str, Any]:
        mine = [r for r in parts if (r["part"].startswith(("records_report", "records_alert"))
                                     == lists)]  # fmt: skip
        if not mine:
            return {}
        rows = sum(r["rows"] or 0 for r in mine)
        secs = sum(r["seconds"] or 0 for r in mine)
        slowest = max(mine, key=lambda r: r["seconds"] or 0)
        return {"partitions": len(mine), "rows": rows, "seconds": round(secs, 1),
                "seconds_per_million_rows": round(secs / max(rows, 1) * 1e6, 1),
                "longest_partition": {"part": slowest["part"], "rows": slowest["rows"],
                                      "seconds": round(slowest["seconds"], 1)}}  # fmt: skip

    out["migrations"] = {
        "applied": applied, "seconds": round(took, 1), "database_gb": round(db_size / 1e9, 2),
        "0008_daily": part_summary(backfills.get("rollup_backfill", []), False),
        # SHARE lock per partition while its hours are counted:
        "0009_hourly": part_summary(backfills.get("backfill_0009", []), False),
        # an UPDATE per partition, no lock against inserts:
        "0009_districts": part_summary(backfills.get("backfill_0009", []), True),
        # 0010: SHARE lock per play / telemetry partition (blocks, per-community hours) and
        # per alert partition (the open critical alerts, acknowledgements held too):
        "0010_blocks": part_summary(backfills.get("backfill_0010", []), False),
        "0010_alert_counts": part_summary(backfills.get("backfill_0010", []), True),
        "rollup_tables": {r["relname"]: {"rows": r["rows"], "mb": round(r["b"] / 1e6, 1)}
                          for r in sizes},
    }  # fmt: skip
    log(json.dumps(out["migrations"]))
    if args.migrate_only:
        await storage.close()
        return out
    cap = Capture()
    app = make_app(storage, Path(state["base"]) / "blobs")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    tokens = {}
    users = args.users.split(",") if args.users else list(USERS)
    for name, area in USERS.items():
        if name not in users:
            continue
        tokens[name] = f"bench-{name}-token"
        if await storage.ops_user_by_token(token_hash(tokens[name])) is None:
            await storage.ops_user_add(f"bench-{name}", token_hash(tokens[name]), "viewer", area)
    plans: list[str] = []
    timings: dict[str, Any] = {}
    explains: dict[str, Any] = {}
    econn = await asyncpg.connect(db)
    years_13 = storage.years_table  # play_yearly exists

    def chosen(paths: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in paths.items() if not args.only or k in args.only.split(",")}

    def set_mode(mode: str) -> None:
        """new: this branch; raw: records only (the baseline); stats6: without 0013's years
        (the older paths' figures, before 0009 / 0010 / 0012 and stats3's, are in docs/)."""
        storage.years_table = years_13 and mode == "new"
        storage.rollups = mode != "raw"

    async def same_console(path: str, who: str) -> bool:
        """The console statement's text as new and as stats6 (without the years, 0013) for
        one ``since`` (the HTTP answers each take their own clock)."""
        m = re.search(r"days=(\d+)", path)
        assert m is not None
        since = (datetime.now(UTC) - timedelta(days=int(m.group(1)))).date().isoformat()
        scope = {"network": "/", "city": "/c0/", "district": "/c0/c0d3/"}[who]
        texts = []
        for mode in ("new", "stats6"):
            set_mode(mode)
            texts.append(await storage.content_console_json(scope, since, ITEMS_SHOWN,
                                                            AREAS_SHOWN))  # fmt: skip
        set_mode("new")
        return texts[0] == texts[1]

    async def direct(path: str, who: str, into: dict[str, list[float]]) -> None:
        """The console statement called directly (no HTTP), main's way and this branch's,
        in turn: main (before stats7) from now - N days exactly, without the years;
        stats7 from the start of that day, with them (its windows read no hours and no
        records)."""
        m = re.search(r"days=(\d+)", path)
        assert m is not None
        at = datetime.now(UTC) - timedelta(days=int(m.group(1)))
        scope = {"network": "/", "city": "/c0/", "district": "/c0/c0d3/"}[who]
        ways = [("main", "stats6", at.isoformat()), ("stats7", "new", at.date().isoformat())]
        for name, mode, since in ways if len(into["main"]) % 2 == 0 else ways[::-1]:
            set_mode(mode)
            t0 = time.perf_counter()
            await storage.content_console_json(scope, since, ITEMS_SHOWN, AREAS_SHOWN)
            into[name].append((time.perf_counter() - t0) * 1000)
        set_mode("new")

    async def plan_of(label: str, path: str, token: str, mode: str) -> None:
        set_mode(mode)
        cap.seen, cap.on = [], True
        try:
            await time_one(s, url, path, token)
        finally:
            cap.on = False
        mine = [(q, a) for q, a in cap.seen
                if re.search(r"records|_daily|_hourly|_monthly|_yearly|_ten|alert_counts",
                             q)]  # fmt: skip
        for n, (q, a) in enumerate(mine):
            plan, info = await explain(econn, q, a)
            explains[f"{label} #{n}"] = info
            shown = [repr(x)[:120] + ("..." if len(repr(x)) > 120 else "") for x in a]
            plans.append(f"== {label} #{n}: {path}\n-- {q}\n-- args: {shown}\n"
                         + "\n".join(line[:300] for line in plan))  # fmt: skip

    try:
        async with aiohttp.ClientSession() as s:

            async def timed(mode: str, p: str, token: str, into: list[float]) -> Any:
                """One call with the storage in ``mode``: its time into ``into``, its body."""
                set_mode(mode)
                took, body = await time_one(s, url, p, token)
                into.append(took)
                return body

            for who, token in tokens.items():
                for name, path in ({} if args.stats_only else chosen(list_paths(now))).items():
                    ms: list[float] = []
                    for i in range(args.rounds):
                        await timed("new", path(i), token, ms)
                    timings[f"list {name} {who}"] = summary(ms)
                    await plan_of(f"list {name} {who}", path(0), token, "new")
                    log(f"list {name} {who}: {timings[f'list {name} {who}']}")
                for name, path in ({} if args.lists_only else chosen(stats_paths(now))).items():
                    ms_roll: list[float] = []
                    ms_raw: list[float] = []
                    ms_stats6: list[float] = []
                    ms_direct: dict[str, list[float]] = {"main": [], "stats7": []}
                    same5: list[bool] = []
                    same: list[bool | None] = []
                    for i in range(args.rounds):
                        # Alternating: every mode sees the same machine, call by call.
                        roll_body = await timed("new", path(i), token, ms_roll)
                        if name.startswith("console_content") and not args.alone:
                            # stats6: the same statement without the years (main before
                            # stats7): both rank ties alike, so the answers must be equal
                            # (but "since").
                            await timed("stats6", path(i), token, ms_stats6)
                            same5.append(await same_console(path(i), who))
                            await direct(path(i), who, ms_direct)
                        raws = 1 if name.endswith(("_all_time", "_365d")) else args.raw_rounds
                        if i < min(raws, args.raw_rounds) and not args.alone:
                            raw_body = await timed("raw", path(i), token, ms_raw)
                            set_mode("new")
                            _, roll_body = await time_one(s, url, path(i), token)
                            same.append(same_answer(name, roll_body, raw_body))
                    timings[f"stats {name} {who}"] = {
                        "rollup": summary(ms_roll),
                        "raw": summary(ms_raw) if ms_raw else None,
                        **({"direct": {k: summary(v) for k, v in ms_direct.items()}}
                           if ms_direct["main"] else {}),
                        **({"stats6": summary(ms_stats6), "same_as_stats6": all(same5)}
                           if ms_stats6 else {}),
                        "same_answer": None if None in same else all(same),
                    }  # fmt: skip
                    modes = [("new", "rollup"), ("raw", "raw")]
                    if ms_stats6:
                        await plan_of(f"stats {name} {who} stats6", path(0), token, "stats6")
                    for mode, label in modes[: 2 if args.raw_rounds else 1]:
                        await plan_of(f"stats {name} {who} {label}", path(0), token, mode)
                    set_mode("new")
                    log(f"stats {name} {who}: {timings[f'stats {name} {who}']}")
    finally:
        set_mode("new")
        await econn.close()
        await runner.cleanup()
        await storage.close()
    if args.plans:
        args.plans.write_text("\n\n".join(plans) + "\n")
    out["timings"] = timings
    out["explain"] = explains
    lists = [v["p95_ms"] for k, v in timings.items() if k.startswith("list ")] or [0]
    rolled = [v["rollup"]["p95_ms"] for k, v in timings.items() if k.startswith("stats ")] or [0]
    raw = [v["raw"]["p95_ms"] for k, v in timings.items()
           if k.startswith("stats ") and v["raw"]] or [0]  # fmt: skip
    out["worst_p95_ms"] = {"lists": max(lists), "stats_rollup": max(rolled),
                           "stats_raw": max(raw)}  # fmt: skip
    out["answers_differ"] = sorted(k for k, v in timings.items() if v.get("same_answer") is False
                                   or v.get("same_as_stats6") is False)  # fmt: skip
    out["over_target"] = sorted(
        [k for k, v in timings.items() if k.startswith("list ") and v["p95_ms"] > TARGET_P95_MS]
        + [k for k, v in timings.items()
           if k.startswith("stats ") and v["rollup"]["p95_ms"] > TARGET_P95_MS]
    )  # fmt: skip
    out["loadavg_end"] = os.getloadavg()
    return out


async def ingest(pg: PgCluster, records: int) -> dict[str, Any]:
    """What the roll-up trigger costs the upload path: storage.upload (500-record batches over
    1,000 boxes, the fleet's mix of kinds, ts now) into empty databases without (migration
    0007), with 0009's trigger (daily, hourly, monthly), with 0010's (also 10-day blocks,
    per-community hours and 10-hour blocks, open critical alerts), with 0011's (its
    report-class index on urgency and status), with 0012's (districts' months) and with
    0013's (years), A B C D E F F E D C B A to even out the machine's noise."""
    from bench.console import generate as areas_1000

    dbs = {}
    layouts = (("without", 7), ("0009", 9), ("0010", 10), ("0011", 11), ("0012", 12),
               ("0013", None))
    for layout, upto in layouts:
        dbs[layout] = await pg.new_database()
        storage = await open_storage(dbs[layout], migrate=False)
        await storage.migrate(upto=upto)
        await storage.close()
        await areas_1000(dbs[layout], 0)
    kinds = ["access_event"] * 12 + ["play_record"] * 20 + ["device_health"] * 6
    kinds += ["reading_stats"] * 2
    kinds.append("report")  # ~2.5 %: stamped with its district (0009)
    kinds.append("alert")  # ~2.5 %: critical ones counted (0010)
    ts = datetime.now(UTC).isoformat()
    seqs = dict.fromkeys(range(1000), 0)

    def payload(k: str, seq: int) -> str:
        return json.dumps({"schema": f"qilu.v1.{k}", "decision": "granted", "method": "face",
                           "content_id": f"ct-{seq % 50}", "duration_ms": 15000, "reads": 1,
                           "level": "critical"})

    out: dict[str, list[float]] = {layout: [] for layout, _ in layouts}
    order = [layout for layout, _ in layouts]
    for layout in order + order[::-1]:  # A B C D E E D C B A
        storage = await open_storage(dbs[layout], migrate=False)
        try:
            out[layout].append(await upload_rate(storage, records // 2, kinds, ts, seqs,
                                                 payload))
        finally:
            await storage.close()
    return {
        f"{layout}_rollups": {"records_per_s": round(statistics.mean(v)),
                              "runs": [round(x) for x in v]}
        for layout, v in out.items()
    }  # fmt: skip


async def prune_hours(db: str, now: datetime, days: int) -> dict[str, Any]:
    """Retention's pruning of per-community hours (cloudsync/retention.py prune_hours, grace
    0), timed; the tables' sizes before and after (VACUUM FULL: the bench's way to show what
    the kept rows take; in service autovacuum makes the space reusable instead)."""
    from cloudsync.retention import CommunityHours, RetentionConfig, _Pg
    from cloudsync.storage.rollups import COMMUNITY_HOURS

    tables = [t.table for t in COMMUNITY_HOURS]
    size = ("SELECT c.relname, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS b"
            " FROM pg_class c WHERE c.relname = ANY($1::text[]) ORDER BY 1")  # fmt: skip
    conn = await asyncpg.connect(db)
    try:
        before = {r["relname"]: {"rows": r["rows"], "mb": round(r["b"] / 1e6, 1)}
                  for r in await conn.fetch(size, tables)}  # fmt: skip
        cfg = RetentionConfig(community_hours=CommunityHours(keep_days=days, grace_s=0))
        pg = _Pg(type("S", (), {"dsn": db})(), cfg, log)
        t0 = time.monotonic()
        steps = await pg.prune_hours(conn, now, False)
        took = time.monotonic() - t0
        for t in tables:
            await conn.execute(f"VACUUM (FULL, ANALYZE) {t}")
        after = {r["relname"]: {"rows": r["rows"], "mb": round(r["b"] / 1e6, 1)}
                 for r in await conn.fetch(size, tables)}  # fmt: skip
        db_size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {"keep_days": days, "deleted_rows": sum(s.rows for s in steps),
            "seconds": round(took, 1), "before": before, "after": after,
            "database_gb_after": round(db_size / 1e9, 2)}  # fmt: skip


def cluster_of(state: dict[str, Any]) -> PgCluster:
    return PgCluster(Path(state["base"]), state["port"], state["user"])


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=["generate", "measure", "drop", "all"], default="all")
    ap.add_argument("--cluster", type=Path, help="The cluster folder of an earlier generate.")
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--plans", type=Path, default=None, help="Write EXPLAIN output here.")
    ap.add_argument("--ingest", type=int, default=200_000, help="Records for the ingest part.")
    ap.add_argument("--lists-only", action="store_true", help="Measure: the lists only.")
    ap.add_argument("--stats-only", action="store_true", help="Measure: the statistics only.")
    ap.add_argument("--only", default="", help="Measure: these endpoints (names, comma-separated).")
    ap.add_argument("--users", default="",
                    help="Measure: these ops users only (network,city,district; default all).")
    ap.add_argument("--raw-rounds", type=int, default=RAW_ROUNDS,
                    help="Measure: calls per statistic from the raw records (0: none).")
    ap.add_argument("--upto", type=int, default=None,
                    help="Measure: apply the migrations up to this one only (default all).")
    ap.add_argument("--prune-hours", type=int, default=0, metavar="DAYS",
                    help="Measure: delete per-community hours older than DAYS first (the"
                    " retention step, timed; then VACUUM FULL of those tables to show their"
                    " size).")
    ap.add_argument("--alone", action="store_true",
                    help="Measure: the statistics' HTTP calls one after another, none of the"
                    " older statements' calls between them (what the alternation costs).")
    ap.add_argument("--migrate-only", action="store_true",
                    help="Measure: apply the migrations (timed) and stop.")  # fmt: skip
    args = ap.parse_args()
    state: dict[str, Any] = {}
    if args.phase in ("generate", "all"):
        state = await phase_generate(args)
        print(f"cluster: {state['base']}", file=sys.stderr)
    else:
        if args.cluster is None:
            raise SystemExit("--cluster: name the folder a generate phase printed")
        state = json.loads(state_path(args.cluster).read_text())
    if args.phase in ("measure", "all"):
        state["measure"] = await measure(state, args)
    if args.phase in ("measure", "all") and args.ingest:
        log("ingest with and without the roll-up trigger ...")
        state["measure"]["ingest"] = await ingest(cluster_of(state), args.ingest)
        log(json.dumps(state["measure"]["ingest"]))
    if args.phase in ("drop", "all"):
        cluster_of(state).stop()
        log(f"cluster {state['base']} stopped and deleted")
    out = {k: v for k, v in state.items() if k not in ("user",)}
    out["loadavg"] = os.getloadavg()
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
