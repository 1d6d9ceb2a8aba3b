"""The property office in headless Chromium (Playwright, /usr/bin/chromium) against a real
box: sign in, move a ticket across the board (rows read back from SQLite), enrol a face from
an uploaded photo and see the quality gate refuse a dark one with its reason, enrol from the
camera (Chromium's fake camera playing a face), open a door (a coil flips on a pymodbus relay
board), and a screenshot of every page at 1366x768 (QILU_SHOTS=dir keeps them)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from edge.access import ACCESS
from edge.tickets import TICKETS
from edge.tickets import ops as tickets_ops
from tests.conftest import api_url, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import cam_toml, door_toml
from tests.edge.office.helpers import PASSWORDS, STAFF, add_users, new_ticket, session
from tests.edge.portal.helpers import login, staff
from tests.peers.chromium import browser

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"
COIL = 3
EXTRA = """
[portal]
stats_interval_s = 3600
"""
# Form controls a screen reader could not name (no <label>, no aria-label).
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter((el) =>
    !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.tagName === 'BUTTON' && el.textContent.trim())).map((el) => el.outerHTML)"""
PAGES = ("today", "tickets", "residents", "doors", "passes", "blocks", "moderation", "devices",
         "log", "audit")


@pytest.fixture
def board():
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


def db_one(box, sql: str, *args):
    db = sqlite3.connect(box.config.db_path)
    try:
        return db.execute(sql, args).fetchone()
    finally:
        db.close()


def shots_dir(tmp_path: Path) -> Path:
    d = Path(os.environ.get("QILU_SHOTS") or tmp_path / "shots")
    d.mkdir(parents=True, exist_ok=True)
    return d


async def office_page(b, base: str, path: str):
    """A console-sized page signed in as ann (staff), opened at ``path``."""
    page = await b.new_page(viewport={"width": 1366, "height": 768})
    await page.goto(f"{base}/office/login?next={path}")
    await page.fill("input[name=name]", "ann")
    await page.fill("input[name=password]", PASSWORDS["ann"])
    await page.click("main form button[type=submit]")
    await page.wait_for_url(f"**{path}")
    return page


async def seed(base: str) -> dict:
    """Residents with rights, an alert-raising report, a flagged post, a pass, a block."""
    async with session() as s:
        for rid, name, b, room in (("r-101", "王阿姨", "1", "301"), ("r-102", "刘大爷", "1", "101"),
                                   ("r-201", "陈女士", "2", "202")):
            await staff(s, "POST", f"{base}/api/v1/residents", json={
                "id": rid, "name": name, "building": b, "unit": "1", "room": room})
            await staff(s, "PUT", f"{base}/api/v1/residents/{rid}/access",
                        json={"doors": ["d-1", "d-2"]})
        await staff(s, "POST", f"{base}/api/v1/reports", json={
            "text": "3号楼地下室有很浓的煤气味，请马上来人", "building": "3"})
        await staff(s, "POST", f"{base}/api/v1/reports", json={"text": "小区路灯坏了两盏"})
        h = await login(s, base, "r-101")
        async with s.post(f"{base}/api/v1/portal/posts", headers=h,
                          json={"title": "出售二手电动车，加微信", "body": "低价转让"}) as r:
            post = await r.json()
        h2 = await login(s, base, "r-102")
        cats = (await staff(s, "GET", f"{base}/api/v1/taxonomy"))["categories"]
        async with s.post(f"{base}/api/v1/portal/posts/{post['id']}/flag", headers=h2,
                          json={"category": cats[0]["code"], "reason": "广告"}) as r:
            assert r.status < 300, await r.text()
        await staff(s, "POST", f"{base}/api/v1/access/blocks",
                    json={"resident_id": "r-201", "reason": "物业费欠缴"})
        await staff(s, "POST", f"{base}/api/v1/doors/d-2/open")
        await staff(s, "POST", f"{base}/api/v1/passes", json={
            "resident_id": "r-101", "visitor": "快递员小张", "doors": ["d-2"],
            "valid_to": (datetime.now(UTC) + timedelta(hours=3)).isoformat()})
    return {}


async def test_the_office_in_chromium(tmp_path, make_config, run_box, board):
    cams = tmp_path / "cam"
    cams.mkdir()
    frame = cv2.imread(str(FACES / "obama2.jpg"))
    cv2.imwrite(str(cams / "0001.jpg"), cv2.resize(frame, (640, 480)))
    config = make_config(extra=EXTRA + door_toml("d-1", board.tcp_port, COIL, None)
                         + "name = \"1号楼单元门\"\n"
                         + '\n[[doors]]\nid = "d-2"\ntype = "sim"\nbuilding = "2"\n'
                         + cam_toml("cam-gate", cams))
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    await seed(base)
    async with session() as s:
        ticket = await new_ticket(s, base)
    dark = tmp_path / "dark.jpg"
    img = cv2.imread(str(FACES / "obama.jpg"))
    cv2.imwrite(str(dark), np.clip(img.astype(np.float32) * 0.15, 0, 255).astype(np.uint8))
    shots = shots_dir(tmp_path)

    async with browser() as b:
        page = await b.new_page(viewport={"width": 1366, "height": 768})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/office/")
        assert "/office/login" in page.url
        await page.screenshot(path=str(shots / "office-login.png"))
        await page.fill("input[name=name]", "ann")
        await page.fill("input[name=password]", PASSWORDS["ann"])
        await page.click("main form button[type=submit]")
        await page.wait_for_url("**/office/today")
        await page.wait_for_selector("#kpis .kpi")

        # --- the ticket board: assign, start, resolve with a photo -----------------------
        await page.goto(f"{base}/office/tickets")
        card = f'article[data-ticket="{ticket["id"]}"]'
        await page.wait_for_selector(f'[data-column="open"] {card}')
        await page.click(f'{card} button[data-action="assign"]')
        await page.fill(f"{card} form input[name=assignee]", "维修工老李")
        await page.click(f"{card} form button[type=submit]")
        await page.wait_for_selector(f'[data-column="assigned"] {card}', timeout=10000)
        assert db_one(box, "SELECT status, assignee FROM tickets WHERE id = ?",
                      ticket["id"]) == ("assigned", "维修工老李")
        await page.click(f'{card} button[data-action="start"]')
        await page.click(f"{card} form button[type=submit]")
        await page.wait_for_selector(f'[data-column="in_progress"] {card}', timeout=10000)
        await page.click(f'{card} button[data-action="resolve"]')
        await page.fill(f"{card} form input[name=note]", "已更换电机")
        await page.set_input_files(f"{card} form input[name=photos]", str(FACES / "person_a_1.jpg"))
        await page.click(f"{card} form button[type=submit]")
        await page.wait_for_selector(f'[data-column="resolved"] {card}', timeout=10000)
        assert db_one(box, "SELECT status FROM tickets WHERE id = ?", ticket["id"]) == ("resolved",)
        assert db_one(box, "SELECT count(*) FROM photos WHERE owner_id = ? AND stage ="
                      " 'resolution'", ticket["id"]) == (1,)
        await page.click(f"{card} button:has-text('详情')")
        await page.wait_for_selector(f"{card} .thumbs img")
        await page.screenshot(path=str(shots / "office-tickets.png"), full_page=True)

        # --- face enrolment from uploads: a dark photo is refused, saying why --------------
        await page.goto(f"{base}/office/residents")
        await page.click('button[data-enrol="r-102"]')
        await page.set_input_files("#upload input[name=photo]",
                                   [str(FACES / "obama.jpg"), str(dark)])
        await page.wait_for_selector("#checks li.bad", timeout=20000)
        await page.wait_for_selector("#checks li.ok", timeout=20000)
        bad = page.locator("#checks li.bad")
        assert await bad.get_attribute("data-reason") == "quality:too_dark"
        assert "太暗" in await bad.inner_text()
        await page.screenshot(path=str(shots / "office-residents-check.png"), full_page=True)
        await page.click("#upload button[type=submit]")
        await page.wait_for_selector("#enrol-result[data-accepted='1']", timeout=20000)
        assert "未通过 1 张" in await page.inner_text("#enrol-result")
        assert db_one(box, "SELECT count(*) FROM face_templates WHERE resident_id = ?",
                      "r-102") == (1,)
        await page.wait_for_selector("#residents [data-templates='1']")

        # --- open a door from the console: the coil flips on the relay board -------------
        await page.goto(f"{base}/office/doors")
        button = page.locator('tr[data-door="d-1"] button')
        await button.click()  # first press asks ...
        assert "确认" in await button.inner_text()
        assert board.first_write(1, COIL, True) is None
        await button.click()  # ... the second opens
        await page.wait_for_function(
            "() => document.getElementById('toast').textContent.includes('门已打开')")
        assert board.first_write(1, COIL, True) is not None
        assert db_one(box, "SELECT actor, target, status FROM office_audit WHERE action ="
                      " 'POST /api/v1/doors/{id}/open' AND via = 'session'"
                      ) == ("ann", "id=d-1", 200)

        # --- every page at the console's size -----------------------------------------------
        ready = {"today": "#alerts .feed, #alerts p", "tickets": "#board .column",
                 "residents": "#residents table", "doors": "#doors table",
                 "passes": "#passes table", "blocks": "#blocks table",
                 "moderation": "#queue .post", "devices": "figure.cam[data-loaded]",
                 "log": "#events table", "audit": "#audit table"}
        for name in PAGES:
            await page.goto(f"{base}/office/{name}")
            await page.wait_for_selector(ready[name], timeout=15000)
            await page.screenshot(path=str(shots / f"office-{name}.png"), full_page=True)
            unlabelled = await page.evaluate(UNLABELLED)
            assert not unlabelled, (name, unlabelled)
        # The keyboard: the first Tab reaches "skip to content", Enter lands in the page.
        await page.keyboard.press("Tab")
        assert await page.evaluate("() => document.activeElement.className") == "skip"
        await page.keyboard.press("Enter")
        assert await page.evaluate("() => document.activeElement.id") == "main"
        await page.goto(f"{base}/office/doors")
        await page.select_option("#rid", "r-101")
        await page.wait_for_selector("#rights:not([hidden]) #door-boxes input")
        await page.screenshot(path=str(shots / "office-doors-rights.png"), full_page=True)
        # The editor shows what the box enforces: unticking every door means no door.
        opens = page.locator("#rights-opens")
        assert "d-2" in await opens.inner_text()
        for box_ in await page.locator("#door-boxes input").all():
            await box_.uncheck()
        assert "不能开任何门" in await opens.inner_text()
        await page.click("#rights button[type=submit]")
        async with session() as s:
            for _ in range(50):  # bounded: the save is one request
                got = await staff(s, "GET", f"{base}/api/v1/residents/r-101/access")
                if not got["doors"]:
                    break
                await asyncio.sleep(0.1)
            assert (got["all_doors"], got["doors"], got["buildings"]) == (False, [], [])
            await page.check("#all-doors")
            assert "所有门" in await page.locator("#door-boxes").inner_text()
            await page.click("#rights button[type=submit]")
            for _ in range(50):  # bounded: the save is one request
                if (await staff(s, "GET", f"{base}/api/v1/residents/r-101/access"))["all_doors"]:
                    break
                await asyncio.sleep(0.1)
            assert (await staff(s, "GET", f"{base}/api/v1/residents/r-101/access"))["all_doors"]
        # a tablet held upright: the columns stack
        await page.set_viewport_size({"width": 820, "height": 1180})
        for name in ("tickets", "residents"):
            await page.goto(f"{base}/office/{name}")
            await page.wait_for_selector(ready[name], timeout=15000)
            await page.screenshot(path=str(shots / f"office-{name}-tablet.png"), full_page=True)
        await page.set_viewport_size({"width": 1366, "height": 768})
        await page.goto(f"{base}/office/today?lang=en")
        await page.wait_for_selector("#kpis .kpi")
        assert "Today" in await page.inner_text("header nav")
        await page.screenshot(path=str(shots / "office-today-en.png"), full_page=True)
        assert not errors, errors


async def test_a_viewer_sees_but_cannot_change(tmp_path, make_config, run_box):
    config = make_config(extra=EXTRA + '\n[[doors]]\nid = "d-2"\ntype = "sim"\nbuilding = "2"\n')
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        ticket = await new_ticket(s, base)
        async with s.post(f"{base}/api/v1/residents", headers=STAFF,
                          json={"id": "r-1", "name": "张三"}) as r:
            assert r.status == 201
    async with browser() as b:
        page = await b.new_page(viewport={"width": 1366, "height": 768})
        await page.goto(f"{base}/office/login")
        await page.fill("input[name=name]", "vic")
        await page.fill("input[name=password]", PASSWORDS["vic"])
        await page.click("main form button[type=submit]")
        await page.wait_for_url("**/office/today")
        await page.goto(f"{base}/office/tickets")
        await page.wait_for_selector(f'article[data-ticket="{ticket["id"]}"]')
        assert await page.locator("article.ticket button[data-action]").count() == 0
        await page.goto(f"{base}/office/residents")
        await page.wait_for_selector("#residents table")
        assert not await page.is_visible("#add")
        # Even a hand-made request from the page is refused by the API.
        status = await page.evaluate("""async () => {
            const r = await fetch('/api/v1/doors/d-2/open', {method: 'POST', headers:
              {'X-CSRF-Token': document.querySelector('meta[name=csrf]').content}});
            return r.status; }""")
        assert status == 403
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-viewer-residents.png"))
    assert db_one(box, "SELECT count(*) FROM access_events") == (0,)


def mjpeg(path: Path, image: np.ndarray, frames: int = 20) -> Path:
    """A Motion-JPEG file (JPEG frames back to back) for Chromium's fake camera."""
    ok, buf = cv2.imencode(".jpg", cv2.resize(image, (640, 480)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    path.write_bytes(buf.tobytes() * frames)
    return path


async def test_enrol_from_the_camera_with_the_gate_live(tmp_path, make_config, run_box):
    """getUserMedia with Chromium's fake camera: a dark picture says so while framing and
    cannot be taken; a good one is taken and becomes the resident's template."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={"id": "r-7", "name": "周师傅"})
    face = cv2.imread(str(FACES / "obama.jpg"))
    # the photo framed like a phone held at arm's length: the face fills the middle
    face = cv2.copyMakeBorder(face, 0, 0, 300, 300, cv2.BORDER_REPLICATE)
    dark = np.clip(face.astype(np.float32) * 0.15, 0, 255).astype(np.uint8)
    for name, image, want in (("dark", dark, "quality:too_dark"), ("good", face, "ok")):
        video = mjpeg(tmp_path / f"{name}.mjpeg", image)
        async with browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                           f"--use-file-for-fake-video-capture={video}") as b:
            page = await office_page(b, base, "/office/residents")
            await page.click('button[data-enrol="r-7"]')
            await page.click("#cam-start")
            await page.wait_for_selector(f'#cam-verdict[data-reason="{want}"]', timeout=20000)
            verdict = await page.inner_text("#cam-verdict")
            await page.screenshot(path=str(shots_dir(tmp_path) / f"office-camera-{name}.png"))
            if name == "dark":
                assert "太暗" in verdict
                assert await page.is_disabled("#cam-take")
                continue
            assert "合格" in verdict
            await page.click("#cam-take")
            await page.wait_for_selector("#enrol-result[data-accepted='1']", timeout=20000)
    assert db_one(box, "SELECT count(*) FROM face_templates WHERE resident_id = 'r-7'") == (1,)


async def test_access_log_shows_match_scores_with_their_scale(tmp_path, make_config, run_box):
    """The access log's face score column is "匹配分" / "Match score" with the scale shown:
    a z-score (score_scale znorm, galleries of 100+ templates) as "z 6.3", a cosine as
    "cos 0.71"; it used to say "相似度" and print 6.30 like a cosine."""
    config = make_config(extra=EXTRA + '\n[[doors]]\nid = "d-2"\ntype = "sim"\nbuilding = "2"\n')
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    svc = box.get(ACCESS)
    await svc.deny("d-2", "face", "unknown_face", similarity=0.71, fused_score=0.69,
                   score_scale="centred")
    await svc.deny("d-2", "face", "unknown_face", similarity=6.31, fused_score=5.9,
                   score_scale="znorm", resident_id="r-9")
    await svc.deny("d-2", "face", "second_factor_phone_limited", similarity=0.5,
                   score_scale="raw", resident_id="r-9")
    async with browser() as b:
        page = await office_page(b, base, "/office/log")
        await page.wait_for_selector("#events table td")
        heads = await page.locator("#events th").all_inner_texts()
        assert "匹配分" in heads and "相似度" not in heads
        cells = page.locator("#events td .score")
        assert sorted(await cells.all_inner_texts()) == ["cos 0.50", "cos 0.71", "z 6.3"]
        reasons = await page.locator("#events td").all_inner_texts()
        assert "手机确认请求太频繁，且未设密码" in reasons  # the second factor's reasons
        z = page.locator('#events .score[data-scale="znorm"]')
        assert "标准差" in (await z.get_attribute("title") or "")
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-log-scores.png"))
        await page.goto(f"{base}/office/log?lang=en")
        await page.wait_for_selector("#events table td")
        assert "Match score" in await page.locator("#events th").all_inner_texts()
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-log-scores-en.png"))


async def test_a_ticket_older_than_the_last_500_stays_on_the_board(tmp_path, make_config, run_box):
    """老李 has been on a lift repair for weeks (waiting for a part) while 500 newer repairs
    came in and were finished. The board and today's count still show his ticket: the board
    used to read the 500 newest tickets of any state, so an old unfinished one fell off."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        old = await new_ticket(s, base, "3号楼电梯等配件更换")
        for action, body in (("assign", {"assignee": "维修工老李"}), ("start", {})):
            await staff(s, "POST", f"{base}/api/v1/tickets/{old['id']}/{action}", json=body)
    tickets = box.get(TICKETS)
    for i in range(500):  # the newer ones, each through its whole life
        rec, extra = tickets.build_for_report(title=f"{i % 20 + 1}号楼楼道灯不亮")
        await box.store.run(tickets_ops.create, box.store.sync, rec, extra, "resident")
        for action in ("assign", "start", "resolve", "confirm"):
            await tickets.transition(rec.id, action, role="staff", actor="ann", assignee="老王")
    async with browser() as b:
        page = await office_page(b, base, "/office/tickets")
        await page.wait_for_selector("#board .column", timeout=15000)
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-tickets-500.png"))
        column = page.locator('[data-column="in_progress"]')
        assert await column.locator(f'article[data-ticket="{old["id"]}"]').count() == 1
        assert await column.locator(".count").inner_text() == "1"
        await page.goto(f"{base}/office/today")
        await page.wait_for_selector("#kpis .kpi", timeout=15000)
        kpi = page.locator(".kpi", has_text="未完成工单")
        assert await kpi.locator(".value").inner_text() == "1"
        assert "3号楼电梯等配件更换" in await page.inner_text("#open-tickets")


async def test_the_board_says_whose_flat_a_repair_is_for(tmp_path, make_config, run_box):
    """王阿姨 (5号楼2单元301), signed in on her phone, sends a one-tap repair "漏水" with
    only her building, as the form allows. The office's card names her and her flat, so the
    worker knows where to go; it used to say only "漏水/水管 5号楼"."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={
            "id": "r-501", "name": "王阿姨", "building": "5", "unit": "2", "room": "301"})
        her = await login(s, base, "r-501", "5", "王阿姨")
        async with s.post(f"{base}/api/v1/tickets", headers=her,
                          json={"fault": "water", "building": "5"}) as r:
            assert r.status == 201, await r.text()
            ticket = await r.json()
    async with browser() as b:
        page = await office_page(b, base, "/office/tickets")
        card = page.locator(f'article[data-ticket="{ticket["id"]}"]')
        await card.wait_for(timeout=15000)
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-ticket-reporter.png"))
        text = await card.inner_text()
        assert "王阿姨" in text and "5-2-301" in text, text



async def test_an_overdue_alert_reads_in_the_offices_words_and_time(tmp_path, make_config,
                                                                     run_box):
    """Today's "工单超时" alert said "(状态 open, 处理人 未分派, 应于
    2026-12-01T03:13:14.871329Z 前完成)": a code for the state and the due time in UTC, eight
    hours off the office's clock in Shandong. It now says 待处理 and the community's time."""
    config = make_config(extra=EXTRA + "[tickets]\ndue_hours_high = 0.0003\n"
                         "overdue_check_s = 0.1\n")
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        ticket = await new_ticket(s, base, "3号楼电梯困人后一直停用")
    for _ in range(100):  # bounded: the overdue loop runs every 0.1 s
        if db_one(box, "SELECT overdue_alert_id FROM tickets WHERE id = ?", ticket["id"])[0]:
            break
        await asyncio.sleep(0.1)
    due = datetime.fromisoformat(ticket["due_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    async with browser() as b:
        page = await office_page(b, base, "/office/today")
        alert = page.locator('#alerts li[data-type="ticket_overdue"]')
        await alert.wait_for(timeout=15000)
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-today-overdue.png"))
        text = await alert.locator("p.msg").inner_text()
    assert "待处理" in text and "open" not in text, text
    assert f"应于 {due.month}月{due.day}日 {due.hour:02d}:{due.minute:02d} 前完成" in text, text


async def test_a_repair_phoned_in_is_logged_from_the_board(tmp_path, make_config, run_box):
    """王阿姨 does not use the phone page: she rings the office, "家里暖气不热". The office
    logs it on the board in her name (her flat filled in), and it is on the board at once;
    the console had no way to log a repair (only the API)."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={
            "id": "r-501", "name": "王阿姨", "building": "5", "unit": "2", "room": "301"})
    async with browser() as b:
        page = await office_page(b, base, "/office/tickets")
        await page.click("#new-ticket-box summary")
        await page.select_option("#new-ticket select[name=fault]", "heating")
        await page.wait_for_selector("#nt-rid option[value='r-501']", state="attached")
        await page.select_option("#new-ticket select[name=resident_id]", "r-501")
        await page.fill("#new-ticket input[name=description]", "电话报修：家里暖气不热，老人怕冷")
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-ticket-new.png"))
        await page.click("#new-ticket button[type=submit]")
        card = page.locator('[data-column="open"] article.ticket')
        await card.wait_for(timeout=10000)
        text = await card.inner_text()
        assert "暖气不热 5号楼 2单元301室" in text and "王阿姨" in text, text
        unlabelled = await page.evaluate(UNLABELLED)
        assert not unlabelled, unlabelled
    assert db_one(box, "SELECT source, resident_id, description FROM tickets") == (
        "staff", "r-501", "电话报修：家里暖气不热，老人怕冷")


async def test_the_office_answers_a_report_and_the_resident_reads_it(tmp_path, make_config,
                                                                     run_box):
    """A resident reports the square-dance music at night from her phone. The office answers
    it from today's reports (已答复 with a reply), and her 我的进度 shows the answer; neither
    console could answer a report before (it stayed 已受理 on her phone)."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with browser() as b:
        phone = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        her = await phone.new_page()
        await her.goto(f"{base}/r/")
        await her.wait_for_selector("body[data-ready='1']", timeout=15000)
        await her.fill("#report-text", "楼下广场舞音乐太吵了，晚上十点还在跳，老人睡不着")
        await her.fill("#report-building", "5")
        await her.click("#report-form button[type=submit]")
        await her.wait_for_selector("#report-result.ok", timeout=15000)
        [rid] = db_one(box, "SELECT id FROM reports")
        page = await office_page(b, base, "/office/today")
        row = page.locator(f'#reports tr[data-report="{rid}"]')
        await row.locator("button[data-reply]").click()
        await row.locator("select[name=status]").select_option("answered")
        await row.locator("input[name=reply]").fill("已与广场舞队沟通，以后晚上九点前结束")
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-report-reply.png"))
        await row.locator("button[type=submit]").click()
        await page.wait_for_selector(f'#reports tr[data-report="{rid}"] >> text=已答复',
                                     timeout=10000)
        await her.goto("about:blank")  # a fresh load of /r/, not a jump within it
        await her.goto(f"{base}/r/#mine")
        card = her.locator(f"[data-report='{rid}']")
        await card.wait_for(timeout=10000)
        text = await card.inner_text()
        assert "已答复" in text and "答复：已与广场舞队沟通，以后晚上九点前结束" in text, text
        await phone.close()


async def test_a_ticket_moved_on_by_someone_else_is_said_in_chinese(tmp_path, make_config,
                                                                    run_box):
    """Two people at the office desk: while ann's 「开始处理」 form is open, a colleague has
    already started and resolved the ticket. Her save used to answer in the box's English
    ("错误: action: cannot start a ticket that is resolved (allowed from: …)") with the stale
    card kept; it now says so in Chinese and shows the ticket where it is."""
    config = make_config(extra=EXTRA)
    add_users(config.source)
    box = await run_box(config)
    base = api_url(box)
    async with session() as s:
        ticket = await new_ticket(s, base)
        await staff(s, "POST", f"{base}/api/v1/tickets/{ticket['id']}/assign",
                    json={"assignee": "维修工老李"})
    async with browser() as b:
        page = await office_page(b, base, "/office/tickets")
        card = f'article[data-ticket="{ticket["id"]}"]'
        await page.click(f'[data-column="assigned"] {card} button[data-action="start"]')
        async with session() as s:  # the colleague, meanwhile
            for action in ("start", "resolve"):
                await staff(s, "POST", f"{base}/api/v1/tickets/{ticket['id']}/{action}", json={})
        await page.click(f"{card} form button[type=submit]")
        await page.wait_for_selector(f'[data-column="resolved"] {card}', timeout=10000)
        toast = await page.inner_text("#toast")
        await page.screenshot(path=str(shots_dir(tmp_path) / "office-ticket-moved-on.png"))
        assert "已被别人更新" in toast and "cannot" not in toast, toast
