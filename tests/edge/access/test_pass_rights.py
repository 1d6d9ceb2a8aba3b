"""A visitor pass never opens a door its resident could not open (issue 13, High #1).

Issuing checks the resident's rights, blocks and status on every door and the pass's time
window; using a pass checks them again, so a pass stops working when its resident is blocked,
suspended, loses the door or moves out. Real pymodbus relay board as the doors.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from edge.access import store as db
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from tests.conftest import api_url
from tests.edge.access.test_engine import ACCESS, door_toml
from tests.edge.portal.helpers import FAST, STAFF, login, staff

COIL_B1, COIL_OFFICE = 1, 2


def until(hours: float = 2) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def start(make_config, run_box, board, **resident):
    config = make_config(extra=FAST + ACCESS + door_toml("d-b1", board.tcp_port, COIL_B1, None)
                         + door_toml("d-office", board.tcp_port, COIL_OFFICE, None, "office"))
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1", **resident))
    store.close()
    return await run_box(config)


async def set_status(box, status: str) -> None:
    def update(store: Store) -> None:
        with store.transaction():
            store.db.execute("UPDATE residents SET status = ? WHERE id = 'r1'", (status,))

    await box.store.run(update, box.store.sync)


async def use_pin(s: aiohttp.ClientSession, base: str, door: str, pin: str) -> tuple[int, dict]:
    async with s.post(f"{base}/api/v1/doors/{door}/pin", headers=STAFF, json={"pin": pin}) as r:
        return r.status, await r.json()


async def test_a_resident_issues_passes_only_for_doors_they_may_open(
    make_config, run_box, board
) -> None:
    box = await start(make_config, run_box, board, doors=["d-b1"])
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        h = await login(s, base, "r1")
        # The probe: refused at the office door itself ...
        async with s.post(f"{base}/api/v1/doors/d-office/open", headers=h) as r:
            assert r.status == 403
        # ... so a pass for it is refused too, naming the door and why.
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1", "d-office"], "valid_to": until()}) as r:
            body = await r.json()
            assert r.status == 403, body
        assert body["field"] == "doors"
        assert "d-office" in body["error"] and "not_allowed_here" in body["error"]
        # Staff issuing in the resident's name get the same answer: a pass is the resident's.
        async with s.post(f"{base}/api/v1/passes", headers=STAFF, json={
                "resident_id": "r1", "doors": ["d-office"], "valid_to": until()}) as r:
            assert r.status == 403
        assert await box.store.run(db.list_passes, box.store.sync, "r1") == []
        # Its own door is fine.
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until()}) as r:
            assert r.status == 201
        # Blocked, then suspended: no pass at all.
        blk = await staff(s, "POST", f"{base}/api/v1/access/blocks",
                          json={"resident_id": "r1", "reason": "欠费"})
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until()}) as r:
            assert r.status == 403 and "blocked" in (await r.json())["error"]
        await staff(s, "DELETE", f"{base}/api/v1/access/blocks/{blk['id']}")
        await set_status(box, "suspended")
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until()}) as r:
            assert r.status == 403 and "resident_suspended" in (await r.json())["error"]
    assert len(await box.store.run(db.list_passes, box.store.sync, "r1")) == 1
    assert board.first_write(1, COIL_OFFICE, True) is None


async def test_a_pass_outside_the_residents_hours_is_refused(make_config, run_box, board) -> None:
    box = await start(make_config, run_box, board)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        now = datetime.now(box.service("access").tz)
        # A one-hour window that starts three hours from now, every day.
        a = (now + timedelta(hours=3)).strftime("%H:00")
        b = (now + timedelta(hours=4)).strftime("%H:00")
        await staff(s, "PUT", f"{base}/api/v1/residents/r1/access",
                    json={"all_doors": True, "windows": [{"start": a, "end": b}]})
        h = await login(s, base, "r1")
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until(1.5)}) as r:
            body = await r.json()
            assert r.status == 403 and "outside_hours" in body["error"], body
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until(6)}) as r:
            assert r.status == 201  # overlaps the window: the visitor may come then


@pytest.mark.parametrize("change", ["blocked", "suspended", "rights_removed", "moved_out"])
async def test_a_pass_stops_working_when_its_resident_may_no_longer_pass(
    make_config, run_box, board, change
) -> None:
    box = await start(make_config, run_box, board)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={"doors": ["d-b1"]})
        h = await login(s, base, "r1")
        async with s.post(f"{base}/api/v1/passes", headers=h, json={
                "doors": ["d-b1"], "valid_to": until(), "uses": 3}) as r:
            assert r.status == 201
            vp = await r.json()
        if change == "blocked":
            await staff(s, "POST", f"{base}/api/v1/access/blocks",
                        json={"resident_id": "r1", "door_id": "d-b1"})
        elif change == "rights_removed":
            # no rights at all is no door now (it used to be every door: hence "d-x" here)
            await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={})
        else:
            await set_status(box, change)
        want = {"blocked": "issuer_blocked", "suspended": "issuer_resident_suspended",
                "rights_removed": "issuer_not_allowed_here",
                "moved_out": "issuer_resident_moved_out"}[change]
        t0 = time.monotonic()
        status, out = await use_pin(s, base, "d-b1", vp["pin"])
        assert (status, out["granted"], out["reason"]) == (403, False, want)
        async with s.post(f"{base}/api/v1/doors/d-b1/qr", headers=STAFF,
                          json={"text": vp["qr_text"]}) as r:
            assert r.status == 403 and (await r.json())["reason"] == want
        # The coil never went on at the board.
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(board.wait_for, 1, COIL_B1, True, 0.5, t0)
        evs = await box.store.run(db.list_events, box.store.sync, "d-b1", 10)
        assert [(e["decision"], e["reason"], e["pass_id"]) for e in evs] == [
            ("denied", want, vp["id"])] * 2
        # A refused use spends nothing.
        assert (await box.store.run(db.get_pass, box.store.sync, vp["id"]))["uses_left"] == 3


async def test_the_me_page_offers_only_the_residents_doors_unticked(
    make_config, run_box, board
) -> None:
    box = await start(make_config, run_box, board, doors=["d-b1"])
    base = api_url(box)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes", json={"resident_id": "r1"})
        async with s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]}) as r:
            assert r.status == 200
        async with s.get(f"{base}/r/me") as r:
            text = await r.text()
        assert "name=door value='d-b1'" in text
        assert "d-office" not in text  # neither a pass checkbox nor an open button
        assert "checked" not in text
        # A forged form for the office door is refused with the reason, nothing stored.
        async with s.post(f"{base}/r/passes", data={"door": "d-office"}) as r:
            assert "您没有这扇门的权限" in await r.text()
    assert await box.store.run(db.list_passes, box.store.sync, "r1") == []


async def test_a_deleted_residents_phone_is_signed_out(make_config, run_box, board) -> None:
    """Security probes 4/5: a resident recorded as moved out is signed out on every phone, but
    one deleted from the roster (office, API, CLI) kept their portal session: the phone went on
    showing their pages and could still ask for doors. Now deletion signs them out too (their
    unused login codes go with it): the phone gets the login page, and no door opens."""
    box = await start(make_config, run_box, board, doors=["d-b1"])
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        h = await login(s, base, "r1")
        spare = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                            json={"resident_id": "r1", "building": "1", "name": "张三"})
        async with s.get(f"{base}/api/v1/portal/me", headers=h) as r:
            assert r.status == 200, await r.text()
        async with s.get(f"{base}/r/me", headers=h, allow_redirects=False) as r:
            assert r.status == 200, r.status
        await staff(s, "DELETE", f"{base}/api/v1/residents/r1")
        async with s.get(f"{base}/api/v1/portal/me", headers=h) as r:
            assert r.status == 401, await r.text()
        async with s.get(f"{base}/r/me", headers=h, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/r/login", r.status
        async with s.get(f"{base}/r/me", headers=h) as r:
            assert "action=/r/login" in await r.text()
        t0 = time.monotonic()
        async with s.post(f"{base}/api/v1/doors/d-b1/open", headers=h) as r:
            assert r.status == 401, await r.text()
        async with s.post(f"{base}/api/v1/portal/login", json={"code": spare["code"]}) as r:
            assert r.status != 200, await r.text()  # nor can a code given out before
        await asyncio.sleep(0.5)
        assert board.first_write(1, COIL_B1, True, t0) is None


@pytest.mark.parametrize("status", ["moved_out", "suspended"])
async def test_a_moved_out_residents_phone_is_signed_out(
    make_config, run_box, board, status
) -> None:
    """Security probe 4: a resident recorded as moved out kept a working portal session (their
    doors refused them, their old phone still read the notices, posted reports as a resident
    and saw the building's board). A suspended resident is still one: their phone stays."""
    box = await start(make_config, run_box, board)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        h = await login(s, base, "r1")
        async with s.get(f"{base}/api/v1/portal/me", headers=h) as r:
            assert r.status == 200, await r.text()
        await set_status(box, status)
        async with s.get(f"{base}/api/v1/portal/me", headers=h) as r:
            assert r.status == (401 if status == "moved_out" else 200), await r.text()
