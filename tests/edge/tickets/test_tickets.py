"""Repair tickets through the real HTTP API: the state machine, photos, history, overdue."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp
import pytest

from edge.core.standard import Command
from edge.tickets import TICKETS, ops
from edge.tickets.machine import TransitionError, next_status
from tests.conftest import STAFF_TOKEN, api_url, db_count
from tests.peers.chromium import browser

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


@pytest.fixture
async def box(make_config, run_box):
    return await run_box(make_config(extra="[tickets]\ndue_hours_normal = 0.0003\n"
                                           "due_hours_high = 0.0003\noverdue_check_s = 0.1\n"))


async def post(s, url, path, *, headers=None, **kw):
    async with s.post(url + path, headers=headers, **kw) as r:
        return r.status, await r.json()


def test_machine_rules() -> None:
    status = next_status("open", "assign", "staff", assignee="li", current_assignee=None)
    assert status == "assigned"
    with pytest.raises(TransitionError, match="cannot resolve a ticket that is open"):
        next_status("open", "resolve", "staff", assignee=None, current_assignee=None)
    with pytest.raises(TransitionError, match="resident may not assign"):
        next_status("open", "assign", "resident", assignee="x", current_assignee=None)
    with pytest.raises(TransitionError, match="assignee"):
        next_status("open", "assign", "staff", assignee=None, current_assignee=None)


async def test_full_life_with_photos_and_history(box) -> None:
    url = api_url(box)
    async with aiohttp.ClientSession() as s:
        st, t = await post(s, url, "/api/v1/tickets", json={"fault": "water", "building": "2",
                                                             "location": "1单元101"})
        assert st == 201 and t["status"] == "open" and t["title"] == "漏水/水管 2号楼 1单元101"
        tid, key = t["id"], t["follow_key"]
        # illegal: resolve from open; resident assigning; start without assignee
        st, e = await post(s, url, f"/api/v1/tickets/{tid}/resolve", headers=STAFF, json={})
        assert st == 409 and e["field"] == "action"
        st, e = await post(s, url, f"/api/v1/tickets/{tid}/assign",
                           json={"assignee": "me", "key": key})
        assert st == 403
        st, e = await post(s, url, f"/api/v1/tickets/{tid}/assign", headers=STAFF, json={})
        assert st == 409 and e["field"] == "assignee"
        st, t = await post(s, url, f"/api/v1/tickets/{tid}/assign", headers=STAFF,
                           json={"assignee": "wang"})
        assert (st, t["status"], t["assignee"]) == (200, "assigned", "wang")
        st, t = await post(s, url, f"/api/v1/tickets/{tid}/start", headers=STAFF, json={})
        assert t["status"] == "in_progress"
        form = aiohttp.FormData()
        form.add_field("note", "换了阀门")
        form.add_field("photos", PNG, filename="after.png", content_type="image/png")
        st, t = await post(s, url, f"/api/v1/tickets/{tid}/resolve", headers=STAFF, data=form)
        assert (st, t["status"]) == (200, "resolved")
        # the resident: wrong key refused, right key reopens, then staff fix again, confirm
        st, e = await post(s, url, f"/api/v1/tickets/{tid}/confirm", json={"key": "nope"})
        assert st == 403 and e["field"] == "key"
        st, t = await post(s, url, f"/api/v1/tickets/{tid}/reopen", json={"key": key})
        assert t["status"] == "reopened"
        for action in ("start", "resolve"):
            st, t = await post(s, url, f"/api/v1/tickets/{tid}/{action}", headers=STAFF, json={})
            assert st == 200, t
        st, t = await post(s, url, f"/api/v1/tickets/{tid}/confirm", json={"key": key})
        assert t["status"] == "confirmed"
        st, e = await post(s, url, f"/api/v1/tickets/{tid}/reopen", json={"key": key})
        assert st == 409  # confirmed is final
        async with s.get(f"{url}/api/v1/tickets/{tid}?key={key}") as r:
            full = await r.json()
    steps = [(h["action"], h["to_status"]) for h in full["history"]]
    assert steps == [("open", "open"), ("assign", "assigned"), ("start", "in_progress"),
                     ("resolve", "resolved"), ("reopen", "reopened"), ("start", "in_progress"),
                     ("resolve", "resolved"), ("confirm", "confirmed")]
    assert full["history"][3]["note"] == "换了阀门" and len(full["history"][3]["photos"]) == 1
    assert [p["stage"] for p in full["photos"]] == ["resolution"]
    assert db_count(box, "SELECT count(*) FROM outbox WHERE kind = 'repair_ticket'") == 8


async def test_bad_ticket_input_stores_nothing(box) -> None:
    async with aiohttp.ClientSession() as s:
        for body, field in (({}, "title"), ({"fault": "ufo"}, "fault"),
                            ({"title": "x", "urgency": "panic"}, "urgency"),
                            ({"title": "灯" * 61}, "title")):
            st, e = await post(s, api_url(box), "/api/v1/tickets", json=body)
            assert (st, e["field"]) == (400, field), e
        form = aiohttp.FormData()
        form.add_field("title", "灯坏了")
        form.add_field("photos", b"%PDF-1.4", filename="a.jpg", content_type="image/jpeg")
        st, e = await post(s, api_url(box), "/api/v1/tickets", data=form)
        assert (st, e["field"]) == (415, "photos")
        async with s.get(f"{api_url(box)}/api/v1/tickets", headers=STAFF) as r:
            assert await r.json() == []
        async with s.get(f"{api_url(box)}/api/v1/tickets") as r:
            assert r.status == 403  # the list is for staff
    assert db_count(box, "SELECT count(*) FROM tickets") == 0


async def test_overdue_alert_raised_once(box) -> None:
    async with aiohttp.ClientSession() as s:
        st, _ = await post(s, api_url(box), "/api/v1/tickets", json={"title": "路灯不亮"})
    assert st == 201
    deadline = asyncio.get_running_loop().time() + 10
    while db_count(box, "SELECT count(*) FROM alerts WHERE type = 'ticket_overdue'") == 0:
        assert asyncio.get_running_loop().time() < deadline, "no overdue alert"
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # several more checks
    assert db_count(box, "SELECT count(*) FROM alerts WHERE type = 'ticket_overdue'") == 1
    assert db_count(box, "SELECT count(*) FROM outbox WHERE kind = 'alert'") == 1


async def test_device_tickets_and_cloud_updates(box) -> None:
    svc = box.service("tickets")
    t1 = await svc.open_device_ticket("door", "door-1", "offline for 10 min")
    t2 = await svc.open_device_ticket("door", "door-1", "still offline")
    assert t1.id == t2.id and t1.source == "device_health" and t1.urgency == "high"
    res = await box.commands.dispatch("box", "box-test", Command(
        id="c1", action="ticket_update", actor="ops-li",
        args={"ticket_id": t1.id, "action": "assign", "assignee": "zhang"}))
    assert res.ok and "assigned" in res.detail
    bad = await box.commands.dispatch("box", "box-test", Command(
        id="c2", action="ticket_update", args={"ticket_id": t1.id, "action": "confirm"}))
    assert not bad.ok and "cannot confirm" in bad.detail
    closed = await svc.close_device_ticket("door", "door-1")
    assert closed.status == "confirmed"
    assert await svc.close_device_ticket("door", "door-1") is None
    t3 = await svc.open_device_ticket("door", "door-1", "offline again")
    assert t3.id != t1.id


async def test_a_reports_ticket_stays_in_her_progress_after_1000_newer_tickets(
    make_config, run_box, tmp_path
) -> None:
    """A resident's report opened a repair ticket; 1000 newer tickets came in before the
    worker fixed it. Her 我的进度 still shows the repair with 「确认已修好」: the report's
    tickets used to be looked for among the 1000 newest tickets only."""
    box = await run_box(make_config())
    url = api_url(box)
    async with browser() as b:
        page = await b.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        await page.goto(f"{url}/r/")
        await page.wait_for_selector("body[data-ready='1']", timeout=10000)
        await page.fill("#report-text", "5号楼2单元楼道灯不亮了，晚上太黑，老人上下楼很危险")
        await page.fill("#report-building", "5")
        await page.click("#report-form button[type=submit]")
        await page.wait_for_selector("#report-result.ok", timeout=10000)
        assert "已派维修" in await page.inner_text("#report-result")
        tid = sqlite3.connect(box.config.db_path).execute(
            "SELECT id FROM tickets WHERE report_id IS NOT NULL").fetchone()[0]
        svc = box.get(TICKETS)
        for i in range(1000):  # other residents' repairs, all newer
            rec, extra = svc.build_for_report(title=f"{i % 20 + 1}号楼电梯异响")
            await box.store.run(ops.create, box.store.sync, rec, extra, "resident")
        await svc.transition(tid, "assign", role="staff", actor="t", assignee="维修工老李")
        await svc.transition(tid, "start", role="staff", actor="t")
        await svc.transition(tid, "resolve", role="staff", actor="t", note="换了声控灯")
        await page.click(".seg .tab[data-tab=mine]")
        card = page.locator(f"[data-ticket='{tid}']")
        await page.wait_for_load_state("networkidle")
        await page.screenshot(path=str(tmp_path / "mine-report-ticket.png"), full_page=True)
        await card.locator("button[data-action=confirm]").wait_for(timeout=10000)
        assert "换了声控灯" in await card.inner_text()


async def test_a_building_typed_with_its_word_is_not_doubled(make_config, run_box) -> None:
    """Residents type the building as they say it ("5号楼", "7栋"), not only "5" as the
    placeholder shows; the repair's title (her confirmation, the office's board) used to read
    "照明故障 5号楼号楼 2单元"."""
    box = await run_box(make_config())
    url = api_url(box)
    async with browser() as b:
        page = await b.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        typed_as = (("5号楼", "5号楼"), ("7栋", "7栋"), ("12号", "12号楼"), ("3", "3号楼"))
        for typed, place in typed_as:
            await page.goto("about:blank")
            await page.goto(f"{url}/r/#repair")
            await page.wait_for_selector("body[data-ready='1']", timeout=10000)
            await page.click("#faults .chip[data-code=light]")
            await page.fill("#repair-building", typed)
            await page.fill("#repair-location", "2单元")
            await page.click("#repair-form button[type=submit]")
            await page.wait_for_selector("#repair-result.ok", timeout=10000)
            assert f"（照明故障 {place} 2单元）" in await page.inner_text("#repair-result"), typed


async def test_a_one_tap_repair_is_as_urgent_as_what_she_wrote(make_config, run_box) -> None:
    """Every one-tap repair with a building ("暖气不热 5号楼 2单元301室") came out 紧急, as a
    safety hazard due within the hour: the text model read the generated place words as an
    emergency. The urgency now comes from the fault and what the resident wrote: a cold
    radiator is 一般; someone stuck in the lift is still 紧急."""
    box = await run_box(make_config())
    url = api_url(box)
    async with browser() as b:
        page = await b.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        for fault, text, said in (("heating", "", "一般"), ("light", "", "一般"),
                                  ("lift", "有人被困在电梯里出不来", "紧急")):
            await page.goto("about:blank")
            await page.goto(f"{url}/r/#repair")
            await page.wait_for_selector("body[data-ready='1']", timeout=10000)
            await page.click(f"#faults .chip[data-code={fault}]")
            await page.fill("#repair-building", "5")
            await page.fill("#repair-location", "2单元301室")
            await page.fill("#repair-text", text)
            await page.click("#repair-form button[type=submit]")
            await page.wait_for_selector("#repair-result.ok", timeout=10000)
            assert f"紧急程度：{said}" in await page.inner_text("#repair-result"), fault
    rows = sqlite3.connect(box.config.db_path).execute(
        "SELECT urgency, category FROM tickets ORDER BY ref").fetchall()
    assert rows[:2] == [("normal", "facilities_repair")] * 2 and rows[2][0] == "immediate"
