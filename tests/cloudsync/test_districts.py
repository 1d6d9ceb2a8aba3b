"""Records of the listed classes carry their box's district (postgres migration 0009, sqlite
0007): a city's or a district's lists ask for its districts instead of every box id, and
answer exactly what the box-id lists answer, for rows stored before the migration (the
backfill) and after it (stamped at upload), on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudsync.storage import open_storage
from tests.cloudsync.test_rollups import SCOPES, setup_areas

NOW = datetime.now(UTC)
KINDS = [["report"], ["alert"], ["repair_ticket"]]


def batch(first: int, n: int) -> list[dict[str, Any]]:
    out = []
    for seq in range(first, first + n):
        kind = ("report", "alert", "repair_ticket", "access_event")[seq % 4]
        ts = (NOW - timedelta(hours=seq * 7)).isoformat()
        payload = {"schema": f"qilu.v1.{kind}", "id": f"r{seq}", "ts": ts,
                   "category": "praise" if seq % 3 else "other", "level": "critical",
                   "status": "open"}  # fmt: skip
        out.append({"seq": seq, "priority": 2, "kind": kind, "record_id": f"r{seq}", "ts": ts,
                    "payload": json.dumps(payload)})  # fmt: skip
    return out


async def lists(storage: Any, districts: bool) -> dict[str, list[tuple[str, int]]]:
    """The lists by the records' district, or (``districts`` False) by box ids as on a
    database without the column."""
    had = storage.district_column
    storage.district_column = had and districts
    out = {}
    try:
        for scope in SCOPES:
            for kinds in KINDS:
                for where in ({}, {"category": "praise"}):
                    rows = await storage.records_query(kinds, scope, None, None, None, where,
                                                       None, 500)  # fmt: skip
                    out[f"{scope} {kinds} {where}"] = [(r["box_id"], r["seq"]) for r in rows]
            rows = await storage.overview_rows(scope, "", None, True)
            out[f"{scope} overview"] = sorted((r["community_id"], r["n"])
                                              for r in rows["critical"])
            alerts = await storage.alerts_since(scope, "", 500)
            out[f"{scope} alerts_since"] = [(r["box_id"], r["seq"]) for r in alerts]
            tickets = await storage.tickets_latest(scope, 500)
            out[f"{scope} tickets"] = sorted((r["box_id"], r["seq"]) for r in tickets)
    finally:
        storage.district_column = had
    return out


async def test_lists_by_district_answer_as_by_box_ids(db_url: str) -> None:
    storage = await open_storage(db_url, migrate=False)
    pg = storage.dialect == "postgres"
    try:
        await storage.migrate(upto=8 if pg else 6)  # before the districts
        await setup_areas(storage)
        boxes = ["b1", "b2", "b3", "b4", "b5", "b6", "b9"]
        for box in boxes:
            await storage.upload(box, 1, batch(1, 12))
        # the rows above filled in
        want = [9, 10, 11, 12, 13] if pg else [7, 8]  # and any later ones after them
        assert (await storage.migrate())[: len(want)] == want
        for box in boxes:
            await storage.upload(box, 1, batch(13, 12))  # stamped at upload
        async with storage.tx() as c:
            got = await c.fetch(
                "SELECT box_id, kind, district, count(*) AS n FROM records"
                " GROUP BY box_id, kind, district ORDER BY box_id, kind"
            )
            cond, arg = await storage.record_scope(c, "/cA/", ["report"])
        # Every listed record has its box's district, the others none.
        want = {"b1": "/cA/dA1/", "b2": "/cA/dA1/", "b3": "/cA/dA1/", "b4": "/cA/dA1/",
                "b5": "/cA/dA2/", "b6": "/cB/dB1/", "b9": "/x9/"}  # fmt: skip
        assert {(r["box_id"], r["kind"]): (r["district"], r["n"]) for r in got} == {
            (b, k): (None if k == "access_event" else want[b], 6)
            for b in boxes
            for k in ("report", "alert", "repair_ticket", "access_event")
        }
        paths = json.loads(arg) if isinstance(arg, str) else arg  # SQLite: a JSON list
        assert "r.district" in cond and sorted(paths) == ["/cA/", "/cA/dA1/", "/cA/dA2/"]
        by_district, by_box = await lists(storage, True), await lists(storage, False)
        assert by_district == by_box
        assert len(by_box["/cA/ ['report'] {}"]) == 5 * 6
        assert len(by_box["/cA/dA1/ ['alert'] {}"]) == 4 * 6
        assert by_box["/x9/ ['repair_ticket'] {}"] and by_box["/cB/ overview"] == [("m5", 6)]
    finally:
        await storage.close()
