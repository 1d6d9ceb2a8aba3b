"""Console benchmark: the city console's page API server time at city scale in PostgreSQL, and
the time from a box's critical alert to it showing in an open console.

- pages: 1 city, 10 districts, 100 streets, 1,000 communities with one box each; ``--reports``
  reports spread over a year plus alerts and tickets, written straight into PostgreSQL (COPY);
  then each console page's API calls are timed over loopback HTTP, as the network-wide admin
  and as a district admin. Baselines measured side by side in the same run: ``/healthz`` (the
  HTTP floor) and the pre-console ops call ``GET /api/v1/ops/boxes?limit=100``.
- alert latency: a console session holds the live alert stream (SSE) open; a provisioned box
  identity uploads a critical alert over the signed box protocol (the box's own sync client);
  time until the event arrives at the console, p50/p95 over ``--alerts`` alerts.

    .venv/bin/python bench/console.py [--reports 300000] [--rounds 20] [--alerts 30]

Generating the 1,000,000 reports (the issue's size, the default) takes about 2.5 minutes on
the 2 shared cores here; --reports scales it down.
Prints a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from cloudsync.console.auth import ConsoleSettings, hash_password  # noqa: E402
from edge.sync.client import CloudClient  # noqa: E402
from edge.sync.store import OutboxRow  # noqa: E402
from tests.cloudsync.helpers import start_cloud, start_pg  # noqa: E402

CATS = [
    "facilities_repair", "environment_sanitation", "safety_hazard", "property_service",
    "parking_traffic", "noise_neighbours", "policy_enquiry", "praise", "suggestion", "other",
]  # fmt: skip
PASSWORD = "bench-password-1"
TARGETS = {"page_p95_ms": 1000, "alert_to_console_p95_s": 2.0}


async def fleet(conn: asyncpg.Connection, rnd: random.Random, now: datetime) -> list[tuple]:
    """1 city, 10 districts, 100 streets, 1,000 communities with a box each: only the areas and
    boxes tables, so any schema version has them (bench/partitions.py loads them at 0005)."""
    areas = [("jinan", None, "city", "济南市", "/jinan/", None, None)]
    communities = []
    for d in range(10):
        did = f"d{d}"
        areas.append((did, "jinan", "district", f"第{d}区", f"/jinan/{did}/", None, None))
        for s in range(10):
            sid = f"{did}s{s}"
            areas.append((sid, did, "street", f"街道{s}", f"/jinan/{did}/{sid}/", None, None))
            for c in range(10):
                cid = f"{sid}c{c}"
                lat, lon = 36.6 + rnd.random() * 0.2, 116.9 + rnd.random() * 0.3
                areas.append((cid, sid, "community", f"社区{cid}", f"/jinan/{did}/{sid}/{cid}/",
                              lat, lon))  # fmt: skip
                communities.append(cid)
    await conn.executemany(
        "INSERT INTO areas (id, parent_id, level, name, path, created_at, lat, lon)"
        " VALUES ($1, $2, $3, $4, $5, '2026-01-01', $6, $7)",
        areas,
    )
    boxes = []
    for i, cid in enumerate(communities):
        seen = (now - timedelta(seconds=rnd.choice([5, 30, 600, 86400]))).isoformat()
        boxes.append((f"box-{i:04d}", cid, f"box {cid}", "x", "2026-01-01", seen, "0.1.0",
                      json.dumps([{"kind": "door", "id": "door-1", "state": "online"}]),
                      rnd.randint(0, 50)))  # fmt: skip
    await conn.executemany(
        "INSERT INTO boxes (id, community_id, name, secret, created_at, last_seen_at,"
        " software_version, devices, outbox_rows) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        boxes,
    )
    return boxes


async def generate(db: str, reports: int) -> dict:
    """Areas, boxes and records straight into PostgreSQL."""
    t0 = time.monotonic()
    rnd = random.Random(7)
    now = datetime.now(UTC)
    conn = await asyncpg.connect(db)
    try:
        # Bulk load as a restore would: the report search index and the roll-up trigger
        # (migration 0007) go back on afterwards, timed, as the migration does on a database
        # that already holds the reports.
        await conn.execute("DROP INDEX records_report_text")
        await conn.execute("ALTER TABLE records DISABLE TRIGGER records_report_rollup")
        boxes = await fleet(conn, rnd, now)
        seqs = dict.fromkeys((b[0] for b in boxes), 0)

        def row(box: str, kind: str, rid: str, ts: str, payload: dict) -> tuple:
            seqs[box] += 1
            payload = {"schema": f"qilu.v1.{kind}", "id": rid, "ts": ts, **payload}
            return (box, seqs[box], 2, kind, rid, ts, json.dumps(payload, ensure_ascii=False), ts)

        chunk: list[tuple] = []
        cols = ["box_id", "seq", "priority", "kind", "record_id", "ts", "payload", "received_at"]

        async def flush() -> None:
            await conn.copy_records_to_table("records", records=chunk, columns=cols)
            chunk.clear()

        for i in range(reports):
            box = boxes[rnd.randrange(len(boxes))][0]
            ts = (now - timedelta(seconds=rnd.randrange(365 * 86400))).isoformat()
            text = f"第{i}号反映：楼道灯坏了，电梯异响"
            if i == reports // 2:  # one report names a rare thing in words
                text += "，三单元" + RARE_WORD
            chunk.append(row(box, "report", f"rp-{i}", ts, {
                "text": text, "category": rnd.choice(CATS),
                "sentiment": round(rnd.uniform(-1, 1), 2), "urgency": "normal",
                "status": "received", "photos": 0}))  # fmt: skip
            if len(chunk) >= 20_000:
                await flush()
        for i in range(reports // 100):
            box = boxes[rnd.randrange(len(boxes))][0]
            ts = (now - timedelta(seconds=rnd.randrange(30 * 86400))).isoformat()
            chunk.append(row(box, "alert", f"al-{i}", ts, {
                "level": rnd.choice(["critical", "warning", "info"]), "type": "urgent_report",
                "message": "紧急反映", "evidence": []}))  # fmt: skip
            chunk.append(row(box, "repair_ticket", f"tk-{i}", ts, {
                "title": "电梯故障", "status": rnd.choice(["open", "assigned", "in_progress",
                "resolved", "confirmed"]), "urgency": "normal"}))  # fmt: skip
        if chunk:
            await flush()
        await conn.executemany(
            "UPDATE boxes SET acked_seq = $1, max_seq = $1 WHERE id = $2",
            [(v, k) for k, v in seqs.items()],
        )
        generated = time.monotonic() - t0
        migration = await index_and_rollup(conn)
        migration["ingest"] = await trigger_cost(conn, boxes[0][0], seqs[boxes[0][0]])
        # Steady state: autovacuum would have run over a table this size (index-only scans
        # need its visibility map).
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()
    return {"communities": len(boxes), "reports": reports,
            "alerts": reports // 100, "tickets": reports // 100,
            "generate_s": round(generated, 1), "migration_0007": migration}  # fmt: skip


def migration_sql(start: str) -> str:
    """One statement of migration 0007 (postgres), from the line starting with ``start``."""
    sql = (ROOT / "cloudsync/migrations/postgres/0007_console_search_rollout.sql").read_text()
    tail = sql[sql.index(start) :]
    return tail[: tail.index(";") + 1]


async def index_and_rollup(conn: asyncpg.Connection) -> dict:
    """What migration 0007 costs on a database that already holds the reports."""
    t0 = time.monotonic()
    await conn.execute(migration_sql("CREATE INDEX records_report_text"))
    t1 = time.monotonic()
    await conn.execute(migration_sql("INSERT INTO report_weekly (week"))
    t2 = time.monotonic()
    await conn.execute("ALTER TABLE records ENABLE TRIGGER records_report_rollup")
    rows = await conn.fetchval("SELECT count(*) FROM report_weekly")
    size = await conn.fetchval(  # one index per month partition since migration 0006
        "SELECT sum(pg_relation_size(relid))::bigint FROM pg_partition_tree('records_report_text')"
    )
    return {"search_index_build_s": round(t1 - t0, 1), "search_index_mb": round(size / 2**20),
            "rollup_backfill_s": round(t2 - t1, 1), "rollup_rows": rows}  # fmt: skip


async def trigger_cost(conn: asyncpg.Connection, box: str, seq: int, n: int = 20_000) -> dict:
    """Reports COPYed in (with the search index) with the roll-up trigger off, then on:
    what the roll-up adds to ingest."""
    # Dated over a year back: these must not become the newest reports the searches read.
    now = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    out = {}
    cols = ["box_id", "seq", "priority", "kind", "record_id", "ts", "payload", "received_at"]
    for state in ("DISABLE", "ENABLE"):
        rows = []
        for _ in range(n):
            seq += 1
            payload = json.dumps({"schema": "qilu.v1.report", "id": f"ing-{seq}", "ts": now,
                                  "text": f"第{seq}号反映：垃圾没人清理", "category": "other",
                                  "sentiment": 0.1}, ensure_ascii=False)  # fmt: skip
            rows.append((box, seq, 2, "report", f"ing-{seq}", now, payload, now))
        await conn.execute(f"ALTER TABLE records {state} TRIGGER records_report_rollup")
        t0 = time.perf_counter()
        await conn.copy_records_to_table("records", records=rows, columns=cols)
        took = time.perf_counter() - t0
        out["reports_per_s_trigger_" + ("off" if state == "DISABLE" else "on")] = round(n / took)
    await conn.execute("UPDATE boxes SET acked_seq = $1, max_seq = $1 WHERE id = $2", seq, box)
    return out


async def sign_in(url: str, name: str) -> tuple[aiohttp.ClientSession, str]:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.get(url + "/console/login") as r:
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    async with s.post(url + "/console/login", allow_redirects=False,
                      data={"csrf": token, "name": name, "password": PASSWORD}) as r:  # fmt: skip
        assert r.status == 303, await r.text()
    async with s.get(url + "/console/overview") as r:
        csrf = re.search(r'name="csrf" content="([^"]+)"', await r.text()).group(1)  # type: ignore[union-attr]
    return s, csrf


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def time_calls(s: aiohttp.ClientSession, url: str, paths: dict, rounds: int) -> dict:
    out = {}
    for name, path in paths.items():
        ms = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            async with s.get(url + path) as r:
                await r.read()
                assert r.status == 200, (path, r.status)
            ms.append((time.perf_counter() - t0) * 1000)
        out[name] = {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(pct(ms, 0.95), 1)}
    return out


RARE_WORD = "煤气罐漏气"  # in one report only
PAGES = {
    "baseline_healthz": "/healthz",
    "baseline_ops_boxes": "/api/v1/ops/boxes?limit=100",
    "page_shell_overview": "/console/overview",
    "overview": "/api/v1/ops/overview",
    "alerts": "/api/v1/ops/alerts?limit=200",
    "reports_list": "/api/v1/ops/reports?limit=50",
    "reports_search_common_word": "/api/v1/ops/reports?limit=50&q=%E7%94%B5%E6%A2%AF",
    # A term in one report only: found through the character-pair index (migration 0007).
    "reports_search_rare": "/api/v1/ops/reports?limit=50&q=%E7%AC%AC12345%E5%8F%B7",
    "reports_search_rare_word": "/api/v1/ops/reports?limit=50&q=" + quote(RARE_WORD),
    "reports_stats_12w": "/api/v1/ops/stats/reports?weeks=12",  # the weekly roll-up
    "content_stats_30d": "/api/v1/ops/stats/content?days=30",
    "rollouts": "/api/v1/ops/rollouts",
    "tickets_board": "/api/v1/ops/tickets/board",
    "audit": "/api/v1/ops/audit",
}


RARE, COMMON = "第12345号", "电梯"  # RARE_WORD: see PAGES
# The statements the console ran before this work (cloudsync/storage/queries.py at main
# 8155a9c): search by LIKE over every report in scope, charts by aggregating the reports.
# {cond} is the scope condition on r.box_id, $1 its value, exactly as the storage builds it.
BEFORE = {
    "search": (
        "SELECT r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload, b.community_id"
        " FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond} AND r.kind IN ('report')"
        " AND (r.record_id = $2 OR (r.payload ->> 'text') LIKE $3 ESCAPE '\\')"
        " ORDER BY r.ts DESC, r.box_id DESC, r.seq DESC LIMIT 50"
    ),
    "charts_days": (
        "SELECT substr((r.payload ->> 'ts'), 1, 10) AS day, count(*) AS n,"
        " avg(CAST((r.payload ->> 'sentiment') AS DOUBLE PRECISION)) AS mood"
        " FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond} AND r.kind = 'report'"
        " AND r.ts >= $2 AND (r.payload ->> 'ts') >= $2 GROUP BY 1 ORDER BY 1"
    ),
    "charts_cells": (
        "SELECT b.community_id, (r.payload ->> 'category') AS category, count(*) AS n"
        " FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond} AND r.kind = 'report'"
        " AND r.ts >= $2 AND (r.payload ->> 'ts') >= $2 GROUP BY 1, 2 ORDER BY 1, 2"
    ),
}


async def before_after(db: str, storage, scope: str, rounds: int) -> dict:
    """The old statements against the new storage calls on the same data, in the database
    (no HTTP): p95 ms each. Rare searches get 3 rounds (the old one reads every report)."""
    today = datetime.now(UTC).date()
    since = (today - timedelta(days=today.weekday() + 7 * 11)).isoformat()
    conn = await asyncpg.connect(db)
    try:
        if scope == "/":
            cond, arg = "CAST($1 AS TEXT) <> ''", scope
        else:
            cond = "r.box_id = ANY($1::text[])"
            arg = [r["id"] for r in await conn.fetch(
                "SELECT b.id FROM boxes b JOIN areas a ON a.id = b.community_id"
                " WHERE substr(a.path, 1, length($1)) = $1", scope)]  # fmt: skip

        async def old_search(term: str) -> None:
            await conn.fetch(BEFORE["search"].format(cond=cond), arg, term, f"%{term}%")

        async def old_charts() -> None:
            await conn.fetch(BEFORE["charts_days"].format(cond=cond), arg, since)
            await conn.fetch(BEFORE["charts_cells"].format(cond=cond), arg, since)

        async def new_search(term: str) -> None:
            await storage.records_query(["report"], scope, None, None, None, {}, None, 50, term)

        async def new_charts() -> None:
            await storage.report_weekly(scope, since)

        cases = {
            "search_rare": (lambda: old_search(RARE), lambda: new_search(RARE), 3),
            "search_rare_word": (lambda: old_search(RARE_WORD), lambda: new_search(RARE_WORD), 3),
            "search_common": (lambda: old_search(COMMON), lambda: new_search(COMMON), rounds),
            "charts_12w": (old_charts, new_charts, min(rounds, 5)),
        }
        out = {}
        for name, (old, new, n) in cases.items():
            row = {}
            for label, fn in (("before", old), ("after", new)):
                ms = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    await fn()
                    ms.append((time.perf_counter() - t0) * 1000)
                row[f"{label}_p95_ms"] = round(pct(ms, 0.95), 1)
            row["speedup"] = round(row["before_p95_ms"] / max(row["after_p95_ms"], 0.01), 1)
            out[name] = row
        return out
    finally:
        await conn.close()


async def alert_latency(cloud, url: str, n: int) -> dict:
    ident = await cloud.new_box("alertc", city="jinan", district="d0", street="d0s0")
    client = CloudClient(ident)
    s, _ = await sign_in(url, "root")
    got: asyncio.Queue = asyncio.Queue()

    async def listen() -> None:
        async with s.get(url + "/api/v1/ops/alerts/stream") as r:
            async for line in r.content:
                if line.startswith(b"data: "):
                    await got.put((time.perf_counter(), json.loads(line[6:])))

    task = asyncio.create_task(listen())
    await asyncio.sleep(1.0)
    lat = []
    try:
        for i in range(1, n + 1):
            ts = datetime.now(UTC).isoformat()
            text = json.dumps({"schema": "qilu.v1.alert", "id": f"al-b{i}", "ts": ts,
                               "level": "critical", "type": "urgent_report",
                               "message": "燃气泄漏", "evidence": []})  # fmt: skip
            t0 = time.perf_counter()
            await client.upload(
                [OutboxRow(i, 1, "alert", f"al-b{i}", ts, text, len(text))], floor=i
            )
            while True:
                t1, ev = await asyncio.wait_for(got.get(), 10)
                if ev["record_id"] == f"al-b{i}":
                    lat.append(t1 - t0)
                    break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await client.close()
        await s.close()
    return {"n": n, "p50_s": round(statistics.median(lat), 3), "p95_s": round(pct(lat, 0.95), 3),
            "max_s": round(max(lat), 3)}  # fmt: skip


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--alerts", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qilu-bench-console-"))
    pg = start_pg(fsync=True)
    results: dict = {"machine": {"cpus": os.cpu_count()}, "params": vars(args), "targets": TARGETS}
    try:
        db = await pg.new_database()
        cloud = await start_cloud(db, tmp, console=ConsoleSettings(alert_poll_s=0.5))
        try:
            print("generating ...", file=sys.stderr)
            results["data"] = await generate(db, args.reports)
            print(json.dumps(results["data"]), file=sys.stderr)
            await cloud.ops_user("district", "admin", "d3")
            for name in ("root", "district"):
                await cloud.storage.ops_user_set_password(name, hash_password(PASSWORD), None)
            for name in ("root", "district"):
                s, _ = await sign_in(cloud.url, name)
                try:
                    results[f"pages_{name}"] = await time_calls(s, cloud.url, PAGES, args.rounds)
                finally:
                    await s.close()
                print(json.dumps(results[f"pages_{name}"]), file=sys.stderr)
            for name, scope in (("root", "/"), ("district", "/jinan/d3/")):
                results[f"before_after_{name}"] = await before_after(
                    db, cloud.storage, scope, args.rounds
                )
                print(json.dumps(results[f"before_after_{name}"]), file=sys.stderr)
            results["page_p95_ms_max"] = max(
                v["p95_ms"] for k, r in results.items() if k.startswith("pages_")
                for v in r.values()
            )  # fmt: skip
            results["alert_to_console"] = await alert_latency(cloud, cloud.url, args.alerts)
        finally:
            await cloud.stop()
    finally:
        pg.stop()
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
