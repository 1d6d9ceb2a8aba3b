"""Report search by index, the weekly roll-up behind the report charts, and content statistics
(proof of play and reading per item and area), on SQLite and PostgreSQL with records uploaded
by boxes over the real signed API; a district sees only its own."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import asyncpg

from cloudsync.storage import open_storage
from edge.sync.store import OutboxRow
from tests.cloudsync.helpers import Cloud
from tests.cloudsync.test_ops_api import rec, two_districts, upload

FILLER = [
    "楼道灯坏了，晚上很黑",
    "电梯又停了，老人上不去",
    "垃圾没人清理，味道很大",
    "停车位被占，车开不进来",
]


def day(days_ago: int, hour: int = 10) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime(f"%Y-%m-%dT{hour:02d}:00:00")


def report(seq: int, when: str, **payload: object) -> OutboxRow:
    """A report as a box records it: its own time (payload ts) is what the charts count by."""
    text = json.dumps(
        {"schema": "qilu.v1.report", "id": f"report-{seq}", "ts": when, **payload},
        ensure_ascii=False,
    )
    return OutboxRow(seq, 2, "report", f"report-{seq}", day(0), text, len(text))


async def test_search_finds_a_rare_term_by_index(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    rows = [
        rec(i, "report", 2, day(i % 30), text=FILLER[i % 4] + f" {i}号楼", category="other")
        for i in range(1, 301)
    ]
    rows.append(
        rec(
            301,
            "report",
            2,
            day(3),
            text="三单元煤气罐漏气，闻到很重的味道",
            category="safety_hazard",
        )
    )
    await upload(a, rows)
    await upload(
        b, [rec(1, "report", 2, day(2), text="二号楼煤气罐放在楼道里", category="safety_hazard")]
    )
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    for term in ("煤气", "煤气罐", "煤气罐漏气", "漏"):  # 2+ chars indexed in PG, 3+ in SQLite
        _, got = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"q": term})
        assert [r["record_id"] for r in got["items"]] == ["report-301"], term
        _, everyone = await cloud.call("GET", "/api/v1/ops/reports", params={"q": term})
        want = (
            ["report-301"] if term.endswith("漏气") or term == "漏" else ["report-301", "report-1"]
        )
        assert sorted(r["record_id"] for r in everyone["items"]) == sorted(want), term
    # A common word still finds the newest first, and an id finds its report.
    _, common = await cloud.call(
        "GET", "/api/v1/ops/reports", lixia, params={"q": "电梯", "limit": 5}
    )
    assert len(common["items"]) == 5 and all(
        "电梯" in r["payload"]["text"] for r in common["items"]
    )
    # ... newest first (by the report's time, then its seq: one box)
    newest = sorted(
        (i for i in range(1, 301) if "电梯" in FILLER[i % 4]),
        key=lambda i: (day(i % 30), i),
        reverse=True,
    )
    assert [r["record_id"] for r in common["items"]] == [f"report-{i}" for i in newest[:5]]
    _, by_id = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"q": "report-7"})
    assert [r["record_id"] for r in by_id["items"]] == ["report-7"]
    # LIKE's wildcards are literal in a search term.
    _, none = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"q": "%_%"})
    assert none["items"] == []

    if cloud.db.startswith("postgres"):
        # The plan for a rare term reads the index, not every report.
        conn = await asyncpg.connect(cloud.db)
        try:
            await conn.execute("ANALYZE records")
            await conn.execute("SET enable_seqscan = off")  # tiny table: ask whether it *can*
            await conn.execute("SET enable_indexscan = off")  # (not by walking the ts index)
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT * FROM records r WHERE r.kind = 'report' AND"
                    " qilu_bigrams(r.payload ->> 'text') @> qilu_bigrams('煤气罐')"
                )
            )
        finally:
            await conn.close()
        # records is partitioned by month (0006): each month has its copy of the index,
        # named after the partition and the expression
        assert re.search(r"Bitmap Index Scan on \S*(records_report_text|qilu_bigrams)", plan), plan
    else:
        import sqlite3

        db = sqlite3.connect(cloud.db)
        try:
            hits = db.execute(
                "SELECT count(*) FROM report_fts WHERE report_fts MATCH '\"煤气罐\"'"
            ).fetchone()
        finally:
            db.close()
        assert hits == (2,)


async def test_report_charts_come_from_the_weekly_rollup(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    rows = [
        report(1, day(0), text="a", category="noise_neighbours", sentiment=-0.5),
        report(2, day(0), text="b", category="noise_neighbours", sentiment=-0.7),
        report(3, day(8), text="c", category="praise", sentiment=0.9),
        report(4, "not a date", text="d", sentiment="high"),  # arrival week, no mood
        rec(5, "alert", 1, day(0), level="info", message="x"),
    ]
    await upload(a, rows)
    await upload(a, rows)  # a duplicate upload counts nothing twice
    await upload(b, [report(1, day(1), text="e", category="praise", sentiment=1.0)])
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    _, st = await cloud.call("GET", "/api/v1/ops/stats/reports", lixia, params={"weeks": 4})
    assert sum(w["n"] for w in st["weeks"]) == 4
    # This week: reports 1 and 2, and 4 (its ts is no date: the week it arrived, no mood);
    # report 3 is eight days old, so in an earlier week.
    this_week = st["weeks"][-1]
    assert (this_week["n"], this_week["mood"]) == (3, -0.6)
    assert [w["mood"] for w in st["weeks"][:-1] if w["n"]] == [0.9]
    assert {c["category"]: c["n"] for c in st["categories"]} == {
        "noise_neighbours": 2,
        "praise": 1,
        "other": 1,
    }
    assert [r["community_id"] for r in st["heat"]["rows"]] == ["c1"]
    _, root = await cloud.call("GET", "/api/v1/ops/stats/reports", params={"weeks": 4})
    assert sum(w["n"] for w in root["weeks"]) == 5
    assert sorted(r["community_id"] for r in root["heat"]["rows"]) == ["c1", "c2"]


async def test_content_statistics_per_item_and_area_are_scoped(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    plays = [rec(i, "play_record", 3, day(1), content_id="c-poster", duration_ms=10000)
             for i in range(1, 4)]  # fmt: skip
    reads = [rec(10, "reading_stats", 3, day(1), content_id="n-water", reads=7, new_readers=5,
                 acks=2, dwell_s=30.5)]  # fmt: skip
    await upload(a, plays + reads)
    await upload(b, [rec(1, "play_record", 3, day(1), content_id="c-poster", duration_ms=5000)])
    lixia = await cloud.ops_user("lixia-admin", "viewer", "lixia")
    _, st = await cloud.call("GET", "/api/v1/ops/stats/content", lixia)
    items = {i["content_id"]: i for i in st["items"]}
    assert (items["c-poster"]["plays"], items["c-poster"]["play_s"]) == (3, 30.0)
    assert (items["n-water"]["reads"], items["n-water"]["readers"], items["n-water"]["acks"]) == (
        7,
        5,
        2,
    )
    assert [(x["community_id"], x["name"], x["plays"], x["reads"]) for x in st["areas"]] == [
        ("c1", "C1", 3, 7)
    ]
    _, root = await cloud.call("GET", "/api/v1/ops/stats/content")
    assert {x["community_id"]: x["plays"] for x in root["areas"]} == {"c1": 3, "c2": 1}
    assert set(st) == {"since", "items", "areas"}
    assert {k for x in st["items"] for k in x} == {
        "content_id", "plays", "play_s", "reads", "readers", "acks"
    }  # fmt: skip
    assert {k for x in st["areas"] for k in x} == {
        "community_id", "name", "plays", "play_s", "reads", "readers", "acks"
    }  # fmt: skip
    status, _ = await cloud.call("GET", "/api/v1/ops/stats/content", lixia, params={"area": "c2"})
    assert status == 404


def version(seq: int, report_id: str, when: str, **payload: object) -> OutboxRow:
    """One more record of a report: a box sends the whole report again on every change (its
    status, a staff correction), with the report's own id and time (``when``), a new seq and
    the time of the change as the record's (edge/core/store/core.py emit)."""
    text = json.dumps(
        {"schema": "qilu.v1.report", "id": report_id, "ts": when, **payload}, ensure_ascii=False
    )
    return OutboxRow(seq, 2, "report", report_id, day(1, 10 + seq), text, len(text))


async def test_a_report_sent_again_on_a_change_is_one_report_in_its_latest_state(
    cloud: Cloud,
) -> None:
    """Probe 12: the list and the weekly figures counted every record of a report. A report
    answered and closed showed twice, once still "received" (found by ?status=received),
    and the charts counted it twice, also under the category staff had corrected away."""
    a, _ = await two_districts(cloud)
    when = day(1, 9)
    await upload(a, [
        version(1, "rp-1", when, text="楼道灯坏了", category="other", sentiment=-0.4,
                status="received"),
        version(2, "rp-2", when, text="电梯停了", category="facilities", sentiment=-0.6,
                status="received"),
    ])  # fmt: skip
    # Later: staff correct rp-1's category, then answer and close it (each a new record).
    await upload(a, [
        version(3, "rp-1", when, text="楼道灯坏了", category="facilities", sentiment=-0.4,
                status="received"),
        version(4, "rp-1", when, text="楼道灯坏了", category="facilities", sentiment=-0.4,
                status="closed", reply="已修好"),
    ])  # fmt: skip
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    _, got = await cloud.call("GET", "/api/v1/ops/reports", lixia)
    assert sorted((r["record_id"], r["payload"]["status"]) for r in got["items"]) == [
        ("rp-1", "closed"), ("rp-2", "received")]  # fmt: skip
    _, still_open = await cloud.call(
        "GET", "/api/v1/ops/reports", lixia, params={"status": "received"}
    )
    assert [r["record_id"] for r in still_open["items"]] == ["rp-2"]
    _, other = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"category": "other"})
    assert other["items"] == []
    _, found = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"q": "楼道灯坏"})
    assert [(r["record_id"], r["payload"]["status"]) for r in found["items"]] == [
        ("rp-1", "closed")]  # fmt: skip
    # As it was before a time: each report once, in its state then (a record's time is
    # day(1, 10 + seq): rp-1 was corrected at 13:00 and closed at 14:00).
    _, then = await cloud.call("GET", "/api/v1/ops/reports", lixia,
                               params={"until": day(1, 14)})  # fmt: skip
    assert sorted((r["record_id"], r["payload"]["status"], r["payload"]["category"])
                  for r in then["items"]) == [
        ("rp-1", "received", "facilities"), ("rp-2", "received", "facilities")]  # fmt: skip
    # Paged one by one: each report once.
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        _, page = await cloud.call("GET", "/api/v1/ops/reports", lixia, params=params)
        seen += [r["record_id"] for r in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert sorted(seen) == ["rp-1", "rp-2"]
    _, st = await cloud.call("GET", "/api/v1/ops/stats/reports", lixia, params={"weeks": 2})
    assert [(w["n"], w["mood"]) for w in st["weeks"] if w["n"]] == [(2, -0.5)]
    assert {c["category"]: c["n"] for c in st["categories"]} == {"facilities": 2}
    assert st["heat"]["rows"] == [{"community_id": "c1", "counts": [2]}]
    # An older record arriving late (a box re-sending a batch) changes nothing.
    await upload(a, [version(1, "rp-1", when, text="楼道灯坏了", category="other",
                             sentiment=-0.4, status="received")])  # fmt: skip
    _, again = await cloud.call("GET", "/api/v1/ops/stats/reports", lixia, params={"weeks": 2})
    assert again == st
    # A report's older record stored after its newer one (a batch split after a 413, a
    # priority lane): the list still shows it once, in its newest state.
    await upload(a, [version(6, "rp-3", when, text="门禁坏了", category="facilities",
                             sentiment=-0.2, status="closed", reply="已修好")])  # fmt: skip
    await upload(a, [version(5, "rp-3", when, text="门禁坏了", category="facilities",
                             sentiment=-0.2, status="received")])  # fmt: skip
    _, late = await cloud.call("GET", "/api/v1/ops/reports", lixia, params={"q": "门禁坏了"})
    assert [(r["record_id"], r["payload"]["status"]) for r in late["items"]] == [
        ("rp-3", "closed")]  # fmt: skip


async def test_the_upgrade_takes_away_report_records_counted_twice(db_url: str) -> None:
    """Reports changed before the upgrade (postgres 0015, sqlite 0010) counted each record:
    the migration takes away every record a newer one of its report replaced."""
    storage = await open_storage(db_url, migrate=False)
    pg = storage.dialect == "postgres"
    try:
        await storage.migrate(upto=14 if pg else 9)
        for aid, level, parent in (("jinan", "city", None), ("lixia", "district", "jinan"),
                                   ("s1", "street", "lixia"), ("c1", "community", "s1")):
            await storage.area_create(aid, level, aid, parent)
        async with storage.tx() as c:
            await c.execute("INSERT INTO boxes (id, community_id, secret, created_at)"
                            " VALUES ('b1', 'c1', 's', 'x')")  # fmt: skip
        when = day(1, 9)
        rows = [version(1, "rp-1", when, text="t", category="other", sentiment=-1,
                        status="received"),
                version(2, "rp-1", when, text="t", category="facilities", sentiment=-1,
                        status="closed"),
                version(3, "rp-2", when, text="u", category="facilities", status="received")]
        await storage.upload("b1", 1, [{k: v for k, v in r._asdict().items() if k != "bytes"}
                                          for r in rows])  # type: ignore[misc]

        async def counts() -> dict[str, tuple[int, int]]:
            weeks, cells = await storage.report_weekly("/", "2000-01-03")
            assert len(weeks) == 1
            return {c["category"]: int(c["n"]) for c in cells} | {
                "week": (int(weeks[0]["n"]), int(weeks[0]["mood_n"]))}

        assert await counts() == {"facilities": 2, "other": 1, "week": (3, 2)}
        await storage.migrate()
        assert await counts() == {"facilities": 2, "week": (2, 1)}
    finally:
        await storage.close()
