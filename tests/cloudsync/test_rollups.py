"""Daily roll-ups for the statistics (PostgreSQL migration 0008): they answer what the raw
aggregation answers, for every scope and window, through backfill, duplicate uploads and
retention; a scoped ops user sees only their area's figures.

Real throw-away PostgreSQL (the session cluster), uploads through storage.upload (the insert
with ON CONFLICT DO NOTHING the box API uses) and, for the scope test, signed uploads from the
box's own sync client through the HTTP API."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from cloudsync.portal_stats import reading_totals
from cloudsync.retention import (
    ALL_CLASSES,
    ClassRetention,
    CommunityHours,
    RetentionConfig,
    add_months,
    maintain,
    month_of,
)
from cloudsync.storage import open_storage
from cloudsync.storage.rollups import (
    COMMUNITY_HOURS,
    LEAF_HOURLY,
    MONTHLY,
    TENDAY,
    TENHOUR,
    YEARLY,
    hours_kept,
    split_hours,
    split_levels,
    split_months,
    split_signed,
    trigger_sql,
)
from edge.sync.client import CloudClient
from edge.sync.store import OutboxRow
from tests.cloudsync.helpers import PgCluster, start_cloud

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def iso(when: datetime) -> str:
    return when.isoformat()


def test_split_hours_reads_whole_hours_from_the_hourly_rollups() -> None:
    assert split_hours("2026-11-05T08:17:00+00:00", "2026-11-20T01:30:00+00:00") == [
        ("raw", "2026-11-05T08:17:00+00:00", "2026-11-05T09"),
        ("hour", "2026-11-05T09", "2026-11-06"),
        ("day", "2026-11-06", "2026-11-20"),
        ("hour", "2026-11-20", "2026-11-20T01"),
        ("raw", "2026-11-20T01", "2026-11-20T01:30:00+00:00"),
    ]
    # Inside one day: its whole hours, the minutes at both ends from the records.
    assert split_hours("2026-11-05T08:10", "2026-11-05T11:20") == [
        ("raw", "2026-11-05T08:10", "2026-11-05T09"),
        ("hour", "2026-11-05T09", "2026-11-05T11"),
        ("raw", "2026-11-05T11", "2026-11-05T11:20"),
    ]
    # Inside one hour, the last hour of a day, or no date at all: the records only.
    assert split_hours("2026-11-05T08:10", "2026-11-05T08:50") == [
        ("raw", "2026-11-05T08:10", "2026-11-05T08:50")
    ]
    assert split_hours("2026-11-05T23:10", "") == [
        ("raw", "2026-11-05T23:10", "2026-11-06"), ("day", "2026-11-06", "")
    ]
    assert split_hours("2026-11-05 08:10", "2026-11-07") == [
        ("raw", "2026-11-05 08:10", "2026-11-06"), ("day", "2026-11-06", "2026-11-07")
    ]
    assert split_hours("yesterday afternoon", "") == [("raw", "yesterday afternoon", "")]
    # A bound of 13 characters or fewer compares with the hour as with ts, date or not.
    assert split_hours("yesterday-ish", "") == [("hour", "yesterday-ish", "")]


def test_split_months_reads_whole_months_from_the_monthly_totals() -> None:
    # The console's "last 30 days" on the 30th: the first day's hours, then the month so far.
    assert split_months("2026-10-31T09:17:00+00:00", "") == [
        ("raw", "2026-10-31T09:17:00+00:00", "2026-11"), ("month", "2026-11", "")
    ]
    # ... on the 15th: the rest of last month by day.
    assert split_months("2026-10-16T09:17:00+00:00", "") == [
        ("raw", "2026-10-16T09:17:00+00:00", "2026-10-17"),
        ("day", "2026-10-17", "2026-11"),
        ("month", "2026-11", ""),
    ]
    # A month starts at "2026-11", not "2026-11-01" (odd stamps like "2026-11 08:00" sort
    # between): a window from the 1st reads that month by day.
    assert split_months("2026-11-01", "2027-01-05") == [
        ("day", "2026-11-01", "2026-12"), ("month", "2026-12", "2027-01"),
        ("day", "2027-01", "2027-01-05"),
    ]
    assert split_months("", "2026-11-05") == [
        ("month", "", "2026-11"), ("day", "2026-11", "2026-11-05")
    ]
    assert split_months("2026-11-05T08", "2026-11-20") == [
        ("raw", "2026-11-05T08", "2026-11-06"), ("day", "2026-11-06", "2026-11-20")
    ]


def test_split_levels_reads_ten_day_and_ten_hour_blocks() -> None:
    # A network's "the month before" (per district): the first day's hours, the days to the
    # 10th, two 10-day blocks, the 30th, the last day's hours, the minutes at both ends.
    assert split_levels("2026-10-01T12:40:00+00:00", "2026-10-31T12:40:00+00:00",
                        (9, 10, 13)) == [
        ("raw", "2026-10-01T12:40:00+00:00", "2026-10-01T13"),
        ("hour", "2026-10-01T13", "2026-10-02"), ("day", "2026-10-02", "2026-10-1"),
        ("tenday", "2026-10-1", "2026-10-3"), ("day", "2026-10-3", "2026-10-31"),
        ("hour", "2026-10-31", "2026-10-31T12"),
        ("raw", "2026-10-31T12", "2026-10-31T12:40:00+00:00"),
    ]
    # Per community, "the last 29 days" on the 30th: hours to 20:00, the 10-hour block 20-23,
    # the days to the 10th, then blocks to the month's end (the 30th-31st are one).
    assert split_levels("2026-11-01T12:40:00+00:00", "", (7, 9, 10, 12, 13)) == [
        ("raw", "2026-11-01T12:40:00+00:00", "2026-11-01T13"),
        ("hour", "2026-11-01T13", "2026-11-01T2"), ("tenhour", "2026-11-01T2", "2026-11-02"),
        ("day", "2026-11-02", "2026-11-1"), ("tenday", "2026-11-1", "2026-12"),
        ("month", "2026-12", ""),
    ]
    # After the 30th-31st block comes the next month's first; a window from the 30th reads it
    # by day (an odd stamp "2026-12-3 x" sorts before "2026-12-30"); no date: the records.
    assert split_levels("2026-12-30", "2027-01-20", (9, 10)) == [
        ("day", "2026-12-30", "2027-01-0"), ("tenday", "2027-01-0", "2027-01-2"),
        ("day", "2027-01-2", "2027-01-20"),
    ]
    assert split_levels("not a date", "2026-11-05T08", (9, 10, 12, 13)) == [
        ("raw", "not a date", "2026-11-05T08")
    ]


def test_split_signed_counts_exactly_what_the_window_holds() -> None:
    """Pieces with subtraction (the per-community figures): summed with their signs over any
    stamps, dates or not, they count exactly the records the window holds."""
    rnd = random.Random(7)
    base = datetime(2026, 9, 25, tzinfo=UTC)
    stamps = [iso(base + timedelta(minutes=rnd.randrange(90 * 24 * 60))) for _ in range(3000)]
    stamps += ["not a date", "2026-11", "2026-11-3x", "2026-10-31T2", "2026-11-02T", "1970"]
    widths = (7, 9, 10, 12, 13)

    def holds(source: str, lo: str, hi: str, ts: str) -> bool:
        key = ts if source == "raw" else ts[: {"month": 7, "tenday": 9, "day": 10,
                                               "tenhour": 12, "hour": 13}[source]]  # fmt: skip
        return (not lo or key >= lo) and (not hi or key < hi)

    windows = [("2026-11-02T12:40:00+00:00", ""), ("2026-10-01T12:40", "2026-10-31T12:40"),
               ("", "2026-11-02T05"), ("2026-10-31T23:59", "2026-11-01T00:01")]  # fmt: skip
    for _ in range(200):
        a, b = sorted(stamps[rnd.randrange(3000)] for _ in range(2))
        windows.append((a[: rnd.choice([7, 9, 10, 13, 16, 32])], b))
    took_away = 0
    for since, until in windows:
        pieces = split_signed(since, until, widths)
        took_away += any(sign < 0 for *_, sign in pieces)
        for ts in stamps:
            want = (not since or ts >= since) and (not until or ts < until)
            got = sum(sign for src, lo, hi, sign in pieces if holds(src, lo, hi, ts))
            assert got == int(want), (since, until, ts, pieces)
    assert took_away > 20  # the subtraction was taken, not only the plain pieces


def test_hours_kept_reads_pruned_hours_from_the_records() -> None:
    w = (7, 9, 10, 12, 13)
    pieces = split_signed("2026-11-03T14:37", "2026-11-12T12:05", w)
    # (The 12th: hours 10-11 forward, not the 10-hour block 10-19 minus 12-19; a bound of a
    # coarser period counts from its first hour, "T1" -> 10:00, since stats7.)
    assert [p[0] for p in pieces] == ["raw", "hour", "tenhour", "day", "tenhour", "hour", "raw"]
    assert hours_kept("2026-11-03T14:37", "2026-11-12T12:05", w, "") == pieces
    # Hours kept from the 5th: the 3rd's hours and blocks from the records (one piece),
    # the 12th's from the hour rows.
    kept = hours_kept("2026-11-03T14:37", "2026-11-12T12:05", w, "2026-11-05")
    assert kept == [("raw", "2026-11-03T14:37", "2026-11-04", 1), *pieces[3:]]
    # Kept from the 13th (after the window): no hour piece, the 12th's part from the records.
    assert hours_kept("2026-11-03T14:37", "2026-11-12T12:05", w, "2026-11-13") == [
        ("raw", "2026-11-03T14:37", "2026-11-04", 1), ("day", "2026-11-04", "2026-11-12", 1),
        ("raw", "2026-11-12", "2026-11-12T12:05", 1)]  # fmt: skip
    # Inside one old day: one piece from the records, not the day minus its ends.
    assert split_signed("2026-11-03T01:00", "2026-11-03T23:10", w)[0][3] == -1
    assert hours_kept("2026-11-03T01:00", "2026-11-03T23:10", w, "2026-11-04") == [
        ("raw", "2026-11-03T01:00", "2026-11-03T23:10", 1)]  # fmt: skip


AREAS = [  # (id, level, parent)
    ("cA", "city", None), ("cB", "city", None),
    ("dA1", "district", "cA"), ("dA2", "district", "cA"), ("dB1", "district", "cB"),
    ("sA1", "street", "dA1"), ("sA2", "street", "dA1"), ("sA3", "street", "dA2"),
    ("sB1", "street", "dB1"),
    ("m1", "community", "sA1"), ("m2", "community", "sA1"), ("m3", "community", "sA2"),
    ("m4", "community", "sA3"), ("m5", "community", "sB1"),
]  # fmt: skip
BOXES = {"b1": "m1", "b2": "m1", "b3": "m2", "b4": "m3", "b5": "m4", "b6": "m5"}
SCOPES = ["/", "/cA/", "/cB/", "/cA/dA1/", "/cA/dA1/sA1/", "/cA/dA1/sA1/m1/", "/cA/dA2/sA3/m4/",
          "/x9/"]  # fmt: skip


async def setup_areas(storage: Any) -> None:
    for aid, level, parent in AREAS:
        await storage.area_create(aid, level, aid, parent)
    async with storage.tx() as c:
        for box, community in BOXES.items():
            await c.execute(
                "INSERT INTO boxes (id, community_id, secret, created_at)"
                " VALUES ($1, $2, 's', 'x')",
                box,
                community,
            )
        # A box placed in an area of depth 1 (as older tests' data does): counted all the same.
        await c.execute(
            "INSERT INTO areas (id, level, name, path, created_at)"
            " VALUES ('x9', 'community', 'x', '/x9/', 'x')"
        )
        await c.execute(
            "INSERT INTO boxes (id, community_id, secret, created_at) VALUES ('b9', 'x9', 's', 'x')"
        )


def records(
    rnd: random.Random, box: str, first_seq: int, n: int, old: datetime, year: bool = False
) -> list[dict]:
    """``year``: a fifth of them anywhere in the last 400 days (windows of 90 and 365 days
    read whole months, and the first and last ones in part)."""
    out = []
    for seq in range(first_seq, first_seq + n):
        kind = rnd.choice(["access_event", "access_event", "play_record", "reading_stats",
                           "device_health", "alert"])  # fmt: skip
        pick = rnd.random()
        if pick < 0.05:
            ts = rnd.choice(["1970-01-01T00:00:05+00:00", "not a date", "2099-06-01T00:00:00Z"])
        elif year and pick < 0.25:
            ts = iso(NOW - timedelta(seconds=rnd.randrange(400 * 86400)))
        elif pick < 0.25:
            ts = iso(old + timedelta(seconds=rnd.randrange(20 * 86400)))  # an old month
        else:
            ts = iso(NOW - timedelta(seconds=rnd.randrange(40 * 86400)))
        payload: dict[str, Any] = {"schema": f"qilu.v1.{kind}", "id": f"r{seq}", "ts": ts}
        if kind == "access_event":
            payload |= {"decision": rnd.choice(["granted", "denied"]),
                        "method": rnd.choice(["face", "card", None])}  # fmt: skip
            if rnd.random() < 0.1:
                del payload["decision"]  # a field missing: its own group, as in the raw query
        elif kind == "play_record":
            payload |= {"content_id": rnd.choice(["ct-1", "ct-2", "ct-3"]),
                        "duration_ms": rnd.randrange(1000, 30000)}  # fmt: skip
            if rnd.random() < 0.1:
                del payload["duration_ms"]
        elif kind == "alert":
            payload |= {"level": rnd.choice(["critical", "critical", "warning"]),
                        "type": "urgent_report", "message": "燃气", "evidence": []}  # fmt: skip
        elif kind == "reading_stats":
            payload |= {"content_id": rnd.choice(["ct-1", "ct-2"]), "reads": rnd.randrange(5),
                        "new_readers": rnd.randrange(3), "acks": rnd.randrange(2),
                        "dwell_s": rnd.randrange(100) / 4}  # fmt: skip
        out.append({"seq": seq, "priority": 2, "kind": kind, "record_id": f"r{seq}", "ts": ts,
                    "payload": json.dumps(payload)})  # fmt: skip
    return out


def windows() -> list[tuple[str, str]]:
    d = NOW.date()
    return [
        ("", ""),
        (iso(NOW - 30 * DAY), ""),  # the ops console's "last 30 days": a partial first day
        (iso(NOW - 365 * DAY), ""),  # its year: whole months (per district too, 0012)
        (iso(NOW - 300 * DAY - timedelta(hours=5)), iso(NOW - 40 * DAY)),
        (iso(NOW - 7 * DAY - timedelta(hours=5)), iso(NOW - DAY)),
        ((d - timedelta(days=10)).isoformat(), d.isoformat()),  # whole days only
        (iso(NOW - timedelta(hours=30)), iso(NOW - timedelta(hours=20))),
        (iso(NOW - timedelta(hours=3)), iso(NOW - timedelta(hours=2))),  # inside one day
        ("", iso(NOW - 5 * DAY)),
        ("1970", "2000"),
        (f"{add_months(month_of(NOW), -4):%Y-%m}", f"{add_months(month_of(NOW), -2):%Y-%m}"),
        ("2099", ""),
        *YEAR_EDGES,
    ]


# Windows across a year's start (0013 reads whole years): from a few hours before this year,
# from last year's December (the year minus nothing, or last year minus its first months),
# one ending inside this year, whole years as bounds.
THIS_YEAR = datetime(NOW.year, 1, 1, tzinfo=UTC)
YEAR_EDGES = [
    (iso(THIS_YEAR - timedelta(hours=5, minutes=3)), ""),
    (iso(THIS_YEAR - 20 * DAY - timedelta(hours=7)), ""),
    (iso(THIS_YEAR - 300 * DAY), iso(THIS_YEAR + 40 * DAY + timedelta(hours=2))),
    (f"{NOW.year - 1}", f"{NOW.year}"),
    (f"{NOW.year}", ""),
]


async def answers(storage: Any, rollups: bool) -> dict[str, Any]:
    storage.rollups = rollups
    out: dict[str, Any] = {}
    try:
        for scope in SCOPES:
            for since, until in windows():
                key = f"{scope} {since}..{until}"
                out[f"access {key}"] = await storage.count_by(
                    "access_event", scope, since, until, ["decision", "method"]
                )
                out[f"plays {key}"] = await storage.count_by(
                    "play_record", scope, since, until, ["content_id"], "duration_ms"
                )
                for group in ("content", "community", "content_community"):
                    out[f"reading {group} {key}"] = await reading_totals(
                        storage, scope, group, since, until
                    )
                content = await storage.content_stats(scope, since, until)
                for name, rows in content.items():
                    k = "content_id" if "by_content" in name else "community_id"
                    out[f"content {name} {key}"] = sorted(
                        ({**r, "ms": int(r.get("ms") or 0)} if "ms" in r else r for r in rows),
                        key=lambda r, k=k: str(r[k]),
                    )
    finally:
        storage.rollups = True
    for k, rows in out.items():
        out[k] = [{f: (int(v) if isinstance(v, int) else v) for f, v in r.items()} for r in rows]
        for r in out[k]:
            for f in ("total", "dwell_s"):
                if isinstance(r.get(f), float):
                    r[f] = round(r[f], 6)
    return out


async def assert_same(storage: Any) -> int:
    rolled, raw = await answers(storage, True), await answers(storage, False)
    assert rolled.keys() == raw.keys()
    for k in raw:
        assert rolled[k] == raw[k], k
    return sum(r["count"] for r in raw["access / .."])  # all access events, network-wide


def straight_sql(spec: Any) -> str:
    """A migration 0010 table's rows as a plain GROUP BY over the records (not the trigger's
    statement): per district with the group and/or per community without it."""
    w = spec.width
    cast = {"int": "qilu_int", "float": "qilu_float"}
    vals = "".join(f", {cast[t]}(r.payload ->> '{f}') AS {c}" for c, f, t in spec.sums)
    src = (" FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
           f" WHERE r.kind = '{spec.kind}'")  # fmt: skip
    parts = []
    if spec.districts:
        parts.append(f"SELECT qilu_district(a.path) AS area, false AS leaf, substr(r.ts, 1, {w})"
                     f" AS p, r.payload ->> 'content_id' AS content_id{vals}{src}")  # fmt: skip
    parts.append(f"SELECT a.path AS area, true AS leaf, substr(r.ts, 1, {w}) AS p,"
                 f" NULL::text AS content_id{vals}{src}")  # fmt: skip
    sums = "".join(f", sum(x.{c}) AS {c}" for c, _, _ in spec.sums)
    union = " UNION ALL ".join(parts)
    return (f"SELECT x.area, x.leaf, x.p, x.content_id, count(*) AS n{sums}"
            f" FROM ({union}) x GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")  # fmt: skip


OPEN_CRITICAL = (
    "SELECT r.box_id, substr(r.ts, 1, 7) AS month, count(*) AS n FROM records r"
    " LEFT JOIN alert_acks k ON k.box_id = r.box_id AND k.seq = r.seq WHERE r.kind = 'alert'"
    " AND r.payload ->> 'level' = 'critical' AND (k.state IS NULL OR k.state <> 'closed')"
    " GROUP BY 1, 2 ORDER BY 1, 2"
)


def rounded(rows: list[Any]) -> list[tuple]:
    return [tuple(round(v, 6) if isinstance(v, float) else v for v in r.values()) for r in rows]


async def assert_0010_tables(storage: Any) -> int:
    """Each table of migration 0010, the monthly ones (with 0012's district rows) and the
    yearly ones (0013) hold what a straight count over the records gives (the float sums
    rounded); the number of open critical alerts."""
    async with storage.tx() as c:
        years = await c.c.fetchval("SELECT to_regclass('play_yearly') IS NOT NULL")
        for spec in [*MONTHLY.values(), *TENDAY.values(), *TENHOUR.values(),
                     *LEAF_HOURLY.values(), *(YEARLY.values() if years else ())]:  # fmt: skip
            cols = ", ".join(["area", "leaf", spec.period, "content_id", "n",
                              *(c for c, _, _ in spec.sums)])  # fmt: skip
            kept = await c.c.fetch(f"SELECT {cols} FROM {spec.table} ORDER BY 1, 2, 3, 4")
            raw = await c.c.fetch(straight_sql(spec))
            assert len(raw) > 5 and rounded(kept) == rounded(raw), spec.table
        kept = await c.c.fetch("SELECT box_id, month, n FROM alert_counts ORDER BY 1, 2")
        raw = await c.c.fetch(OPEN_CRITICAL)
    assert rounded(kept) == rounded(raw)
    return sum(r["n"] for r in raw)


async def test_rollups_answer_as_the_records_through_backfill_dupes_and_retention(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    db = await pg_cluster.new_database()
    storage = await open_storage(db, migrate=False)
    rnd = random.Random(20)
    old = add_months(month_of(NOW), -4)
    old_dt = datetime(old.year, old.month, 3, tzinfo=UTC)
    try:
        await storage.migrate(upto=7)  # before the roll-ups
        # The old month's partition exists (maintenance ran back then).
        keep = {c: ClassRetention(keep_days=None) for c in ALL_CLASSES}
        await maintain(storage, RetentionConfig(**keep), now=old_dt, progress=lambda s: None)
        await setup_areas(storage)
        sent: dict[str, list[dict]] = {}
        for box in [*BOXES, "b9"]:
            sent[box] = records(rnd, box, 1, 40, old_dt)
            await storage.upload(box, 1, sent[box])
        # Migrations 0008-0009: tables, trigger, then the rows above counted partition by
        # partition (daily, then hourly).
        assert (await storage.migrate())[:6] == [8, 9, 10, 11, 12, 13]  # and any later ones
        async with storage.tx() as c:
            left = await c.c.fetchval("SELECT count(*) FROM rollup_backfill WHERE done_at IS NULL")
        assert left == 0
        before = await assert_same(storage)
        assert before > 0
        open_before = await assert_0010_tables(storage)  # backfilled from the rows above
        assert open_before > 5
        # More uploads; a box resends a batch it had no answer for (nothing counted twice).
        for box in [*BOXES, "b9"]:
            more = records(rnd, box, 41, 30, old_dt)
            stored, dupes, _ = await storage.upload(box, 1, sent[box][30:] + more)
            assert (stored, dupes) == (30, 10)
            again = await storage.upload(box, 1, more[::-1])
            assert again[:2] == (0, 30)
        total = await assert_same(storage)
        assert total > before
        # Critical alerts closed (counted out), one of them reopened (back in), a warning
        # closed (no change): each acknowledgement moves the counts in its own statement.
        open_now = await assert_0010_tables(storage)
        async with storage.tx() as c:
            alerts = await c.fetch(
                "SELECT box_id, seq, payload ->> 'level' AS level FROM records"
                " WHERE kind = 'alert' ORDER BY box_id, seq"
            )
        crits = [a for a in alerts if a["level"] == "critical"]
        assert len(crits) == open_now  # none closed yet
        warning = next(a for a in alerts if a["level"] == "warning")
        for a in [*crits[::3], warning]:
            await storage.alert_ack(a["box_id"], a["seq"], "closed", None, "", "t")
        assert await assert_0010_tables(storage) == open_now - len(crits[::3])
        await storage.alert_ack(crits[0]["box_id"], crits[0]["seq"], "assigned", "x", "", "t")
        await storage.alert_ack(crits[1]["box_id"], crits[1]["seq"], "acknowledged", "", "", "t")
        open_now = open_now - len(crits[::3]) + 1
        assert await assert_0010_tables(storage) == open_now

        # ... and one that arrived long ago with a ts of no month (the default partition).
        async with storage.tx() as c:
            await c.execute(
                "INSERT INTO records VALUES ('b1', 9001, 2, 'access_event', 'x1', '1970-01-02',"
                ' \'{"decision": "granted", "method": "face"}\', $1)',
                iso(NOW - 400 * DAY),
            )
            old_rows = await c.c.fetchval(
                "SELECT count(*) FROM records WHERE kind = 'access_event' AND ts >= $1 AND ts < $2",
                f"{old:%Y-%m}",
                f"{add_months(old, 1):%Y-%m}",
            )
        assert old_rows > 0
        await assert_same(storage)
        keep["access"] = ClassRetention(keep_days=60, export=False)
        keep["play"] = ClassRetention(keep_days=60, export=False)
        keep["telemetry"] = ClassRetention(keep_days=60, export=False)
        keep["alert"] = ClassRetention(keep_days=60, export=False)
        steps = await maintain(
            storage, RetentionConfig(**keep, export_dir=tmp_path / "x"), progress=lambda s: None
        )
        assert any(s.action == "drop" and s.table == f"records_access_p{old:%Y%m}" for s in steps)
        assert any(s.action == "purge" and s.table == "records_access_default" for s in steps)
        # The old month dropped, the row that arrived long ago purged: both gone from the figures.
        assert await assert_same(storage) == total - old_rows
        assert any(s.action == "drop" and s.table == f"records_alert_p{old:%Y%m}" for s in steps)
        # The dropped month's open critical alerts left the counts with it.
        assert 0 < await assert_0010_tables(storage) < open_now
        async with storage.tx() as c:
            gone = await c.c.fetchval(
                "SELECT count(*) FROM access_daily WHERE day >= $1 AND day < $2",
                f"{old:%Y-%m}",
                f"{add_months(old, 1):%Y-%m}",
            )
            districts = await c.fetch(
                "SELECT area, day, decision, method, n FROM access_daily ORDER BY 1, 2, 3, 4"
            )
            raw = await c.fetch(
                "SELECT qilu_district(a.path) AS area, substr(r.ts, 1, 10) AS day,"
                " r.payload ->> 'decision' AS decision, r.payload ->> 'method' AS method,"
                " count(*) AS n FROM records r JOIN boxes b ON b.id = r.box_id"
                " JOIN areas a ON a.id = b.community_id WHERE r.kind = 'access_event'"
                " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            )
            trigger = await c.c.fetchval(
                "SELECT prosrc FROM pg_proc WHERE proname = 'qilu_stats_rollup'"
            )
            # Migration 0009's tables hold what the records hold, per hour and per month.
            hourly = await c.fetch(
                "SELECT area, hour, decision, method, n FROM access_hourly ORDER BY 1, 2, 3, 4"
            )
            raw_hourly = await c.fetch(
                "SELECT qilu_district(a.path) AS area, substr(r.ts, 1, 13) AS hour,"
                " r.payload ->> 'decision' AS decision, r.payload ->> 'method' AS method,"
                " count(*) AS n FROM records r JOIN boxes b ON b.id = r.box_id"
                " JOIN areas a ON a.id = b.community_id WHERE r.kind = 'access_event'"
                " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
            )
            monthly = await c.fetch(
                "SELECT area, month, n, ms FROM play_monthly WHERE leaf ORDER BY 1, 2"
            )
            raw_monthly = await c.fetch(
                "SELECT a.path AS area, substr(r.ts, 1, 7) AS month, count(*) AS n,"
                " sum(qilu_int(r.payload ->> 'duration_ms')) AS ms FROM records r"
                " JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
                " WHERE r.kind = 'play_record' GROUP BY 1, 2 ORDER BY 1, 2"
            )
        assert gone == 0
        assert [dict(r) for r in districts] == [dict(r) for r in raw]
        assert len(hourly) > 50 and [dict(r) for r in hourly] == [dict(r) for r in raw_hourly]
        assert len(monthly) > 5 and [dict(r) for r in monthly] == [dict(r) for r in raw_monthly]
        # The trigger runs the statements recount_sql builds (the backfill and retention's).
        assert " ".join(trigger.split()) == " ".join(trigger_sql().split())
    finally:
        await storage.close()


async def test_0012_district_months_summed_from_the_days(pg_cluster: PgCluster) -> None:
    """A database at 0011 with a year of uploads: migration 0012 sums the districts' months
    from their days (no backfill of the records), then the upload trigger keeps them; the
    statistics by content item that read them answer as the records do, for long windows
    too (a level read wrong, or a month missing, changes the figures)."""
    db = await pg_cluster.new_database()
    storage = await open_storage(db, migrate=False)
    rnd = random.Random(12)
    old = add_months(month_of(NOW), -4)
    old_dt = datetime(old.year, old.month, 3, tzinfo=UTC)
    try:
        await storage.migrate(upto=11)
        await setup_areas(storage)
        for box in [*BOXES, "b9"]:
            await storage.upload(box, 1, records(rnd, box, 1, 60, old_dt, True))
        assert await storage.migrate(upto=12) == [12]
        await assert_0010_tables(storage)  # the months as a straight count, from the days
        for box in [*BOXES, "b9"]:
            await storage.upload(box, 1, records(rnd, box, 61, 30, old_dt, True))
        await assert_0010_tables(storage)  # and kept by the trigger
        await assert_same(storage)
        for scope in SCOPES:
            for since in (iso(NOW - 90 * DAY), iso(NOW - 365 * DAY)):
                text = await storage.content_console_json(scope, since, 200, 500)
                assert scope == "/x9/" or json.loads(text)["items"], (scope, since)
                # The community table cut at k rows: reads summed only for communities
                # whose plays can rank them there; the same rows as the whole table's head
                # (ties at the cut included).
                whole = json.loads(text)["areas"]
                for k in (1, 2, 3):
                    cut = json.loads(await storage.content_console_json(scope, since, 200, k))
                    assert cut["areas"] == whole[:k], (scope, since, k)
    finally:
        await storage.close()


async def test_0013_years_summed_from_the_months_kept_and_retained(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """A database at 0012 with 400 days of uploads in month partitions: migration 0013 sums
    the years from the months, the upload trigger keeps them (a late upload into last year
    too), retention dropping last year's oldest months takes their sums out of the year.
    Every roll-up table equals a straight count, every statistic the records' (windows
    across a year's start included), the console statement answers as without the years."""
    db = await pg_cluster.new_database()
    storage = await open_storage(db, migrate=False)
    rnd = random.Random(13)
    never = {c: ClassRetention(keep_days=None) for c in ALL_CLASSES}
    old = add_months(month_of(NOW), -4)
    old_dt = datetime(old.year, old.month, 3, tzinfo=UTC)

    async def years() -> dict[str, int]:
        async with storage.tx() as c:
            rows = await c.fetch("SELECT year, sum(n) AS n FROM play_yearly WHERE leaf"
                                 " GROUP BY 1 ORDER BY 1")  # fmt: skip
        return {r["year"]: int(r["n"]) for r in rows}

    try:
        await storage.migrate(upto=12)
        for back in (410, 320, 230, 140, 50, 0):  # the months' partitions, as maintenance made
            await maintain(storage, RetentionConfig(**never), now=NOW - back * DAY,
                           progress=lambda s: None)  # fmt: skip
        await setup_areas(storage)
        sent: list[tuple[str, dict]] = []
        for box in [*BOXES, "b9"]:
            rows = records(rnd, box, 1, 80, old_dt, True)
            await storage.upload(box, 1, rows)
            sent += [(box, r) for r in rows]
        assert (await storage.migrate())[:1] == [13]  # and any later ones
        assert storage.years_table
        await assert_0010_tables(storage)  # the years as a straight count, from the months
        first = await years()
        assert f"{NOW.year - 1}" in first and f"{NOW.year}" in first, first
        # Late uploads: plays and reading of last year's December and of this year's first day.
        late = []
        for i, when in enumerate([THIS_YEAR - 10 * DAY, THIS_YEAR - timedelta(minutes=3),
                                  THIS_YEAR + timedelta(hours=2)]):  # fmt: skip
            for j, (kind, payload) in enumerate([
                ("play_record", {"content_id": "ct-2", "duration_ms": 7000}),
                ("reading_stats", {"content_id": "ct-1", "reads": 3, "new_readers": 1,
                                   "acks": 1, "dwell_s": 2.5}),
            ]):  # fmt: skip
                seq = 900 + 2 * i + j
                late.append({"seq": seq, "priority": 2, "kind": kind, "record_id": f"r{seq}",
                             "ts": iso(when), "payload": json.dumps(payload)})  # fmt: skip
        await storage.upload("b3", 1, late)
        sent += [("b3", r) for r in late]
        assert (await years())[f"{NOW.year - 1}"] == first[f"{NOW.year - 1}"] + 2
        await assert_0010_tables(storage)
        await assert_same(storage)
        await assert_per_community_exact(storage, sent)
        for scope in SCOPES:
            for since, _ in [*YEAR_EDGES[:2], (iso(NOW - 365 * DAY), "")]:
                texts = []
                for on in (True, False):  # the years read, then the months (as before 0013)
                    storage.years_table = on
                    texts.append(await storage.content_console_json(scope, since, 200, 500))
                storage.years_table = True
                assert texts[0] == texts[1], (scope, since)
                assert scope == "/x9/" or json.loads(texts[0])["areas"], (scope, since)

        # Retention keeps plays and reading statistics 340 days: last year's oldest months
        # go, their sums leave last year's row (its December stays).
        keep = never | {c: ClassRetention(keep_days=340, export=False)
                        for c in ("play", "telemetry")}  # fmt: skip
        steps = await maintain(storage, RetentionConfig(**keep, export_dir=tmp_path / "x"),
                               progress=lambda s: None)  # fmt: skip
        dropped = [s.table for s in steps if s.action == "drop"]
        assert any(t.startswith("records_play_p") for t in dropped), steps
        after = await years()
        assert 0 < after[f"{NOW.year - 1}"] < first[f"{NOW.year - 1}"] + 2, (first, after)
        await assert_0010_tables(storage)
        await assert_same(storage)
    finally:
        await storage.close()


def outbox(seq: int, kind: str, payload: dict[str, Any], ts: str) -> OutboxRow:
    text = json.dumps({"schema": f"qilu.v1.{kind}", "id": f"r{seq}", "ts": ts, **payload})
    return OutboxRow(seq, 2, kind, f"r{seq}", ts, text, len(text))


async def test_a_scoped_user_sees_only_their_areas_figures(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    cloud = await start_cloud(await pg_cluster.new_database(), tmp_path)
    try:
        # Two districts of one city; per box: door decisions, plays and reading counts over
        # the last days (whole days for the roll-ups, today's hours from the records).
        plan = {("lixia", "s1", "m1"): 3, ("lixia", "s2", "m2"): 5, ("shizhong", "s3", "m3"): 7}
        for (district, street, community), n in plan.items():
            ident = await cloud.new_box(community, district=district, street=street)
            client = CloudClient(ident)
            rows = []
            for i in range(n):
                ts = iso(NOW - timedelta(days=i % 4, minutes=1))
                rows += [
                    outbox(3 * i + 1, "access_event", {"decision": "granted", "method": "face"},
                           ts),
                    outbox(3 * i + 2, "play_record", {"content_id": "ct-1", "duration_ms": 1000},
                           ts),
                    outbox(3 * i + 3, "reading_stats", {"content_id": "ct-1", "reads": 2,
                           "new_readers": 1, "acks": 0, "dwell_s": 1.5}, ts),
                ]  # fmt: skip
            try:
                assert (await client.upload(rows, floor=1)).stored == 3 * n
                assert (await client.upload(rows, floor=1)).duplicates == 3 * n
            finally:
                await client.close()
        lixia = await cloud.ops_user("lixia-viewer", "viewer", "lixia")
        since = iso(NOW - 10 * DAY)
        for token, boxes in ((lixia, 8), (None, 15)):
            status, body = await cloud.call("GET", f"/api/v1/ops/stats/access?since={since}", token)
            assert status == 200 and body["total"] == boxes, body
            status, body = await cloud.call("GET", "/api/v1/ops/stats/plays", token)
            assert status == 200, body
            assert body["items"] == [
                {"content_id": "ct-1", "plays": boxes, "duration_ms": 1000 * boxes}
            ]
            status, body = await cloud.call(
                "GET", "/api/v1/ops/stats/reading?group=community", token
            )
            assert status == 200, body
            got = {r["community_id"]: (r["reads"], r["dwell_s"]) for r in body["items"]}
            want = {c: (2 * n, 1.5 * n) for (d, _, c), n in plan.items()
                    if token is None or d == "lixia"}  # fmt: skip
            assert got == want
            # A page by reads, most first, then the rest of the listing from next_offset.
            status, body = await cloud.call(
                "GET", "/api/v1/ops/stats/reading?group=community&order=reads&limit=1", token
            )
            assert status == 200 and body["next_offset"] == 1, body
            assert body["items"][0]["reads"] == max(r for r, _ in want.values())
            status, rest = await cloud.call(
                "GET", "/api/v1/ops/stats/reading?group=community&order=reads&offset=1", token
            )
            assert status == 200 and rest["next_offset"] is None
            assert {r["community_id"] for r in body["items"] + rest["items"]} == set(want)
            status, body = await cloud.call("GET", "/api/v1/ops/stats/content?days=30", token)
            assert status == 200, body
            assert {a["community_id"]: a["plays"] for a in body["areas"]} == {
                c: n for (d, _, c), n in plan.items() if token is None or d == "lixia"
            }
            assert body["items"][0]["reads"] == 2 * boxes
    finally:
        await cloud.stop()


# --- per-community hours kept for recent days only (retention, postgres 0011) ---------------


def straight_per_community(sent: list[tuple[str, dict]], scope: str, since: str,
                           until: str) -> dict[str, dict[str, tuple]]:
    """Plays (count, ms) and reading (reads, readers, acks) per community of the records
    uploaded, counted here in Python: what the per-community statistics must answer."""
    paths = {a: f"/{a}/" for a, _, p in AREAS if p is None}
    for a, _, p in AREAS:
        if p is not None:
            paths[a] = f"{paths[p]}{a}/"
    paths["x9"] = "/x9/"
    out: dict[str, dict[str, list[int]]] = {k: {} for k in ("plays", "reads", "plays_c",
                                                             "reads_c")}  # fmt: skip
    for box, r in sent:
        community = BOXES.get(box, "x9")
        ts = r["ts"]
        if not paths[community].startswith(scope) or ts < since or (until and ts >= until):
            continue
        p = json.loads(r["payload"])
        for by, key in (("", community), ("_c", p.get("content_id") or "?")):
            if r["kind"] == "play_record":
                acc = out["plays" + by].setdefault(key, [0, 0])
                acc[0] += 1
                acc[1] += p.get("duration_ms") or 0
            elif r["kind"] == "reading_stats":
                acc = out["reads" + by].setdefault(key, [0, 0, 0])
                for i, f in enumerate(("reads", "new_readers", "acks")):
                    acc[i] += p.get(f) or 0
    return {k: {c: tuple(v) for c, v in d.items()} for k, d in out.items()}


def seconds(ms: int) -> float:
    """play_s as PostgreSQL rounds it (half away from zero)."""
    return float(Decimal(ms).scaleb(-3).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


async def per_community(storage: Any, scope: str, since: str, until: str) -> dict[str, dict]:
    """The same from the storage: the console's content statistics per community and per
    content item (and, from the roll-ups, its ranked table and its one-statement answer,
    whose item list reads the districts' months, postgres 0012) and portal reading by
    community."""
    got = await storage.content_stats(scope, since, until)
    out = {
        "plays": {r["community_id"]: (int(r["plays"]), int(r["ms"] or 0))
                  for r in got["plays_by_community"]},
        "reads": {r["community_id"]: (int(r["reads"]), int(r["readers"]), int(r["acks"]))
                  for r in got["reads_by_community"]},
        "plays_c": {r["content_id"] or "?": (int(r["plays"]), int(r["ms"] or 0))
                    for r in got["plays_by_content"]},
        "reads_c": {r["content_id"] or "?": (int(r["reads"]), int(r["readers"]),
                                             int(r["acks"])) for r in got["reads_by_content"]},
    }  # fmt: skip
    if storage.rollups and not until:  # the console's own statement (windows up to now)
        body = json.loads(await storage.content_console_json(scope, since, 200, 500))
        assert {i["content_id"]: (i["plays"], i["play_s"], i["reads"], i["readers"], i["acks"])
                for i in body["items"]} == {
            c: (out["plays_c"].get(c, (0, 0))[0], seconds(out["plays_c"].get(c, (0, 0))[1]),
                *out["reads_c"].get(c, (0,) * 3))
            for c in out["plays_c"].keys() | out["reads_c"].keys()
        }, "console content items"  # fmt: skip
        # ... and its community table (ranked and cut in SQL; every community fits here).
        plays, reads = out["plays"], out["reads"]
        want = {c: (plays.get(c, (0, 0))[0], seconds(plays.get(c, (0, 0))[1]),
                    *reads.get(c, (0,) * 3)) for c in plays.keys() | reads.keys()}
        assert {a["community_id"]: (a["plays"], a["play_s"], a["reads"], a["readers"], a["acks"])
                for a in body["areas"]} == {c: v for c, v in want.items() if any(v)}, (
            "console community table")  # fmt: skip
    portal = await reading_totals(storage, scope, "community", since, until)
    assert {r["community_id"]: (r["reads"], r["new_readers"], r["acks"]) for r in portal} == {
        c: v for c, v in out["reads"].items()
    }, "portal reading by community"
    return {k: {c: v for c, v in d.items() if any(v)} for k, d in out.items()}


async def assert_per_community_exact(storage: Any, sent: list[tuple[str, dict]]) -> None:
    for scope in ("/", "/cA/"):
        for since, until in [
            (iso(NOW - 30 * DAY), ""),  # the console's 30 days: a partial first day
            (iso(NOW - 12 * DAY - timedelta(hours=5)), iso(NOW - 8 * DAY - timedelta(hours=3))),
            (iso(NOW - 10 * DAY - timedelta(minutes=7)), iso(NOW - 9 * DAY)),
            (iso(NOW - 20 * DAY - timedelta(hours=13)), iso(NOW - 20 * DAY - timedelta(hours=2))),
            (iso(NOW - timedelta(hours=30)), iso(NOW - timedelta(hours=3))),
            ("", iso(NOW - 5 * DAY)),
            ("", ""),
            # The console's 90 and 365 days (whole months per community and per district),
            # and a year that ends in the past (months at both ends in part).
            (iso(NOW - 90 * DAY), ""),
            (iso(NOW - 365 * DAY), ""),
            (iso(NOW - 370 * DAY - timedelta(hours=7)), iso(NOW - 35 * DAY)),
            *YEAR_EDGES,  # across a year's start (0013's years)
            # The console's windows since stats7: from the start of a day.
            *[((NOW - n * DAY).date().isoformat(), "") for n in (1, 30, 45, 364, 365)],
        ]:
            want = straight_per_community(sent, scope, since, until)
            want = {k: {c: v for c, v in d.items() if any(v)} for k, d in want.items()}
            assert await per_community(storage, scope, since, until) == want, (scope, since)


async def test_per_community_hours_pruned_statistics_stay_exact(
    db_url: str, tmp_path: Path
) -> None:
    """Retention deletes per-community hours older than keep_days; windows reaching further
    back read those hours from the records: every per-community figure still equals a
    straight count of the records uploaded, before and after pruning, for a late record of a
    pruned hour, and while the rows wait out grace_s after the day readers start from moved."""
    storage = await open_storage(db_url)
    pg = storage.dialect == "postgres"
    storage.hours_ttl_s = 0  # re-read the day at once: grace_s is 0 below
    rnd = random.Random(11)
    old = add_months(month_of(NOW), -4)
    never = {c: ClassRetention(keep_days=None) for c in ALL_CLASSES}

    def cfg(days: int, grace: float) -> RetentionConfig:
        hours = CommunityHours(keep_days=days, grace_s=grace)
        return RetentionConfig(**never, export_dir=tmp_path / "x", community_hours=hours)

    async def below(day: str) -> int:
        async with storage.tx() as c:
            return sum([await c.c.fetchval(f"SELECT count(*) FROM {t.table}"
                                           f" WHERE {t.period} < $1", day)
                        for t in COMMUNITY_HOURS])  # fmt: skip

    try:
        await setup_areas(storage)
        sent: list[tuple[str, dict]] = []
        for box in [*BOXES, "b9"]:
            rows = records(rnd, box, 1, 80, datetime(old.year, old.month, 3, tzinfo=UTC), True)
            await storage.upload(box, 1, rows)
            sent += [(box, r) for r in rows]
        await assert_per_community_exact(storage, sent)
        keep_from = (NOW - 10 * DAY).date().isoformat()
        if pg:
            assert await below(keep_from) > 50

        dry = await maintain(storage, cfg(10, 0), dry_run=True, progress=lambda s: None)
        if pg:  # says what would go, deletes nothing, leaves the day readers start from
            assert sum(s.rows for s in dry if s.action == "prune") == await below(keep_from)
            assert await storage.community_hours_from() == ""
        steps = await maintain(storage, cfg(10, 0), progress=lambda s: None)
        pruned = [s for s in steps if s.action == "prune"]
        if pg:
            assert {s.table for s in pruned} == {t.table for t in COMMUNITY_HOURS}
            assert await below(keep_from) == 0 and await below("9") > 0  # newer ones kept
            assert await storage.community_hours_from() == keep_from
        else:
            assert pruned == []  # SQLite keeps no roll-ups: its figures come from the records
        await assert_per_community_exact(storage, sent)

        # A box that was offline sends a play of a pruned hour: the trigger counts it into
        # an hour row the statistics do not read (the records answer), the next run deletes it.
        late = records(random.Random(5), "b1", 500, 1, NOW)[0]
        late |= {"kind": "play_record", "ts": iso(NOW - 20 * DAY),
                 "payload": json.dumps({"content_id": "ct-9", "duration_ms": 4000})}  # fmt: skip
        await storage.upload("b1", 1, [late])
        sent.append(("b1", late))
        if pg:
            assert await below(keep_from) > 0
        await assert_per_community_exact(storage, sent)
        await maintain(storage, cfg(10, 0), progress=lambda s: None)
        if pg:
            assert await below(keep_from) == 0
        await assert_per_community_exact(storage, sent)

        # Fewer days kept: the day moves at once, the rows wait out the grace.
        keep_from = (NOW - 5 * DAY).date().isoformat()
        steps = await maintain(storage, cfg(5, 3600), progress=lambda s: None)
        assert not [s for s in steps if s.action == "prune"]
        if pg:
            assert await storage.community_hours_from() == keep_from
            assert await below(keep_from) > 0
        await assert_per_community_exact(storage, sent)
    finally:
        await storage.close()
