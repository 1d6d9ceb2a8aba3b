"""The resident H5 page (/r/) in headless Chromium against a real box."""

from __future__ import annotations

import sqlite3

from tests.conftest import api_url, db_count
from tests.peers.chromium import browser


async def test_report_repair_and_follow_on_a_phone(make_config, run_box, tmp_path) -> None:
    box = await run_box(make_config())
    url = api_url(box)
    bad = tmp_path / "note.jpg"
    bad.write_bytes(b"this is not an image")
    async with browser() as b:
        page = await b.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        await page.goto(f"{url}/r/")
        await page.wait_for_selector("body[data-ready='1']", timeout=10000)
        assert await page.locator("#report-category option").count() == 11  # auto + 10

        # A report: the suggestion appears while typing and preselects the category.
        await page.fill("#report-text", "5号楼电梯又坏了，这个月第三次了，物业到底管不管")
        await page.wait_for_function(
            "() => document.querySelector('#suggest').textContent.includes('设施报修')",
            timeout=10000,
        )
        assert await page.input_value("#report-category") == "facilities_repair"
        await page.fill("#report-building", "5")
        # A file that is not an image: refused with the field named, nothing stored.
        await page.set_input_files("#report-form input[type=file]", str(bad))
        await page.click("#report-form button[type=submit]")
        await page.wait_for_selector("#toast:not([hidden])", timeout=10000)
        assert "照片" in await page.text_content("#toast")
        assert db_count(box, "SELECT count(*) FROM reports") == 0
        await page.set_input_files("#report-form input[type=file]", [])
        await page.fill("#report-text", "5号楼电梯又坏了，这个月第三次了，物业到底管不管")
        await page.click("#report-form button[type=submit]")
        await page.wait_for_selector("#report-result:not([hidden])", timeout=10000)
        assert "设施报修" in await page.text_content("#report-result")
        assert db_count(box, "SELECT count(*) FROM reports WHERE building = '5'") == 1

        # One-tap repair.
        await page.click("nav .tab[data-tab=repair]")
        await page.click("#faults .chip[data-code=light]")
        await page.fill("#repair-building", "3")
        await page.click("#repair-form button[type=submit]")
        await page.wait_for_selector("#repair-result:not([hidden])", timeout=10000)
        assert db_count(box, "SELECT count(*) FROM tickets WHERE title LIKE '照明故障%'") == 1

        # Staff resolve the repair; the resident sees it and confirms from the page.
        tid = sqlite3.connect(box.config.db_path).execute(
            "SELECT id FROM tickets WHERE title LIKE '照明故障%'").fetchone()[0]
        svc = box.service("tickets")
        await svc.transition(tid, "assign", role="staff", actor="t", assignee="wang")
        await svc.transition(tid, "start", role="staff", actor="t")
        await svc.transition(tid, "resolve", role="staff", actor="t", note="换了灯泡")
        await page.click("nav .tab[data-tab=mine]")
        button = page.locator(f"[data-ticket='{tid}'] button[data-action=confirm]")
        await button.wait_for(timeout=10000)
        assert "换了灯泡" in await page.text_content(f"[data-ticket='{tid}']")
        await button.click()
        await page.wait_for_function(
            f"() => document.querySelector(\"[data-ticket='{tid}'] .status\")"
            "?.textContent === '已确认完成'", timeout=10000)
    assert db_count(box, f"SELECT status FROM tickets WHERE id = '{tid}'") == "confirmed"
