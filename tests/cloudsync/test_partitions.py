"""Records partitioned by class and month (PostgreSQL), retention per class on both backends.

Real throw-away PostgreSQL (the session cluster of conftest.py) and real signed uploads from
the box's own sync client; exports are read back from their gzip'd CSV files."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

import cloudsync.retention as cloudsync_retention
from cloudsync.config import load_config
from cloudsync.retention import (
    ALL_CLASSES,
    CLASSES,
    COLUMNS,
    ClassRetention,
    RetentionConfig,
    add_months,
    maintain,
    month_of,
)
from cloudsync.storage import open_storage
from common.protocol import UploadRecord
from edge.sync.client import CloudClient
from edge.sync.store import OutboxRow
from tests.cloudsync.helpers import VENV_BIN, Cloud, PgCluster, start_cloud, wait_for

NOW = datetime.now(UTC)


def row(seq: int, kind: str, ts: str) -> OutboxRow:
    payload = json.dumps({"schema": f"qilu.v1.{kind}", "id": f"r-{seq}", "n": seq})
    return OutboxRow(seq, 4, kind, f"r-{seq}", ts, payload, len(payload))


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def in_month(m: datetime | object, day: int = 10) -> str:
    """A box-style ts (ISO 8601 UTC) inside month ``m`` (a date of its first day)."""
    return f"{m:%Y-%m}-{day:02d}T08:30:00.000001+00:00"


def no_retention(**changes: object) -> RetentionConfig:
    keep = {c: ClassRetention(keep_days=None) for c in ALL_CLASSES}
    return RetentionConfig(**{**keep, **changes})


async def placement(db: str, box_id: str) -> dict[int, str]:
    """seq -> the partition holding it."""
    conn = await asyncpg.connect(db)
    try:
        rows = await conn.fetch(
            "SELECT seq, tableoid::regclass::text AS t FROM records WHERE box_id = $1", box_id
        )
    finally:
        await conn.close()
    return {r["seq"]: r["t"] for r in rows}


async def one_box(c: Any) -> None:
    """Box b1 in community c1, written straight into the cloud's tables."""
    await c.execute(
        "INSERT INTO areas (id, level, name, path, created_at) VALUES ('c1', 'community', 'c',"
        " '/c1/', 'x')"
    )
    await c.execute(
        "INSERT INTO boxes (id, community_id, secret, created_at) VALUES ('b1', 'c1', 's', 'x')"
    )


def read_export(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert tuple(header) == COLUMNS
        return [dict(zip(header, r, strict=True)) for r in reader]


async def cli(*args: str, timeout_s: float = 120) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "qilu-cloudsync"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(timeout_s):
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.fixture
async def pg_cloud(pg_cluster: PgCluster, tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(await pg_cluster.new_database(), tmp_path)
    yield c
    await c.stop()


async def test_class_lists_are_the_migrations_partitions(pg_cluster: PgCluster) -> None:
    storage = await open_storage(await pg_cluster.new_database())
    try:
        async with storage.tx() as c:
            rows = await c.fetch(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
                " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'records'::regclass"
            )
    finally:
        await storage.close()
    got = {
        r["relname"].removeprefix("records_"): tuple(re.findall(r"'([^']*)'", r["bound"]))
        for r in rows
    }
    assert got == {**CLASSES, "other": ()}


async def test_resend_dedupes_and_odd_ts_go_to_the_default_partition(pg_cloud: Cloud) -> None:
    ident = await pg_cloud.new_box()
    client = CloudClient(ident)
    batch = [
        row(1, "access_event", iso(NOW)),
        row(2, "access_event", "1970-01-01T00:00:05+00:00"),  # a box clock never set
        row(3, "access_event", "2099-06-01T00:00:00+00:00"),  # a clock years ahead
        row(4, "access_event", "not a date"),
        row(5, "device_health", iso(NOW)),
        row(6, "some_new_kind", iso(NOW)),
    ]
    try:
        first = await client.upload(batch, floor=1)
        assert (first.stored, first.duplicates, first.acked_through) == (6, 0, 6)
        # The box did not hear the answer and sends it all again, in another order.
        again = await client.upload(batch[::-1], floor=1)
        assert (again.stored, again.duplicates, again.acked_through) == (0, 6, 6)
        single = await client.upload([batch[1]], floor=1)
        assert (single.stored, single.duplicates) == (0, 1)
    finally:
        await client.close()
    month = f"p{month_of(NOW):%Y%m}"
    assert await placement(pg_cloud.db, ident.box_id) == {
        1: f"records_access_{month}",
        2: "records_access_default",
        3: "records_access_default",
        4: "records_access_default",
        5: f"records_telemetry_{month}",
        6: f"records_other_{month}",
    }
    status, body = await pg_cloud.call("GET", "/api/v1/ops/stats/access")
    assert status == 200 and body["total"] == 4, body


async def test_migration_0006_moves_existing_rows_into_months(pg_cluster: PgCluster) -> None:
    db = await pg_cluster.new_database()
    storage = await open_storage(db, migrate=False)
    old = add_months(month_of(NOW), -14)
    try:
        assert max(await storage.migrate(upto=5)) == 5
        async with storage.tx() as c:
            await one_box(c)
            for seq, kind, ts in (
                (1, "report", in_month(old)),
                (2, "report", iso(NOW)),
                (3, "play_record", in_month(old, 28)),
                (4, "device_health", "1970-01-01T00:00:00+00:00"),
            ):
                await c.execute(
                    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
                    " received_at)"
                    " VALUES ('b1', $1, 2, $2, $3, $4, '{\"a\": 1}', $5)",
                    seq,
                    kind,
                    f"r{seq}",
                    ts,
                    iso(NOW),
                )
        assert (await storage.migrate())[0] == 6  # then any later ones
        # The upload path's dedupe still holds on the converted table.
        again = {"seq": 2, "priority": 2, "kind": "report", "record_id": "r2",
                 "ts": iso(NOW), "payload": "{}"}  # fmt: skip
        stored, dupes, _ = await storage.upload("b1", 1, [cast(UploadRecord, again)])
        assert (stored, dupes) == (0, 1)
    finally:
        await storage.close()
    assert await placement(db, "b1") == {
        1: f"records_report_p{old:%Y%m}",
        2: f"records_report_p{month_of(NOW):%Y%m}",
        3: f"records_play_p{old:%Y%m}",
        4: "records_telemetry_default",
    }
    conn = await asyncpg.connect(db)
    try:  # every month from the oldest row's on exists, for that class only
        names = {r["relname"] for r in await conn.fetch("SELECT relname FROM pg_class")}
    finally:
        await conn.close()
    assert f"records_report_p{add_months(old, 1):%Y%m}" in names
    assert f"records_telemetry_p{old:%Y%m}" not in names


async def test_partition_rotation_under_ingest_loses_nothing(
    pg_cloud: Cloud, tmp_path: Path
) -> None:
    """A box uploads without pause while `retention run` creates two months ahead (one of them
    already holding early arrivals in the default partition) and detaches, exports and drops
    the telemetry months past 90 days. Every upload is acked, and every record is either in
    the table or in an export file, not both."""
    storage = pg_cloud.storage
    old = [add_months(month_of(NOW), -k) for k in (7, 6, 5, 4)]
    past = datetime(old[0].year, old[0].month, 2, tzinfo=UTC)
    await maintain(storage, no_retention(months_ahead=3), now=past)  # months 7..4 ago
    ahead4 = add_months(month_of(NOW), 4)  # not made yet (the migration made 3 ahead)
    ident = await pg_cloud.new_box()
    client = CloudClient(ident)
    sent: dict[int, str] = {}
    seq = 0

    async def upload(n: int, stamps: list[str]) -> float:
        nonlocal seq
        batch = []
        for i in range(n):
            seq += 1
            batch.append(row(seq, "device_health", stamps[i % len(stamps)]))
            sent[seq] = batch[-1].ts
        t0 = time.perf_counter()
        res = await client.upload(batch, floor=1)
        assert res.acked_through == seq and res.stored == n, res
        return time.perf_counter() - t0

    mixed = [in_month(m, d) for m in old for d in (3, 27)] + [iso(NOW), in_month(ahead4)]
    await upload(400, mixed)
    cfg = tmp_path / "cloud.toml"
    exports = tmp_path / "exports"
    cfg.write_text(
        f'[retention]\nexport_dir = "{exports}"\nmonths_ahead = 5\nlock_timeout_ms = 200\n'
        "[retention.telemetry]\nkeep_days = 90\n"
    )
    waits: list[float] = []
    stop = asyncio.Event()

    async def ingest() -> None:
        while not stop.is_set():
            waits.append(await upload(50, mixed))

    task = asyncio.create_task(ingest())
    try:
        await asyncio.sleep(0.3)
        out = await cli("retention", "run", "--db", pg_cloud.db, "--config", str(cfg))
        await asyncio.sleep(0.3)  # ingest goes on after the rotation too
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await client.close()
    assert len(waits) >= 3, "ingest did not run beside the rotation"
    for m in old:
        assert f"export+drop   records_telemetry_p{m:%Y%m}" in out, out
    assert f"create        records_telemetry_p{ahead4:%Y%m}" in out, out

    in_db = await placement(pg_cloud.db, ident.box_id)
    exported: dict[int, dict[str, str]] = {}
    files = sorted((exports / "telemetry").glob("*.csv.gz"))
    assert [f.name for f in files if "default" not in f.name] == [
        f"records_telemetry_p{m:%Y%m}.csv.gz" for m in old
    ]
    for f in files:
        for r in read_export(f):
            assert int(r["seq"]) not in exported
            exported[int(r["seq"])] = r
            assert r["box_id"] == ident.box_id and r["kind"] == "device_health"
            assert json.loads(r["payload"]) == {
                "schema": "qilu.v1.device_health", "id": f"r-{r['seq']}", "n": int(r["seq"])
            }  # fmt: skip
            assert r["ts"] == sent[int(r["seq"])]
    assert not set(in_db) & set(exported)
    assert set(in_db) | set(exported) == set(sent)
    # Months past the cutoff are gone; what arrived for them after the detach waits in the
    # default partition (kept 90 days from its arrival); the early arrivals moved into +4.
    for s, table in in_db.items():
        ts = sent[s]
        if ts[:7] in {f"{m:%Y-%m}" for m in old}:
            assert table == "records_telemetry_default", (s, ts, table)
        elif ts[:7] == f"{ahead4:%Y-%m}":
            assert table == f"records_telemetry_p{ahead4:%Y%m}"
    assert max(waits) < 5.0, f"an upload waited {max(waits):.2f} s during the rotation"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_dry_run_lists_what_would_go_then_the_run_exports_it(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgres":
        db = await request.getfixturevalue("pg_cluster").new_database()
    else:
        db = str(tmp_path / "cloud.db")
    storage = await open_storage(db)
    old = add_months(month_of(NOW), -5)
    long_ago = iso(NOW - timedelta(days=400))
    try:
        if backend == "postgres":
            await maintain(
                storage, no_retention(), now=datetime(old.year, old.month, 2, tzinfo=UTC)
            )
        async with storage.tx() as c:
            await one_box(c)
            rows = [
                (1, "device_health", in_month(old), long_ago),  # past 90 days: goes
                (2, "device_health", iso(NOW), iso(NOW)),  # stays
                (3, "device_health", "1970-01-01T00:00:00+00:00", long_ago),  # goes
                (4, "device_health", "1970-01-01T00:00:00+00:00", iso(NOW)),  # arrived now
                (5, "report", in_month(old), long_ago),  # reports are kept for years
            ]
            for seq, kind, ts, received in rows:
                await c.execute(
                    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
                    " received_at)"
                    " VALUES ('b1', $1, 2, $2, $3, $4, '{\"v\": 1}', $5)",
                    seq,
                    kind,
                    f"r{seq}",
                    ts,
                    received,
                )
    finally:
        await storage.close()
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(f'[retention]\nexport_dir = "{tmp_path / "exports"}"\n')  # defaults: 90 days

    dry = await cli("retention", "run", "--dry-run", "--db", db, "--config", str(cfg))
    assert "dry run:" in dry and "2 rows would go" in dry, dry
    if backend == "postgres":
        assert f"export+drop   records_telemetry_p{old:%Y%m}  1 rows" in dry, dry
        assert "export+delete records_telemetry_default  1 rows" in dry, dry
    else:
        assert "export+delete records  2 rows" in dry, dry
    assert not (tmp_path / "exports").exists()

    out = await cli("retention", "run", "--db", db, "--config", str(cfg))
    assert "2 rows exported and removed" in out, out
    got = [r for f in sorted((tmp_path / "exports").glob("telemetry/*.csv.gz"))
           for r in read_export(f)]  # fmt: skip
    assert sorted((r["seq"], r["ts"], r["received_at"]) for r in got) == [
        ("1", in_month(old), long_ago),
        ("3", "1970-01-01T00:00:00+00:00", long_ago),
    ]
    assert all(json.loads(r["payload"]) == {"v": 1} for r in got)
    storage = await open_storage(db)
    try:
        async with storage.tx() as c:
            left = await c.fetch("SELECT seq FROM records ORDER BY seq")
    finally:
        await storage.close()
    assert [r["seq"] for r in left] == [2, 4, 5]
    again = await cli("retention", "run", "--db", db, "--config", str(cfg))
    assert "0 rows exported and removed" in again


def test_bad_retention_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text("[retention.telemetry]\nkeep_days = 0\n")
    out = subprocess.run(
        [str(VENV_BIN / "qilu-cloudsync"), "retention", "run", "--dry-run", "--db",
         str(tmp_path / "c.db"), "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert "retention.telemetry.keep_days" in out.stderr, out.stderr
    assert not (tmp_path / "c.db").exists()


def test_example_config_is_valid_and_matches_the_defaults() -> None:
    example = load_config(Path(__file__).parents[2] / "config/cloud.example.toml").retention
    assert example.export_dir == Path("/var/lib/qilu-cloudsync/exports")
    assert example.model_dump(exclude={"export_dir"}) == RetentionConfig().model_dump(
        exclude={"export_dir"}
    )


async def test_serve_runs_retention_on_its_timer(db_url: str, tmp_path: Path) -> None:
    """The app built with a retention config (what `serve` does) applies it by itself."""
    old = add_months(month_of(NOW), -6)
    storage = await open_storage(db_url)
    try:
        if storage.dialect == "postgres":
            then = datetime(old.year, old.month, 2, tzinfo=UTC)
            await maintain(storage, no_retention(), now=then)
        async with storage.tx() as c:
            await one_box(c)
            for seq, ts in ((1, in_month(old)), (2, iso(NOW))):
                await c.execute(
                    "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload,"
                    " received_at)"
                    " VALUES ('b1', $1, 4, 'device_health', $2, $3,"
                    " '{\"cpu\": 5}', $4)",
                    seq,
                    f"h{seq}",
                    ts,
                    ts,
                )
    finally:
        await storage.close()
    cfg = RetentionConfig.model_validate(
        {"export_dir": tmp_path / "exports", "interval_s": 10, "telemetry": {"keep_days": 90}}
    )
    cloud = await start_cloud(db_url, tmp_path, retention=cfg)
    try:

        async def exported() -> list[dict[str, str]]:
            # Whole files only (renamed when complete); PostgreSQL also exports the empty
            # months between, so wait for the one holding the row.
            paths = sorted((tmp_path / "exports").glob("telemetry/*.csv.gz"))
            return [r for p in paths for r in read_export(p)]

        rows = await wait_for(exported, 60)
        async with cloud.storage.tx() as c:
            left = [r["seq"] for r in await c.fetch("SELECT seq FROM records ORDER BY seq")]
    finally:
        await cloud.stop()
    assert left == [2]
    assert [(r["seq"], r["ts"]) for r in rows] == [("1", in_month(old))]


async def test_ops_list_pages_across_months_newest_first(pg_cloud: Cloud) -> None:
    """The keyset cursor walks the report months (and the default partition) in ts order."""
    ident = await pg_cloud.new_box()
    client = CloudClient(ident)
    last = add_months(month_of(NOW), -1)
    stamps = [in_month(last, 3), iso(NOW), in_month(last, 28), "1970-01-01T00:00:00+00:00",
              iso(NOW - timedelta(seconds=5))]  # fmt: skip
    try:
        await client.upload([row(i + 1, "report", ts) for i, ts in enumerate(stamps)], floor=1)
    finally:
        await client.close()
    seen: list[str] = []
    cursor = ""
    for _ in range(10):  # bounded: 5 records, 2 a page
        status, body = await pg_cloud.call("GET", f"/api/v1/ops/reports?limit=2{cursor}")
        assert status == 200, body
        seen += [r["ts"] for r in body["items"]]
        if not body["next_cursor"]:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert seen == sorted(stamps, reverse=True)


async def test_a_run_stopped_mid_export_ends_at_once_and_the_next_finishes_it(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """serve stopping cancels a run inside its COPY: the run ends within seconds, the storage
    closes, nothing is dropped unexported, and the next run finishes the detached month."""
    db = await pg_cluster.new_database()
    old = add_months(month_of(NOW), -6)
    storage = await open_storage(db)
    await maintain(storage, no_retention(), now=datetime(old.year, old.month, 2, tzinfo=UTC))
    async with storage.tx() as c:
        await one_box(c)
        await c.execute(
            "INSERT INTO records (box_id, seq, priority, kind, record_id, ts, payload, received_at)"
            " SELECT 'b1', g, 4, 'device_health', 'h' || g, $1, '{}', $1"
            " FROM generate_series(1, 3000) AS g",
            in_month(old),
        )
    cfg = RetentionConfig.model_validate(
        {"export_dir": tmp_path / "exports", "telemetry": {"keep_days": 90}}
    )
    writing = asyncio.Event()
    write = cloudsync_retention.Export.write

    async def stuck(self: Any, data: bytes) -> None:  # a disk that stops answering
        writing.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(cloudsync_retention.Export, "write", stuck)
    task = asyncio.create_task(maintain(storage, cfg, progress=lambda s: None))
    await asyncio.wait_for(writing.wait(), 30)
    task.cancel()
    t0 = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    await asyncio.wait_for(storage.close(), 10)
    assert time.monotonic() - t0 < 10
    assert not list((tmp_path / "exports").glob("telemetry/*.csv.gz"))

    monkeypatch.setattr(cloudsync_retention.Export, "write", write)
    storage = await open_storage(db)
    try:
        steps = await maintain(storage, cfg, progress=lambda s: None)
        async with storage.tx() as c:
            left = await c.fetchrow("SELECT count(*) AS n FROM records")
    finally:
        await storage.close()
    done = {s.table: s.rows for s in steps if s.action == "drop"}
    assert done[f"records_telemetry_p{old:%Y%m}"] == 3000
    assert left is not None and left["n"] == 0
    rows = read_export(tmp_path / f"exports/telemetry/records_telemetry_p{old:%Y%m}.csv.gz")
    assert sorted(int(r["seq"]) for r in rows) == list(range(1, 3001))


@pytest.mark.timeout(120)
async def test_partitions_bench_ingest_runs(pg_cluster: PgCluster) -> None:
    """bench/partitions.py's ingest step at its smallest: the 1,000-box city loads into a
    schema-0005 database too (it used to drop an index 0005 has not got), and both layouts take
    the uploads."""
    from bench.partitions import ingest

    out = await ingest(pg_cluster, 1000, datetime.now(UTC))
    assert set(out) == {"unpartitioned", "partitioned"}
    for layout in out.values():
        assert len(layout["runs"]) == 2 and min(layout["runs"]) > 0
