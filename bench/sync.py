"""Sync benchmark: cloud ingest through the API vs the raw database floor, and backlog drain.

For SQLite and PostgreSQL side by side, in one run:
- ingest: many simulated boxes upload signed gzip'd batches concurrently to a real
  ``qilu-cloudsync serve`` process; records/s and p50/p95 batch-ack latency;
- floor: the same records inserted straight into the same table with no HTTP
  (PostgreSQL: COPY and executemany; SQLite: executemany), same batch size;
- drain: a real box daemon (in this process) with a 72-hour backlog in its outbox drains it
  to the cloud; records/s until the outbox is empty.

    .venv/bin/python bench/sync.py [--boxes 40] [--batches 25] [--batch 500] [--backlog 500000]

Prints a JSON object on its last line. Takes about two to three minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from common import protocol as p  # noqa: E402
from edge.sync.client import provision  # noqa: E402
from edge.sync.identity import Identity  # noqa: E402
from tests.cloudsync.helpers import Cloud, start_cloud, start_pg  # noqa: E402

TARGETS = {"api_vs_floor": 0.5, "postgres_rps": 20_000, "sqlite_rps": 10_000, "drain_rps": 20_000}


def payload(box: int, seq: int) -> str:
    return json.dumps(
        {
            "schema": "qilu.v1.access_event",
            "id": f"ae-{box}-{seq}",
            "ts": "2026-11-24T08:00:00.000000+00:00",
            "door_id": "door-1",
            "method": "face",
            "decision": "granted",
            "reason": "match",
            "resident_id": f"r-{seq % 900}",
            "pass_id": None,
            "actor": None,
            "similarity": 0.71,
            "liveness": 0.98,
            "latency_ms": 183.0,
            "relay_changed": True,
        },
        separators=(",", ":"),
    )


def batch_body(box: int, first: int, n: int) -> bytes:
    recs = [
        {
            "seq": s,
            "priority": 1,
            "kind": "access_event",
            "record_id": f"ae-{box}-{s}",
            "ts": "2026-11-24T08:00:00.000000+00:00",
            "payload": payload(box, s),
        }
        for s in range(first, first + n)
    ]
    return json.dumps({"floor": first, "records": recs}, separators=(",", ":")).encode()


async def setup_boxes(cloud: Cloud, n: int) -> list[Identity]:
    await cloud.community()
    out = []
    for _ in range(n):
        out.append(await provision(cloud.url, await cloud.claim(), "bench"))
    return out


async def ingest(cloud: Cloud, boxes: list[Identity], batches: int, size: int) -> dict:
    # Bodies are built, gzip'd and signed before the clock starts, so the load generator
    # (same 2 cores) takes as little CPU from the service as it can: we measure the service.
    # Signatures stay valid for the protocol's window (300 s), far longer than a run.
    path = "/api/v1/box/upload"
    bodies = {
        i: [
            (
                gz,
                {
                    **p.sign(ident.secret, ident.box_id, "POST", path, gz, encoding="gzip"),
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/json",
                },
            )
            for gz in (gzip.compress(batch_body(i, k * size + 1, size), 3) for k in range(batches))
        ]
        for i, ident in enumerate(boxes)
    }
    lat: list[float] = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int, ident: Identity) -> None:
            for gz, headers in bodies[i]:
                t = time.perf_counter()
                async with s.post(cloud.url + path, data=gz, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    await r.read()
                lat.append(time.perf_counter() - t)

        print("ingest: clock started", file=sys.stderr)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, b) for i, b in enumerate(boxes)))
        wall = time.perf_counter() - t0
    total = len(boxes) * batches * size
    lat.sort()
    return {
        "records": total,
        "seconds": round(wall, 2),
        "records_per_s": round(total / wall),
        "batch_ack_p50_ms": round(statistics.median(lat) * 1000, 1),
        "batch_ack_p95_ms": round(lat[int(len(lat) * 0.95)] * 1000, 1),
        "client": "bodies built, gzip'd and signed before the clock; same machine",
    }


def floor_rows(box_id: str, batches: int, size: int) -> list[list[tuple]]:
    now = "2026-11-24T08:00:01+00:00"
    return [
        [
            (
                box_id,
                s,
                1,
                "access_event",
                f"ae-f-{s}",
                "2026-11-24T08:00:00+00:00",
                payload(0, s),
                now,
            )
            for s in range(k * size + 1, k * size + size + 1)
        ]
        for k in range(batches)
    ]


async def pg_floor(dsn: str, n_boxes: int, batches: int, size: int) -> dict:
    """Same records, same table, same batch size, straight into PostgreSQL, 2 connections
    in parallel (the cores this machine has)."""
    out = {}
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
    async with pool.acquire() as c:
        community = await c.fetchval("SELECT community_id FROM boxes LIMIT 1")
    for method in ("copy", "executemany"):
        ids = [f"floor-{method}-{i}" for i in range(n_boxes)]
        async with pool.acquire() as c:
            await c.executemany(
                "INSERT INTO boxes (id, community_id, secret, created_at) VALUES ($1,$2,'x','')",
                [(i, community) for i in ids],
            )
        work = [(b, rows) for b in ids for rows in floor_rows(b, batches, size)]
        queue = asyncio.Queue()
        for w in work:
            queue.put_nowait(w)

        async def worker(queue: asyncio.Queue = queue, method: str = method) -> None:
            async with pool.acquire() as c:
                while not queue.empty():
                    _, rows = queue.get_nowait()
                    async with c.transaction():
                        if method == "copy":
                            await c.copy_records_to_table(
                                "records",
                                records=[(*r[:6], r[6], r[7]) for r in rows],
                                columns=[
                                    "box_id",
                                    "seq",
                                    "priority",
                                    "kind",
                                    "record_id",
                                    "ts",
                                    "payload",
                                    "received_at",
                                ],
                            )
                        else:
                            await c.executemany(
                                "INSERT INTO records (box_id, seq, priority, kind, record_id,"
                                " ts, payload, received_at) VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,"
                                "$8) ON CONFLICT DO NOTHING",
                                rows,
                            )

        t0 = time.perf_counter()
        await asyncio.gather(worker(), worker())
        wall = time.perf_counter() - t0
        total = len(work) * size
        out[method] = {"records": total, "records_per_s": round(total / wall)}
    await pool.close()
    return out


def sqlite_floor(path: str, n_boxes: int, batches: int, size: int) -> dict:
    """Same records, same table, same pragmas, one transaction per batch, no HTTP, parameters
    built before the clock; both statement shapes: an executemany of one-row INSERTs and the
    service's multi-row INSERT ... VALUES statements. The best of them is the floor."""
    from cloudsync.storage.sqlite import insert_statements

    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    community = db.execute("SELECT community_id FROM boxes LIMIT 1").fetchone()[0]
    keys = ("seq", "priority", "kind", "record_id", "ts", "payload")
    out = {}
    for method in ("executemany", "multi_values"):
        ids = [f"floor-{method}-{i}" for i in range(n_boxes)]
        db.executemany(
            "INSERT INTO boxes (id, community_id, secret, created_at) VALUES (?,?,'x','')",
            [(i, community) for i in ids],
        )
        work: list = [rows for b in ids for rows in floor_rows(b, batches, size)]
        if method == "multi_values":
            work = [
                insert_statements(b[0][0], b[0][7], [dict(zip(keys, r[1:7], strict=True))
                                                     for r in b])  # type: ignore[misc]
                for b in work
            ]  # fmt: skip
        t0 = time.perf_counter()
        for rows in work:
            db.execute("BEGIN IMMEDIATE")
            if method == "multi_values":
                for sql, params in rows:
                    db.execute(sql, params)
            else:
                db.executemany(
                    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
                    " received_at) VALUES (?,?,?,?,?,?,json(?),?) ON CONFLICT DO NOTHING",
                    rows,
                )
            db.execute("COMMIT")
        wall = time.perf_counter() - t0
        total = len(work) * size
        out[method] = {"records": total, "records_per_s": round(total / wall)}
    db.close()
    return out


async def drain(cloud: Cloud, backlog: int, work: Path, batch: int | None) -> dict:
    """A real box daemon drains a backlog written before it starts."""
    from edge.core.store import Store
    from edge.daemon import Daemon
    from edge.features import parse_config
    from edge.sync.identity import save

    ident = await provision(cloud.url, await cloud.claim(), "drain")
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    cfg_text = (
        f'[box]\nid = "box-drain"\ndata_dir = "{work}"\n[mqtt]\nenabled = false\n'
        "[api]\nport = 0\n[sync]\nheartbeat_s = 3600\noutbox_budget_mb = 4096\n"
        + (f"batch_max_records = {batch}\nbatch_max_kb = {batch}\n" if batch else "")
    )
    (work / "edge.toml").write_text(cfg_text)
    config = parse_config(cfg_text, source=work / "edge.toml")
    save(config.box.data_dir / config.sync.identity_file, ident)
    store = Store(config.db_path, box_id="box-drain")
    t0 = time.perf_counter()
    chunk = 50_000
    for start in range(0, backlog, chunk):
        with store.transaction():  # the store's own outbox insert, in big transactions
            for s in range(start, min(start + chunk, backlog)):
                text = payload(9, s)
                store._insert_outbox(
                    "2026-11-24T08:00:00+00:00",
                    1 if s % 5 else 4,
                    "access_event",
                    f"ae-d-{s}",
                    text,
                )
    fill_s = time.perf_counter() - t0
    store.close()
    daemon = Daemon(config)
    box = await daemon.start()
    sync = box.service("sync")
    t0 = time.perf_counter()
    try:
        # Watch the sync service's counters (each row counts once, when its batch's delete
        # has committed): polling the outbox's count(*) over 500,000 rows five times a
        # second took ~18 % of the box process's time on the store thread the drain needs.
        while sync.uploaded + sync.duplicates < backlog:
            if time.perf_counter() - t0 > 300:
                raise TimeoutError("drain did not finish in 300 s")
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - t0
        left = (await box.store.outbox_stats())["rows"]
        if left:
            raise AssertionError(f"drain counted every record but {left} rows are left")
        st = sync.status()
    finally:
        await daemon.stop()
    return {
        "records": backlog,
        "seconds": round(wall, 1),
        "records_per_s": round(backlog / wall),
        "batches": st["batches"],
        "uploaded": st["uploaded"],
        "fill_s": round(fill_s, 1),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boxes", type=int, default=40)
    ap.add_argument("--batches", type=int, default=25)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--backlog", type=int, default=500_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--drain-batch", type=int, default=None, help="[sync] batch_max_records")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qilu-bench-sync-"))
    pg = start_pg(fsync=True)
    results: dict = {"machine": {"cpus": os.cpu_count()}, "params": vars(args), "targets": TARGETS}
    try:
        for backend in args.backends.split(","):
            db = str(tmp / "cloud.db") if backend == "sqlite" else await pg.new_database()
            cloud = await start_cloud(db, tmp / backend, subprocess_=True)
            try:
                boxes = await setup_boxes(cloud, args.boxes)
                print(
                    f"{backend}: ingest {args.boxes} boxes x {args.batches} x {args.batch}",
                    file=sys.stderr,
                )
                api = await ingest(cloud, boxes, args.batches, args.batch)
                if backend == "postgres":
                    floor = await pg_floor(db, args.boxes, args.batches, args.batch)
                else:
                    floor = await asyncio.to_thread(
                        sqlite_floor, db, args.boxes, args.batches, args.batch
                    )
                best = max(v["records_per_s"] for v in floor.values())
                print(f"{backend}: drain {args.backlog}", file=sys.stderr)
                dr = await drain(cloud, args.backlog, tmp / f"box-{backend}", args.drain_batch)
                results[backend] = {
                    "ingest_api": api,
                    "floor_no_http": floor,
                    "api_vs_best_floor": round(api["records_per_s"] / best, 2),
                    "drain_72h_backlog": dr,
                }
                print(json.dumps(results[backend]), file=sys.stderr)
            finally:
                await cloud.stop()
    finally:
        pg.stop()
        await asyncio.to_thread(shutil.rmtree, tmp, True)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
