"""Ops API on both backends: area scoping, records with filters and pagination, statistics,
publishing to targets, ticket updates."""

from __future__ import annotations

import json

from edge.sync.client import CloudClient
from edge.sync.identity import Identity
from edge.sync.store import OutboxRow
from tests.cloudsync.helpers import Cloud


def rec(seq: int, kind: str, prio: int, ts: str, **payload: object) -> OutboxRow:
    text = json.dumps(
        {"schema": f"qilu.v1.{kind}", "id": f"{kind}-{seq}", **payload}, ensure_ascii=False
    )
    return OutboxRow(seq, prio, kind, f"{kind}-{seq}", ts, text, len(text))


async def two_districts(cloud: Cloud) -> tuple[Identity, Identity]:
    a = await cloud.new_box("c1", district="lixia", street="s1")
    b = await cloud.new_box("c2", district="shizhong", street="s2")
    return a, b


async def upload(ident: Identity, records: list[OutboxRow]) -> None:
    client = CloudClient(ident)
    try:
        await client.upload(records, floor=1)
    finally:
        await client.close()


async def test_district_admin_sees_only_its_district(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    await upload(a, [rec(1, "report", 2, "2026-01-01T10:00:00", category="noise", text="吵")])
    await upload(b, [rec(1, "report", 2, "2026-01-01T11:00:00", category="noise", text="闹")])
    token = await cloud.ops_user("lixia-admin", "admin", "lixia")
    status, me = await cloud.call("GET", "/api/v1/ops/me", token)
    assert me["scope"] == "/jinan/lixia/"
    _, boxes = await cloud.call("GET", "/api/v1/ops/boxes", token)
    assert [x["id"] for x in boxes["items"]] == [a.box_id]
    _, reports = await cloud.call("GET", "/api/v1/ops/reports", token)
    assert [r["box_id"] for r in reports["items"]] == [a.box_id]
    # Outside its scope: not found, and it cannot act there.
    status, _ = await cloud.call("GET", f"/api/v1/ops/boxes/{b.box_id}", token)
    assert status == 404
    status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{b.box_id}/revoke", token)
    assert status == 404
    status, _ = await cloud.call("POST", "/api/v1/ops/communities/c2/claim-codes", token, json={})
    assert status == 404
    status, _ = await cloud.call(
        "POST", "/api/v1/ops/areas", token, json={"id": "qingdao", "level": "city", "name": "青岛"}
    )
    assert status == 403
    # A viewer reads but does not write.
    viewer = await cloud.ops_user("viewer", "viewer", None)
    status, _ = await cloud.call("GET", "/api/v1/ops/boxes", viewer)
    assert status == 200
    status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{a.box_id}/revoke", viewer)
    assert status == 403
    status, _ = await cloud.call("GET", "/api/v1/ops/boxes", "wrong-token")
    assert status == 401


async def test_reports_alerts_filters_and_pagination(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    recs = [
        rec(
            i,
            "report",
            2,
            f"2026-01-01T10:{i:02d}:00",
            category="noise" if i % 2 else "repair",
            urgency="high" if i % 3 == 0 else "normal",
            text=f"r{i}",
        )
        for i in range(1, 12)
    ]
    recs += [
        rec(
            20,
            "alert",
            0,
            "2026-01-02T00:00:00",
            level="critical",
            type="urgent_report",
            message="水管爆裂",
        ),
        rec(21, "alert", 0, "2026-01-02T00:01:00", level="warning", type="disk", message="80 %"),
    ]
    await upload(a, recs)
    await upload(b, [rec(1, "report", 2, "2026-01-01T10:30:00", category="noise", text="b")])
    seen, cursor = [], None
    for _ in range(10):
        q = "/api/v1/ops/reports?limit=4&category=noise" + (f"&cursor={cursor}" if cursor else "")
        status, page = await cloud.call("GET", q)
        assert status == 200, page
        seen += [(r["box_id"], r["seq"]) for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    expected = [(a.box_id, i) for i in range(1, 12) if i % 2] + [(b.box_id, 1)]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    ts = [r for r in seen]
    assert len(ts) == 7
    _, high = await cloud.call("GET", "/api/v1/ops/reports?urgency=high&since=2026-01-01T10:05")
    assert sorted(r["seq"] for r in high["items"]) == [6, 9]
    _, alerts = await cloud.call("GET", "/api/v1/ops/alerts?level=critical")
    assert [x["payload"]["message"] for x in alerts["items"]] == ["水管爆裂"]
    status, bad = await cloud.call("GET", "/api/v1/ops/reports?limit=0")
    assert status == 400 and "limit" in bad["error"]
    status, bad = await cloud.call("GET", "/api/v1/ops/reports?cursor=bm9wZQ")
    assert status == 400 and "cursor" in bad["error"]


async def test_access_and_play_statistics(cloud: Cloud) -> None:
    a, _ = await two_districts(cloud)
    recs = [
        rec(
            i,
            "access_event",
            1,
            f"2026-01-01T08:00:{i:02d}",
            door_id="d1",
            method="face" if i < 5 else "qr",
            decision="granted" if i != 3 else "denied",
        )
        for i in range(1, 8)
    ]
    recs2 = [
        rec(
            10 + i,
            "play_record",
            3,
            f"2026-01-01T09:00:{i:02d}",
            screen_id="s1",
            content_id="ad-1" if i < 3 else "ad-2",
            duration_ms=1000 * i,
        )
        for i in range(1, 5)
    ]
    await upload(a, recs)
    await upload(a, recs2)
    _, acc = await cloud.call("GET", "/api/v1/ops/stats/access")
    counts = {(r["decision"], r["method"]): r["count"] for r in acc["items"]}
    assert counts == {("granted", "face"): 3, ("denied", "face"): 1, ("granted", "qr"): 3}
    assert acc["total"] == 7
    _, plays = await cloud.call("GET", "/api/v1/ops/stats/plays")
    assert plays["items"] == [
        {"content_id": "ad-1", "plays": 2, "duration_ms": 3000},
        {"content_id": "ad-2", "plays": 2, "duration_ms": 7000},
    ]


async def test_publish_emergency_and_ticket_update_reach_the_right_boxes(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    await upload(a, [rec(1, "repair_ticket", 2, "2026-01-01T00:00:00", title="电梯坏了")])
    status, res = await cloud.call(
        "POST",
        "/api/v1/ops/publish",
        json={
            "action": "playlist",
            "targets": {"areas": ["lixia"], "screen_tags": ["lobby"]},
            "args": {"playlist": {"id": "pl-1", "name": "早间", "items": []}},
        },
    )
    assert status == 201 and res["boxes"] == 1, res
    status, em = await cloud.call(
        "POST",
        "/api/v1/ops/emergency",
        json={"message": "台风预警", "targets": {"areas": ["jinan"]}},
    )
    assert status == 201 and em["boxes"] == 2
    status, t = await cloud.call(
        "POST",
        "/api/v1/ops/tickets/repair_ticket-1/update",
        json={"status": "assigned", "assignee": "王师傅"},
    )
    assert status == 201 and t["box_id"] == a.box_id
    status, _ = await cloud.call("POST", "/api/v1/ops/tickets/nope/update", json={"status": None})
    assert status == 404
    status, bad = await cloud.call(
        "POST", "/api/v1/ops/publish", json={"action": "playlist", "targets": {}}
    )
    assert status == 400 and "targets" in bad["error"]
    for ident, want in ((a, ["playlist", "emergency", "ticket_update"]), (b, ["emergency"])):
        client = CloudClient(ident)
        try:
            page = await client.feed(0, 0)
        finally:
            await client.close()
        assert [i["action"] for i in page["items"]] == want
    client = CloudClient(a)
    try:
        items = (await client.feed(0, 0))["items"]
    finally:
        await client.close()
    assert "screen_tags" not in items[0]["args"]  # the box parses the record strictly
    assert items[1]["args"]["tags"] == [] and items[1]["args"]["source"] == "cloud"
    assert items[2]["args"] == {
        "ticket_id": "repair_ticket-1",
        "status": "assigned",
        "assignee": "王师傅",
        "note": "",
        "action": "assign",  # what the box's ticket machine runs
    }


async def test_report_correction_goes_down_the_feed_to_the_reports_box(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    await upload(b, [rec(1, "report", 2, "2026-01-01T00:00:00", text="有股味", category="other")])
    status, res = await cloud.call(
        "POST", "/api/v1/ops/reports/report-1/correction",
        json={"category": "safety_hazard", "urgency": "immediate", "note": "燃气泄漏"},
    )
    assert status == 201 and res["box_id"] == b.box_id, res
    status, bad = await cloud.call(
        "POST", "/api/v1/ops/reports/report-1/correction", json={"urgency": "soon"})
    assert status == 400 and "urgency" in bad["error"]
    status, _ = await cloud.call(
        "POST", "/api/v1/ops/reports/nope/correction", json={"urgency": "high"})
    assert status == 404
    for ident, want in ((a, []), (b, ["report_correction"])):
        client = CloudClient(ident)
        try:
            items = (await client.feed(0, 0))["items"]
        finally:
            await client.close()
        assert [i["action"] for i in items] == want
        if want:
            args = items[0]["args"]
            assert (args["report_id"], args["category"], args["urgency"]) == (
                "report-1", "safety_hazard", "immediate")


async def test_the_ticket_list_shows_each_ticket_once_in_its_latest_state(cloud: Cloud) -> None:
    """Probe 12: a box sends a ticket again on every change, and the ticket list (and its
    ?status= filter) answered every record: a ticket resolved long ago was still "open"."""
    a, _ = await two_districts(cloud)

    def ticket(seq: int, tid: str, status: str) -> OutboxRow:
        text = json.dumps({"schema": "qilu.v1.repair_ticket", "id": tid, "status": status,
                           "urgency": "normal", "title": "水管漏水"}, ensure_ascii=False)
        return OutboxRow(seq, 2, "repair_ticket", tid, f"2026-01-0{seq}T10:00:00", text,
                         len(text))  # fmt: skip

    await upload(a, [ticket(1, "tk-1", "open"), ticket(2, "tk-2", "open"),
                     ticket(3, "tk-1", "assigned"), ticket(4, "tk-1", "resolved")])
    _, listed = await cloud.call("GET", "/api/v1/ops/tickets")
    assert [(t["record_id"], t["payload"]["status"]) for t in listed["items"]] == [
        ("tk-1", "resolved"), ("tk-2", "open")]  # fmt: skip
    _, still_open = await cloud.call("GET", "/api/v1/ops/tickets", params={"status": "open"})
    assert [t["record_id"] for t in still_open["items"]] == ["tk-2"]
    _, history = await cloud.call("GET", "/api/v1/ops/tickets/tk-1/history")
    assert [t["payload"]["status"] for t in history["items"]] == ["open", "assigned", "resolved"]


async def test_the_ticket_board_keeps_old_open_tickets_past_its_limit(cloud: Cloud) -> None:
    """Probe 12: the board took the newest ``limit`` tickets (2,000 by default) whatever
    their state, so in a busy area the oldest open tickets, the overdue ones it shows first,
    fell off behind newer finished ones."""
    a, _ = await two_districts(cloud)

    def ticket(seq: int, status: str, due: str | None = None) -> OutboxRow:
        text = json.dumps({"schema": "qilu.v1.repair_ticket", "id": f"tk-{seq}",
                           "status": status, "urgency": "normal", "title": "水管漏水",
                           **({"due_at": due} if due else {})}, ensure_ascii=False)
        return OutboxRow(seq, 2, "repair_ticket", f"tk-{seq}", f"2026-01-{seq:02d}T10:00:00",
                         text, len(text))  # fmt: skip

    await upload(a, [ticket(1, "open", "2026-01-03T10:00:00+00:00"),
                     *(ticket(s, "confirmed") for s in range(2, 6))])
    _, board = await cloud.call("GET", "/api/v1/ops/tickets/board", params={"limit": 3})
    assert [(t["record_id"], t["overdue"]) for t in board["columns"]["open"]] == [("tk-1", True)]
    assert len(board["columns"]["confirmed"]) == 2
