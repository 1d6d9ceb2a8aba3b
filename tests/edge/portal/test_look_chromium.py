"""The resident app /r/ on a phone (390x844) in real Chromium, in normal and large text (适老化):
every page is checked for contrast on its rendered colours (WCAG AA), text size, targets,
overflow and the same frame (header red, tab bar); then the flows: report with a place found
in the text, repair, progress following the login to another phone, a door opened only after
a confirmation, a pass created and shared through the share sheet, errors in Chinese and
success/failure told apart by their pixels. Screenshots land in the test's tmp dir."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np

from edge.features import parse_config
from edge.tickets import TICKETS
from tests.conftest import api_url, box_toml
from tests.edge.portal.helpers import FAST, article, staff
from tests.peers.chromium import browser

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 1, "is_mobile": True,
         "has_touch": True}  # fmt: skip
EXTRA = FAST + """
[[doors]]
id = "d-east"
type = "sim"
name = "东门"
building = "5"

[[doors]]
id = "d-west"
type = "sim"
name = "西门"
building = "2"
"""

# WCAG AA contrast of the rendered colours, sizes, targets, overflow (contrast.js).
CONTRAST_JS = (Path(__file__).parent / "contrast.js").read_text(encoding="utf-8")


def near(px: tuple[int, int, int], want: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(px, want, strict=True))


def pixel(png: bytes, x: int, y: int) -> tuple[int, int, int]:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = img[y, x]
    return int(r), int(g), int(b)


def box_colour(png: bytes, rect: dict[str, float]) -> tuple[int, int, int]:
    """The most common colour inside an element's box (its background, not its text)."""
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    x, y, w, h = (int(rect[k]) for k in ("x", "y", "width", "height"))
    crop = img[y + 3 : y + h - 3, x + 3 : x + w - 3].reshape(-1, 3)
    colours, counts = np.unique(crop, axis=0, return_counts=True)
    b, g, r = colours[counts.argmax()]
    return int(r), int(g), int(b)


def config(tmp_path: Path) -> Any:
    """The test box, named as a community is ([box] name: every page's header shows it)."""
    text = box_toml(tmp_path, 1, 0, EXTRA).replace("[box]\n", '[box]\nname = "幸福里小区"\n', 1)
    (tmp_path / "edge.toml").write_text(text)
    return parse_config(text, source=tmp_path / "edge.toml")


def db(box: Any, sql: str) -> Any:
    con = sqlite3.connect(box.config.db_path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def seed(base: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={
            "id": "r-501", "name": "王阿姨", "building": "5", "unit": "2", "room": "301"})
        await staff(s, "PUT", f"{base}/api/v1/residents/r-501/access", json={"doors": ["d-east"]})
        await article(s, base, "a-water", "周六停水通知", ["policy"], must_read=True)
        await article(s, base, "a-dance", "广场舞比赛报名开始", ["culture"])
        await staff(s, "POST", f"{base}/api/v1/portal/events", json={
            "id": "ev-1", "title": "老年人义诊", "place": "社区活动中心",
            "starts_at": "2099-01-01T01:30:00+00:00", "ends_at": "2099-01-01T03:00:00+00:00",
            "capacity": 20})  # fmt: skip
        codes = []
        for _ in range(3):  # one per phone that logs in
            c = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                            json={"resident_id": "r-501", "name": "王阿姨", "building": "5"})
            codes.append(c["code"])
    return {"code1": codes[0], "code2": codes[1], "code3": codes[2]}


async def log_in(page: Any, base: str, code: str) -> None:
    await page.goto(f"{base}/r/login?code={code}", timeout=15000)
    await page.click("main form button")
    await page.wait_for_url("**/r/read", timeout=10000)


async def test_every_resident_page_in_both_text_modes(run_box, tmp_path) -> None:
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    pages = ["/r/", "/r/read", "/r/read/a-water", "/r/events", "/r/board", "/r/me",
             "/r/doors/d-east/open"]  # fmt: skip
    async with browser() as b:
        for big, code in ((False, codes["code1"]), (True, codes["code2"])):
            ctx = await b.new_context(**PHONE)
            await ctx.add_cookies([{"name": "qilu_big", "value": "1" if big else "0",
                                    "url": base}])  # fmt: skip
            page = await ctx.new_page()
            await page.goto(f"{base}/r/login", timeout=15000)
            checked = [("/r/login", await page.evaluate(CONTRAST_JS))]
            await page.screenshot(path=str(tmp_path / f"login-{int(big)}.png"))
            await log_in(page, base, code)
            for path in pages:
                await page.goto(base + path, timeout=15000)
                if path == "/r/":
                    await page.wait_for_selector("body[data-ready='1']", timeout=15000)
                name = path.strip("/").replace("/", "-") or "report"
                png = await page.screenshot(path=str(tmp_path / f"{name}-{int(big)}.png"))
                checked.append((path, await page.evaluate(CONTRAST_JS)))
                # the same frame on every page: the red header, the white tab bar below
                assert near(pixel(png, 3, 3), (163, 21, 21)), path
                assert near(pixel(png, 3, 840), (255, 255, 255)), path
                assert await page.locator(".tabbar a").count() == 5, path
                assert "幸福里小区" in await page.inner_text("header.top"), path
            for path, got in checked:
                assert not got["bad"], (path, big, got["bad"])  # WCAG AA on rendered colours
                assert got["overflow"] <= 0, (path, big, "wider than the phone")
                if big:  # 适老化: >= 20 px body text, big touch targets
                    assert got["body"] >= 20 and got["minText"] >= 16, (path, got)
                    assert min(got["targets"], default=99) >= 52, (path, got["targets"])
                else:
                    assert got["body"] >= 16 and got["minText"] >= 13, (path, got)
                    assert min(got["targets"], default=99) >= 40, (path, got["targets"])
            await ctx.close()


async def test_report_repair_progress_door_and_pass(run_box, tmp_path) -> None:
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    share_stub = """
      Object.defineProperty(navigator, "share", {value: async d => { window.__shared = {
        title: d.title, text: d.text,
        files: (d.files || []).map(f => [f.name, f.type, f.size])}; }});
      Object.defineProperty(navigator, "canShare", {value: () => true});
    """
    async with browser() as b:
        phone = await b.new_context(**PHONE)
        await phone.add_init_script(share_stub)
        page = await phone.new_page()
        # --- not logged in: report with the place taken from the text ---------------------
        await page.goto(f"{base}/r/", timeout=15000)
        await page.wait_for_selector("body[data-ready='1']", timeout=15000)
        await page.click("#report-form button[type=submit]")  # empty: a red Chinese message
        toast = await page.inner_text("#toast")
        assert toast == "请写下您想反映的内容"
        assert "err" in await page.get_attribute("#toast", "class")
        err_png = await page.screenshot(path=str(tmp_path / "report-error.png"))
        err_colour = box_colour(err_png, await page.locator("#toast").bounding_box())
        await page.fill("#report-text", "5号楼2单元楼道灯不亮了，晚上太黑")
        await page.wait_for_selector("#place:not([hidden])", timeout=10000)
        assert await page.inner_text("#place-text") == "5号楼2单元"
        await page.click("#place-use")
        assert await page.input_value("#report-building") == "5"
        assert await page.input_value("#report-location") == "2单元"
        await page.click("#report-form button[type=submit]")
        await page.wait_for_selector("#report-result.ok", timeout=15000)
        result = await page.inner_text("#report-result")
        ref = db(box, "SELECT ref, building, location FROM reports")[0]
        assert ref[1:] == ("5", "2单元") and f"反映 #{ref[0]}" in result, result
        assert ref[0] >= 1001 and "rp-" not in result
        ok_png = await page.screenshot(path=str(tmp_path / "report-ok.png"))
        ok_colour = box_colour(ok_png, await page.locator("#report-result").bounding_box())
        # success is green, failure red: told apart by their pixels
        assert ok_colour[1] > ok_colour[0] + 8 and err_colour[0] > err_colour[1] + 8, (
            ok_colour, err_colour)
        # --- repair -------------------------------------------------------------------------
        await page.click(".seg .tab[data-tab=repair]")
        await page.click("#faults .chip[data-code=light]")
        await page.fill("#repair-building", "5")
        await page.click("#repair-form button[type=submit]")
        await page.wait_for_selector("#repair-result.ok", timeout=15000)
        tref = db(box, "SELECT ref FROM tickets WHERE title LIKE '照明故障%'")[0][0]
        assert f"报修 #{tref}" in await page.inner_text("#repair-result")
        # --- progress on this phone without a login -------------------------------------------
        await page.click(".seg .tab[data-tab=mine]")
        await page.wait_for_selector(f"#mine-list >> text=报修 #{tref}", timeout=10000)
        assert db(box, "SELECT count(*) FROM reports WHERE resident_id IS NULL")[0][0] == 1
        # --- log in: the phone's items become the resident's, another phone sees them -------
        await log_in(page, base, codes["code1"])
        await page.goto(f"{base}/r/#mine", timeout=15000)
        await page.wait_for_selector(f"#mine-list >> text=反映 #{ref[0]}", timeout=10000)
        assert db(box, "SELECT resident_id FROM reports")[0][0] == "r-501"
        assert db(box, "SELECT resident_id FROM tickets")[0][0] == "r-501"
        other = await b.new_context(**PHONE)
        page2 = await other.new_page()
        await log_in(page2, base, codes["code2"])
        await page2.goto(f"{base}/r/#mine", timeout=15000)
        await page2.wait_for_selector(f"#mine-list >> text=报修 #{tref}", timeout=10000)
        await page2.wait_for_selector(f"#mine-list >> text=反映 #{ref[0]}", timeout=10000)
        await page2.screenshot(path=str(tmp_path / "mine-other-phone.png"), full_page=True)
        # --- a door opens only after the confirmation ----------------------------------------
        await page.goto(f"{base}/r/me", timeout=15000)
        assert await page.locator("a[href='/r/doors/d-west/open']").count() == 0  # not hers
        await page.click("a[href='/r/doors/d-east/open']")
        await page.wait_for_selector("#confirm-open", timeout=10000)
        await page.screenshot(path=str(tmp_path / "confirm-open.png"))
        remote = "SELECT count(*) FROM access_events WHERE method = 'remote'"
        assert db(box, remote)[0][0] == 0  # asking opened nothing
        await page.click("#confirm-open")
        await page.wait_for_selector(".msg.ok", timeout=10000)
        assert "门已打开" in await page.inner_text(".msg.ok")
        assert db(box, remote + " AND decision = 'granted' AND door_id = 'd-east'")[0][0] == 1
        # --- a pass: no door ticked is refused in Chinese; then one made and shared ----------
        boxes = page.locator("#new-pass input[type=checkbox]")
        assert await boxes.count() == 1 and not await boxes.first.is_checked()  # her door only
        await page.click("#new-pass button")
        await page.wait_for_selector(".msg.err", timeout=10000)
        assert await page.inner_text(".msg.err") == "请至少选择一扇门"
        await page.fill("#new-pass input[name=visitor]", "小李")
        await boxes.first.check()
        await page.click("#new-pass button")
        await page.wait_for_selector("#pass .pin", timeout=10000)
        pref = db(box, "SELECT ref FROM visitor_passes")[0][0]
        assert f"通行证 #{pref}" in await page.inner_text(".msg.ok")
        pin = (await page.inner_text("#pass .pin b")).strip()
        await page.screenshot(path=str(tmp_path / "pass.png"), full_page=True)
        await page.click("#share")
        await page.wait_for_function("window.__shared", timeout=10000)
        shared = await page.evaluate("window.__shared")
        assert pin in shared["text"] and "东门" in shared["text"]
        [(fname, ftype, fsize)] = shared["files"]
        assert ftype == "image/png" and fsize > 200 and fname.endswith(".png")
        await phone.close()
        await other.close()


async def test_large_text_is_remembered_with_the_login(run_box, tmp_path) -> None:
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await log_in(page, base, codes["code1"])
        small = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        await page.click(".bigtoggle")
        await page.wait_for_selector("html.big", timeout=10000)
        assert await page.get_attribute(".bigtoggle", "aria-pressed") == "true"
        big = await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert small < 20 <= big
        await page.goto(f"{base}/r/", timeout=15000)  # the report page too
        assert await page.locator("html.big").count() == 1
        assert db(box, "SELECT big_text FROM portal_residents WHERE id = 'r-501'")[0][0] == 1
        # another phone: large text once she logs in, before she touches anything
        other = await b.new_context(**PHONE)
        page2 = await other.new_page()
        await page2.goto(f"{base}/r/login", timeout=15000)
        assert await page2.locator("html.big").count() == 0
        await log_in(page2, base, codes["code2"])
        assert await page2.locator("html.big").count() == 1
        await page2.screenshot(path=str(tmp_path / "read-big-other-phone.png"))
        await ctx.close()
        await other.close()
    assert (tmp_path / "read-big-other-phone.png").stat().st_size > 1000


async def repair(page: Any, base: str, fault: str, building: str, location: str) -> str:
    """One-tap repair on the /r/ page; the "报修 #…" the page answered."""
    await page.goto("about:blank")  # a new page load, not a jump within /r/
    await page.goto(f"{base}/r/#repair", timeout=15000)
    await page.wait_for_selector("body[data-ready='1']", timeout=15000)
    await page.click(f"#faults .chip[data-code={fault}]")
    await page.fill("#repair-building", building)
    await page.fill("#repair-location", location)
    await page.click("#repair-form button[type=submit]")
    await page.wait_for_selector("#repair-result.ok", timeout=15000)
    text = await page.inner_text("#repair-result")
    return text.split("，")[1].split("（")[0]  # 报修成功，报修 #1001（…


async def test_signing_out_takes_her_repairs_off_a_borrowed_phone(run_box, tmp_path) -> None:
    """王阿姨 files a repair on her own phone, then signs in on her neighbour's phone to see
    its progress and signs out. The neighbour's phone keeps what it filed itself, but no
    longer lists her repair (her flat, the workers' notes, the confirm/reopen buttons)."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    async with browser() as b:
        own = await b.new_context(**PHONE)
        page = await own.new_page()
        await log_in(page, base, codes["code1"])
        hers = await repair(page, base, "water", "5", "2单元301室厨房")
        neighbours = await b.new_context(**PHONE)
        page2 = await neighbours.new_page()
        mine = await repair(page2, base, "light", "5", "1单元楼道")  # filed without a login
        await log_in(page2, base, codes["code2"])
        await page2.goto(f"{base}/r/#mine", timeout=15000)
        await page2.wait_for_selector(f"#mine-list >> text={hers}", timeout=10000)
        await page2.goto(f"{base}/r/me", timeout=15000)
        await page2.click("text=退出登录")
        await page2.wait_for_url("**/r/login", timeout=10000)
        await page2.goto(f"{base}/r/#mine", timeout=15000)
        await page2.wait_for_selector(f"#mine-list >> text={mine}", timeout=10000)
        await page2.wait_for_load_state("networkidle")
        await page2.screenshot(path=str(tmp_path / "mine-after-sign-out.png"), full_page=True)
        listed = await page2.inner_text("#mine-list")
        assert hers not in listed and "2单元301室" not in listed, listed
        await own.close()
        await neighbours.close()


def phone_photo(path: Path) -> Path:
    """A 12-megapixel camera JPEG of about 7 MB, as phones take them (the box takes photos
    of at most 5 MB, and 10 MB a request)."""
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8), (3, 3), 0)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok and len(buf) > 6_000_000
    path.write_bytes(buf.tobytes())
    return path


async def test_a_repair_with_a_photo_straight_from_the_phones_camera(run_box, tmp_path) -> None:
    """王阿姨 photographs the leak with her phone and sends the repair: it goes through with
    the photo (scaled down on the phone), instead of "照片太大…请换小一点的照片", which she
    cannot do."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    photo = phone_photo(tmp_path / "IMG_20261201_101500.jpg")
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await page.goto(f"{base}/r/#repair", timeout=15000)
        await page.wait_for_selector("body[data-ready='1']", timeout=15000)
        await page.click("#faults .chip[data-code=water]")
        await page.fill("#repair-building", "5")
        await page.fill("#repair-location", "2单元301室厨房")
        await page.set_input_files("#repair-form input[type=file]", str(photo))
        await page.click("#repair-form button[type=submit]")
        await page.wait_for_selector("#repair-result.ok, #toast.err", timeout=30000)
        await page.screenshot(path=str(tmp_path / "repair-camera-photo.png"))
        assert await page.locator("#repair-result.ok").count() == 1, await page.inner_text(
            "#toast")
        [(path, size)] = db(box, "SELECT path, bytes FROM photos WHERE owner_kind = 'ticket'")
        stored = cv2.imread(str(box.config.box.data_dir / path))
        assert size < 5 * 1048576 and max(stored.shape[:2]) >= 1200  # still shows the leak
        await ctx.close()


async def test_a_double_tap_on_confirm_is_not_told_as_a_failure(run_box, tmp_path) -> None:
    """The worker fixed the leak; 王阿姨 taps 「确认已修好」 twice, as elderly fingers do. The
    repair is confirmed and she is told so in green; then, on a page left open after the
    office had already confirmed it for her, 「没修好，重新打开」 says the repair has moved on
    and shows where it is now. Both used to end in a red "提交没有成功，请检查后再试" with the
    buttons still there (the second tap, and the stale page, were refused as illegal steps)."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        ref = await repair(page, base, "water", "5", "2单元301室厨房")
        ref2 = await repair(page, base, "light", "5", "2单元楼道")
        svc = box.get(TICKETS)
        tid, tid2 = (r[0] for r in db(box, "SELECT id FROM tickets ORDER BY ref"))
        for t in (tid, tid2):
            await svc.transition(t, "assign", role="staff", actor="ann", assignee="维修工老李")
            await svc.transition(t, "start", role="staff", actor="ann")
            await svc.transition(t, "resolve", role="staff", actor="ann", note="已修好")
        await page.goto("about:blank")
        await page.goto(f"{base}/r/#mine", timeout=15000)
        card = page.locator(f"[data-ticket='{tid}']")
        await card.locator("button[data-action=confirm]").wait_for(timeout=10000)
        await page.locator(f"[data-ticket='{tid2}'] button[data-action=reopen]").wait_for()
        await card.locator("button[data-action=confirm]").dblclick()
        done = f"[data-ticket='{tid}'] .status >> text=已确认完成"
        await page.wait_for_selector(done, timeout=10000)
        await page.locator(f"[data-ticket='{tid2}'] button[data-action=reopen]").wait_for()
        await page.wait_for_timeout(1000)  # both taps answered
        await page.screenshot(path=str(tmp_path / "confirm-double-tap.png"))
        assert "ok" in (await page.get_attribute("#toast", "class") or ""), (
            ref, await page.inner_text("#toast"))
        assert db(box, f"SELECT status FROM tickets WHERE id = '{tid}'") == [("confirmed",)]
        # the office confirms the other one for her while her page still shows the buttons
        await svc.transition(tid2, "confirm", role="staff", actor="ann", note="电话回访已修好")
        card2 = page.locator(f"[data-ticket='{tid2}']")
        await card2.locator("button[data-action=reopen]").click()
        await page.wait_for_function(
            "() => !document.querySelector('#toast').textContent.startsWith('已提交')",
            timeout=10000)  # the answer to this tap, not the last one's thanks
        toast = await page.inner_text("#toast")
        assert "状态已经变了" in toast, (ref2, toast)
        await page.wait_for_selector(f"[data-ticket='{tid2}'] .status >> text=已确认完成",
                                     timeout=10000)
        await page.wait_for_selector(f"[data-ticket='{tid}']", timeout=10000)
        await page.screenshot(path=str(tmp_path / "reopen-stale.png"))
        assert await page.locator("#mine-list button[data-action]").count() == 0
        await ctx.close()


async def test_a_second_repair_asks_for_its_fault_again(run_box, tmp_path) -> None:
    """After one repair the fault buttons all show unselected; sending the next without
    choosing one asks "请选择故障类型" instead of filing it silently as the last fault."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await repair(page, base, "water", "5", "2单元301室厨房")
        assert await page.locator("#faults .chip.on").count() == 0  # nothing shows chosen
        await page.fill("#repair-building", "5")
        await page.fill("#repair-location", "2单元楼道")
        await page.click("#repair-form button[type=submit]")
        await page.wait_for_selector("#toast.err", timeout=10000)
        assert await page.inner_text("#toast") == "请选择故障类型"
        assert await page.input_value("#repair-location") == "2单元楼道"  # kept
        assert db(box, "SELECT count(*) FROM tickets") == [(1,)]
        await ctx.close()


async def test_the_chosen_fault_is_told_to_a_screen_reader(run_box, tmp_path) -> None:
    """The fault buttons are a choice: the one chosen says so (aria-pressed), not only by its
    colour, so a resident using TalkBack/VoiceOver hears which fault she picked."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await page.goto(f"{base}/r/#repair", timeout=15000)
        await page.wait_for_selector("body[data-ready='1']", timeout=15000)
        await page.click("#faults .chip[data-code=lift]")
        await page.click("#faults .chip[data-code=water]")
        pressed = await page.eval_on_selector_all(
            "#faults .chip",
            "els => els.map(e => [e.dataset.code, e.getAttribute('aria-pressed')])")
        assert dict(pressed) == {code: ("true" if code == "water" else "false")
                                 for code, _ in pressed}, pressed
        await ctx.close()
