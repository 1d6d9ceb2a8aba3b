"""The city operations console in headless Chromium, on both backends, with a real box daemon
provisioned into the cloud and a second box sending records over the real sync protocol.

Screenshots at 1366x768 land in the test's tmp dir (console-*.png).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloudsync.console.auth import ConsoleSettings
from edge.core.standard import Alert, Report, new_id
from edge.daemon import Daemon
from edge.tickets import TICKETS
from tests.cloudsync.console_helpers import PASSWORD, user_with_password
from tests.cloudsync.helpers import FAST_SYNC, cli_provision, start_cloud, wait_for
from tests.cloudsync.test_ops_api import rec, upload
from tests.conftest import api_url
from tests.edge.screens.helpers import screen_key
from tests.edge.screens.test_player_chromium import EMERGENCY_RED, GREEN, SCREEN, VIEW
from tests.edge.screens.test_service import png
from tests.peers.chromium import browser, near, rgb

CONSOLE = {"width": 1366, "height": 768}


async def sign_in_page(b, url: str, name: str) -> object:
    ctx = await b.new_context(viewport=CONSOLE, locale="zh-CN")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(f"{url}/console/")
    await page.wait_for_selector("input[name=name]")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/overview", timeout=10000)
    return page


async def test_console_live_health_alerts_and_scope(
    db_url: str, make_config, tmp_path: Path
) -> None:
    settings = ConsoleSettings(offline_after_s=3.0, alert_poll_s=0.2)
    cloud = await start_cloud(db_url, tmp_path, console=settings)
    daemon = None
    try:
        # Two districts; communities with coordinates for the map.
        for aid, level, parent, pos in (
            ("jinan", "city", None, None),
            ("lixia", "district", "jinan", None),
            ("s1", "street", "lixia", None),
            ("c1", "community", "s1", (36.66, 117.05)),
            ("c3", "community", "s1", (36.68, 117.09)),
            ("shizhong", "district", "jinan", None),
            ("s2", "street", "shizhong", None),
            ("c2", "community", "s2", (36.63, 116.99)),
        ):
            body = {"id": aid, "level": level, "name": aid.upper(), "parent_id": parent}
            if pos:
                body |= {"lat": pos[0], "lon": pos[1]}
            status, out = await cloud.call("POST", "/api/v1/ops/areas", json=body)
            assert status == 201, out
        # A real box daemon in c1 (provisioned with the CLI, heartbeat every 0.5 s).
        config = make_config(extra=FAST_SYNC)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        daemon = Daemon(config)
        box = await daemon.start()
        # Another district's box sends an alert over the real protocol.
        other = await cloud.new_box("c2", district="shizhong", street="s2")
        await upload(other, [rec(1, "alert", 1, "2026-01-01T11:00:00", level="critical",
                                 type="urgent_report", message="市中区的紧急预警")])  # fmt: skip
        await user_with_password(cloud, "root")
        await user_with_password(cloud, "lixia-admin", "admin", "lixia")
        box_id = (await cloud.storage.boxes_list("/jinan/lixia/", "", 10))[0]["id"]

        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "root")
            await page.wait_for_selector("tr[data-area=c1][data-health=online]", timeout=10000)
            await page.wait_for_selector("svg.map .dot.online")
            await page.screenshot(path=str(tmp_path / "console-overview.png"))

            # The alerts page, live: the box's critical alert arrives and rings.
            await page.click("nav a[href='/console/alerts']")
            await page.wait_for_selector("#live.on", timeout=10000)
            await page.click("#sound")
            assert await page.locator("#alerts li").count() == 1  # c2's, from before
            t0 = time.monotonic()
            await box.store.record(
                Alert(
                    id=new_id("al"),
                    level="critical",
                    type="urgent_report",
                    message="3号楼燃气泄漏，请立即处理",
                    evidence=["rp-1"],
                )
            )
            item = page.locator("#alerts li.critical.fresh").first
            await item.wait_for(timeout=10000)
            took = time.monotonic() - t0
            assert "燃气泄漏" in await item.text_content()
            key_box, key_seq = (await item.get_attribute("data-key")).split("/")
            assert key_box == box_id
            assert int(await page.get_attribute("body", "data-rang") or 0) >= 1  # WebAudio beep
            assert took < 5, took
            # Newest first; a filter hides what does not match.
            assert "燃气泄漏" in await page.locator("#alerts li").first.text_content()
            await page.fill("#filters input[name=type]", "no-such-type")
            assert await page.locator("#alerts li:visible").count() == 0
            await page.fill("#filters input[name=type]", "")
            # Assign with a note: stored, audited, shown.
            await item.locator("button", has_text="指派").click()
            await item.locator("input[name=assignee]").fill("王师傅")
            await item.locator("input[name=note]").fill("已电话联系")
            await item.locator("button[type=submit]").click()
            await page.wait_for_selector("#alerts li.assigned", timeout=10000)
            acked = await cloud.storage.alert_acks([(box_id, int(key_seq))])
            assert [(r["state"], r["assignee"], r["by_user"]) for r in acked.values()] == [
                ("assigned", "王师傅", "root")
            ]
            await page.screenshot(path=str(tmp_path / "console-alerts.png"))

            # The box stops: the overview shows it offline within its heartbeat window.
            await daemon.stop()
            daemon = None
            stopped = time.monotonic()
            await page.click("nav a[href='/console/overview']")

            async def offline() -> bool:
                await page.reload()
                await page.wait_for_selector("tr[data-area=c1]")
                return await page.locator("tr[data-area=c1][data-health=offline]").count() == 1

            await wait_for(offline, 10, interval=0.5)
            assert time.monotonic() - stopped < settings.offline_after_s + 4
            await page.screenshot(path=str(tmp_path / "console-offline.png"))

            # The audit page shows the assignment.
            await page.click("nav a[href='/console/audit']")
            await page.wait_for_selector("#audit table")
            assert "/ack" in await page.text_content("#audit")
            await page.screenshot(path=str(tmp_path / "console-audit.png"))
            # English is a click away.
            await page.click("a.lang")
            await page.wait_for_selector("#audit table")
            assert "Audit log" in await page.text_content("nav")
            await page.click("nav a[href='/console/overview']")  # the language sticks
            await page.wait_for_selector("tr[data-area=c1]")
            assert "Area tree" in await page.text_content("main")
            await page.screenshot(path=str(tmp_path / "console-overview-en.png"))
            assert page.errors == []  # no CSP violation, no script error

            # A district admin sees and acts only in their district: pages and calls.
            lp = await sign_in_page(b, cloud.url, "lixia-admin")
            await lp.wait_for_selector("tr[data-area=c1]")
            assert await lp.locator("tr[data-area=c2]").count() == 0
            assert "SHIZHONG" not in await lp.text_content("#tree")
            await lp.screenshot(path=str(tmp_path / "console-district.png"))
            # A tablet in portrait: the columns stack, nothing runs off the side.
            await lp.set_viewport_size({"width": 820, "height": 1180})
            for path in ("overview", "alerts", "reports", "tickets", "content", "fleet"):
                await lp.goto(f"{cloud.url}/console/{path}")
                await lp.wait_for_load_state("networkidle")
                assert await lp.evaluate(
                    "document.documentElement.scrollWidth <= window.innerWidth"
                ), path
            await lp.goto(f"{cloud.url}/console/overview")
            await lp.wait_for_selector("tr[data-area=c1]")
            await lp.screenshot(path=str(tmp_path / "console-tablet.png"))
            await lp.set_viewport_size(CONSOLE)
            await lp.goto(f"{cloud.url}/console/alerts")
            await lp.wait_for_selector("#alerts li")
            assert "市中区" not in await lp.text_content("#alerts")
            calls = await lp.evaluate(
                """async (other) => {
                const csrf = document.querySelector('meta[name=csrf]').content;
                const post = (path, body, token) => fetch(path, {method: 'POST',
                    headers: Object.assign({'Content-Type': 'application/json'},
                                           token ? {'X-CSRF-Token': token} : {}),
                    body: JSON.stringify(body)}).then(r => r.status);
                return {
                  box: (await fetch('/api/v1/ops/boxes/' + other)).status,
                  ack: await post('/api/v1/ops/alerts/' + other + '/1/ack', {}, csrf),
                  revoke: await post('/api/v1/ops/boxes/' + other + '/revoke', {}, csrf),
                  claim: await post('/api/v1/ops/communities/c2/claim-codes', {}, csrf),
                  nocsrf: await post('/api/v1/ops/communities/c1/claim-codes', {}, null),
                };
            }""",
                other.box_id,
            )
            assert calls == {"box": 404, "ack": 404, "revoke": 404, "claim": 404, "nocsrf": 403}
            assert (await cloud.storage.box_get(other.box_id))["revoked_at"] is None
    finally:
        if daemon is not None:
            await daemon.stop()
        await cloud.stop()


async def test_console_reports_charts_search_and_correction(
    db_url: str, make_config, tmp_path: Path
) -> None:
    cloud = await start_cloud(db_url, tmp_path, console=ConsoleSettings(alert_poll_s=0.2))
    daemon = None
    try:
        await cloud.community(district="lixia", street="s1", community="c1")
        config = make_config(extra=FAST_SYNC)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        daemon = Daemon(config)
        box = await daemon.start()
        now = datetime.now(UTC)
        texts = [
            ("5号楼电梯又坏了", "facilities_repair", -0.6, "high", 0),
            ("楼道灯不亮", "facilities_repair", -0.3, "normal", 0),
            ("垃圾没人清理，很臭", "environment_sanitation", -0.7, "normal", 7),
            ("谢谢物业帮忙修好了水管", "praise", 0.8, "low", 7),
            ("晚上广场舞太吵", "noise_neighbours", -0.4, "normal", 21),
        ]
        for i, (text, cat, mood, urg, days_ago) in enumerate(texts):
            await box.store.record(
                Report(
                    id=f"rp-{i}",
                    text=text,
                    category=cat,
                    sentiment=mood,
                    urgency=urg,
                    ts=now - timedelta(days=days_ago),
                )
            )
        box_id = (await cloud.storage.boxes_list("/", "", 10))[0]["id"]

        async def arrived() -> bool:
            rows = await cloud.storage.box_records(box_id)
            return sum(r["kind"] == "report" for r in rows) == len(texts)

        await wait_for(arrived, 15)
        await user_with_password(cloud, "root")
        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "root")
            await page.goto(f"{cloud.url}/console/reports")
            await page.wait_for_selector("table.reports tbody tr")
            assert await page.locator("table.reports tbody tr").count() == len(texts)
            await page.wait_for_selector("svg.chart circle")
            # Three weeks with reports -> three dots on the mood line; bars per category.
            assert await page.locator("svg.chart circle").count() == 3
            assert await page.locator("ul.bars li").count() == 4
            first_bar = await page.text_content("ul.bars li")
            assert "设施报修" in first_bar and first_bar.strip().endswith("2")
            assert await page.locator("table.heat tbody tr").count() == 1
            await page.screenshot(path=str(tmp_path / "console-reports.png"), full_page=True)

            # Search by text.
            await page.fill("#filters input[name=q]", "电梯")
            await page.click("#filters button[type=submit]")
            rows = page.locator("table.reports tbody tr")  # (no wait_for_function: the CSP)

            async def one_row() -> bool:
                return await rows.count() == 1

            await wait_for(one_row, 10)
            # Correct its category: queued down the feed to the box that owns the report.
            row = page.locator("tr[data-report='rp-0']")
            await row.locator("button", has_text="更正").click()
            await row.locator("select[name=category]").select_option("safety_hazard")
            await row.locator("button[type=submit]").click()
            await page.wait_for_selector("tr[data-report='rp-0'] .badge.assigned")
            assert "安全隐患" in await page.text_content("tr[data-report='rp-0']")
            await page.screenshot(path=str(tmp_path / "console-report-corrected.png"))
            assert page.errors == []

        async with cloud.storage.tx() as c:
            feed = await c.fetch(
                "SELECT id, action, args FROM feed WHERE box_id = $1 AND action = $2",
                box_id,
                "report_correction",
            )
        assert len(feed) == 1
        args = json.loads(feed[0]["args"]) if isinstance(feed[0]["args"], str) else feed[0]["args"]
        assert args == {"report_id": "rp-0", "category": "safety_hazard", "note": "",
                        "actor": "root"}  # fmt: skip

        async def delivered() -> bool:  # the box took the item from its feed (cursor moved)
            return (await cloud.storage.box_get(box_id))["feed_cursor"] >= feed[0]["id"]

        await wait_for(delivered, 15)
    finally:
        if daemon is not None:
            await daemon.stop()
        await cloud.stop()


async def test_console_ticket_board_round_trip(db_url: str, make_config, tmp_path: Path) -> None:
    cloud = await start_cloud(db_url, tmp_path)
    daemon = None
    try:
        await cloud.community(district="lixia", street="s1", community="c1")
        config = make_config(extra=FAST_SYNC)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        daemon = Daemon(config)
        box = await daemon.start()
        ticket = await box.get(TICKETS).open_device_ticket("door", "door-1", "relay not answering")
        assert ticket is not None
        # Another box's tickets over the protocol: the overdue one must come first.
        other = await cloud.new_box("c2", district="lixia", street="s1")
        past = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
        await upload(
            other,
            [
                rec(1, "repair_ticket", 2, "2026-01-01T10:00:00", title="新报修：楼道灯",
                    status="open", urgency="normal"),
                rec(2, "repair_ticket", 2, "2026-01-01T09:00:00", title="超时：水管漏水",
                    status="open", urgency="normal", due_at=past),
            ],
        )  # fmt: skip
        await user_with_password(cloud, "root")

        async def synced() -> bool:
            return await cloud.storage.record_box("repair_ticket", ticket.id, "/") is not None

        await wait_for(synced, 15)
        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "root")
            await page.goto(f"{cloud.url}/console/tickets")
            col = page.locator("[data-column=open]")
            await col.locator("article").nth(2).wait_for(timeout=10000)
            assert "超时" in await col.locator("article").first.text_content()
            assert await col.locator("article.overdue").count() == 1
            card = page.locator(f"article[data-ticket='{ticket.id}']")
            await card.locator("button[data-action=assign]").click()
            await card.locator("input[name=assignee]").fill("李师傅")
            await card.locator("input[name=note]").fill("今天下午处理")
            await card.locator("button[type=submit]").click()
            # Down the feed to the box, the box's ticket machine assigns, the record comes back.
            assigned = page.locator(f"[data-column=assigned] article[data-ticket='{ticket.id}']")
            await assigned.wait_for(timeout=20000)
            assert "李师傅" in await assigned.text_content()
            await assigned.locator("button", has_text="历史").click()
            await assigned.locator("ol.history li").nth(1).wait_for()
            await page.screenshot(path=str(tmp_path / "console-tickets.png"))
            assert page.errors == []
        db = sqlite3.connect(box.config.db_path)
        try:
            row = db.execute("SELECT status, assignee FROM tickets WHERE id = ?", (ticket.id,))
            assert row.fetchone() == ("assigned", "李师傅")
        finally:
            db.close()
    finally:
        if daemon is not None:
            await daemon.stop()
        await cloud.stop()


async def test_console_publishes_to_a_box_screen_and_broadcasts(
    db_url: str, make_config, tmp_path: Path
) -> None:
    cloud = await start_cloud(db_url, tmp_path)
    daemon = None
    try:
        await cloud.community(district="lixia", street="s1", community="c1")
        config = make_config(extra=FAST_SYNC + SCREEN)
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        daemon = Daemon(config)
        box = await daemon.start()
        await user_with_password(cloud, "root")
        image = tmp_path / "green.png"
        image.write_bytes(png((0, 200, 0)))
        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "root")
            await page.goto(f"{cloud.url}/console/content")
            await page.set_input_files("#publish input[name=file]", str(image))
            await page.fill("#publish input[name=title]", "垃圾分类宣传")
            await page.fill("#publish input[name=areas]", "c1")
            await page.fill("#publish input[name=tags]", "outdoor")
            await page.click("#publish button[type=submit]")
            await page.wait_for_selector("#publish-result[data-schedule]", timeout=10000)
            assert "1 个设备盒" in await page.text_content("#publish-result")
            await page.screenshot(path=str(tmp_path / "console-content.png"))

            # The box's own player page shows the published image (pixels).
            player = await b.new_page(viewport=VIEW)
            await player.goto((await screen_key(api_url(box), "scr-1"))["player_url"])

            async def published_item() -> str | None:  # "default" until the item arrives
                cid = await player.evaluate("document.body.dataset.showing || ''")
                return cid if cid.startswith("c-") else None

            sha_id = await wait_for(published_item, 20)
            assert near(rgb(await player.screenshot(), 320, 180), GREEN)

            # The console's preview (the box's resolver on what was published) agrees.
            box_id = (await cloud.storage.boxes_list("/", "", 10))[0]["id"]
            await page.fill("#preview input[name=box]", box_id)
            await page.fill("#preview input[name=tags]", "outdoor")
            await page.click("#preview button[type=submit]")
            await page.wait_for_selector("#preview-out p.playing")
            assert await page.get_attribute("#preview-out p.playing", "data-content") == sha_id
            await page.fill("#preview input[name=tags]", "indoor")  # not the schedule's tag
            await page.click("#preview button[type=submit]")
            await page.wait_for_selector("#preview-out p.playing[data-content=default]")
            await page.screenshot(path=str(tmp_path / "console-preview.png"), full_page=True)

            # Emergency: nothing is sent before the explicit confirmation.
            await page.fill("#emergency textarea[name=message]", "今晚22点起停水")
            await page.fill("#emergency input[name=title]", "紧急停水通知")
            await page.fill("#emergency input[name=areas]", "c1")
            await page.click("#emergency button[type=submit]")
            await page.wait_for_selector("#em-confirm:not([hidden])")
            assert "今晚22点起停水" in await page.text_content("#em-summary")
            await page.screenshot(path=str(tmp_path / "console-emergency-confirm.png"))
            async with cloud.storage.tx() as c:
                sent = await c.fetch("SELECT id FROM feed WHERE action = 'emergency'")
            assert sent == []
            await page.click("#em-go")
            await page.wait_for_selector("#em-result[data-emergency]")
            em = await page.get_attribute("#em-result", "data-emergency")

            async def shows_emergency() -> bool:
                return await player.evaluate("document.body.dataset.showing || null") == em

            await wait_for(shows_emergency, 15)
            assert "紧急停水通知" in await player.inner_text("body")
            assert near(rgb(await player.screenshot(), 320, 180), EMERGENCY_RED)
            await page.click("#em-result button")

            async def back_to_schedule() -> bool:
                return await player.evaluate("document.body.dataset.showing || null") == sha_id

            await wait_for(back_to_schedule, 15)
            assert page.errors == []
    finally:
        if daemon is not None:
            await daemon.stop()
        await cloud.stop()


async def test_console_fleet_claim_command_revoke_in_scope(db_url: str, tmp_path: Path) -> None:
    cloud = await start_cloud(db_url, tmp_path)
    try:
        mine = await cloud.new_box("c1", district="lixia", street="s1")
        theirs = await cloud.new_box("c2", district="shizhong", street="s2")
        await user_with_password(cloud, "lixia-admin", "admin", "lixia")
        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "lixia-admin")
            await page.click("nav a[href='/console/fleet']")
            await page.wait_for_selector(f"tr[data-box='{mine.box_id}']")
            assert await page.locator("#fleet tbody tr").count() == 1  # not the other district's
            # A claim code for their own community; none for another district's.
            await page.fill("#claim input[name=community]", "c1")
            await page.click("#claim button[type=submit]")
            await page.wait_for_selector("#claim-result[data-code]")
            code = await page.get_attribute("#claim-result", "data-code")
            assert re.fullmatch(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}", code)
            await page.fill("#claim input[name=community]", "c2")
            await page.click("#claim button[type=submit]")
            await page.wait_for_selector("#toast.bad")
            assert "c2" in await page.text_content("#toast")
            page.errors.clear()  # the browser logs the refused call's 404: expected here
            # A command, then revoke (only after the confirmation).
            row = page.locator(f"tr[data-box='{mine.box_id}']")
            await row.locator("button", has_text="发送").click()
            await page.wait_for_selector("#toast.show:not(.bad)")
            await row.locator("button[data-action=revoke]").click()
            assert (await cloud.storage.box_get(mine.box_id))["revoked_at"] is None
            await page.screenshot(path=str(tmp_path / "console-fleet.png"))
            await row.locator(".confirm button.danger").click()
            await page.wait_for_selector(f"tr[data-box='{mine.box_id}'] .badge.revoked")
            assert page.errors == []
        assert (await cloud.storage.box_get(mine.box_id))["revoked_at"] is not None
        assert (await cloud.storage.box_get(theirs.box_id))["revoked_at"] is None
        async with cloud.storage.tx() as c:
            feed = await c.fetch("SELECT box_id, action, created_by FROM feed")
        assert feed == [{"box_id": mine.box_id, "action": "ping", "created_by": "lixia-admin"}]
    finally:
        await cloud.stop()
