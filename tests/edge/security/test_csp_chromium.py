"""The box's pages still work in real Chromium under the Content-Security-Policy: no script
or style is blocked (Chromium reports each violation on the console and as a DOM event)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.conftest import STAFF_TOKEN, api_url
from tests.edge.portal.helpers import FAST, article, staff
from tests.peers.chromium import browser


async def test_installer_and_resident_pages_run_under_the_csp(
    make_config, run_box, tmp_path: Path
) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await article(s, base, "a-1", "停水通知", ["policy"], must_read=True)
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": "r-1", "building": "1", "name": "王阿姨"})
    blocked: list[str] = []
    async with browser() as b:
        ctx = await b.new_context(viewport={"width": 1366, "height": 768})
        page = await ctx.new_page()
        page.on("console", lambda m: blocked.append(m.text)
                if "Content Security Policy" in m.text else None)
        # Installer (console size): the token from the query, then "validate" runs app.js.
        page.on("pageerror", lambda e: blocked.append(str(e)))
        await page.goto(f"{base}/installer/?token={STAFF_TOKEN}")
        await page.wait_for_function("() => document.getElementById('box_id').value !== ''",
                                     timeout=10000)
        assert await page.input_value("#box_id") == "box-test"
        await page.click("[data-click=validate]")
        await page.wait_for_selector("#setup_msg span", timeout=10000)
        await page.click("[data-click='lang:en']")
        await page.wait_for_function(
            "() => document.querySelector('[data-i18n=title]').textContent.includes('Installer')",
            timeout=5000)
        await page.screenshot(path=str(tmp_path / "installer-1366.png"))
        # Resident pages on a phone: log in, read an article (its dwell script is a file now).
        phone = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        p2 = await phone.new_page()
        p2.on("console", lambda m: blocked.append(m.text)
              if "Content Security Policy" in m.text else None)
        await p2.goto(f"{base}/r/login?code={code['code']}")
        await p2.click("button")
        await p2.wait_for_url("**/r/read", timeout=10000)
        async with p2.expect_response("**/r/dwell.js", timeout=10000) as js:
            await p2.click("a[href='/r/read/a-1']")
        assert (await js.value).status == 200
        await p2.wait_for_selector("#ack", timeout=5000)
        async with p2.expect_request("**/r/read/a-1/dwell", timeout=10000):
            await p2.evaluate("() => dispatchEvent(new Event('pagehide'))")  # sends the beacon
        await p2.goto(f"{base}/r/")
        await p2.wait_for_function("() => document.body.dataset.ready === '1'", timeout=10000)
        await p2.screenshot(path=str(tmp_path / "resident-390.png"))
    assert blocked == []
