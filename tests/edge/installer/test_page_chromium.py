"""The installer page at 1366x768 in real Chromium: Chinese by default with every label
translated, text >= 16 px and readable contrast, a sign-in form (a token in the address is
ignored and dropped), a wrong token refused in words, the right one loading the wizard."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import STAFF_TOKEN, api_url
from tests.peers.chromium import browser

CHECK = (Path(__file__).resolve().parents[1] / "portal/contrast.js").read_text(encoding="utf-8")
CJK = re.compile(r"[\u4e00-\u9fff]")


async def test_installer_page_signs_in_by_form_in_chinese(make_config, run_box, tmp_path) -> None:
    box = await run_box(make_config())
    base = api_url(box)
    async with browser() as b:
        page = await b.new_page(viewport={"width": 1366, "height": 768})
        await page.goto(f"{base}/installer/?token={STAFF_TOKEN}", timeout=15000)
        assert "token" not in page.url  # dropped from the address, and not used
        assert await page.locator("#signin").is_visible()
        assert await page.evaluate("localStorage.getItem('token')") is None
        labels = await page.eval_on_selector_all(
            "[data-i18n]", "els => els.map(e => e.textContent.trim())")
        assert labels and all(CJK.search(x) for x in labels), labels
        got = await page.evaluate(CHECK)
        assert not got["bad"] and got["minText"] >= 16, got
        await page.screenshot(path=str(tmp_path / "installer-signin.png"))
        # a wrong token: said in Chinese, still signed out
        await page.fill("#token", "not-the-token")
        await page.click("#signin-form button")
        await page.wait_for_selector("#signin_msg .err", timeout=10000)
        assert "令牌不对" in await page.inner_text("#signin_msg")
        # the right one: the wizard loads the box's settings
        await page.fill("#token", STAFF_TOKEN)
        await page.click("#signin-form button")
        await page.wait_for_selector("#signed:not([hidden])", timeout=10000)
        assert await page.input_value("#box_id") == box.config.box.id
        assert not await page.locator("#signin").is_visible()
        assert await page.inner_text("#setup_msg") == ""  # nothing left of the wrong try
        await page.screenshot(path=str(tmp_path / "installer-signed-in.png"), full_page=True)
        got = await page.evaluate(CHECK)
        assert not got["bad"] and got["minText"] >= 16, got
        # a wrong value: the box's answer in Chinese, naming the field
        await page.fill("#community", "Not Valid!")
        await page.click("[data-click=validate]")
        await page.wait_for_selector("#setup_msg .err", timeout=10000)
        said = await page.inner_text("#setup_msg")
        assert "box.community" in said and "格式不对" in said and "should" not in said, said
        await page.screenshot(path=str(tmp_path / "installer-error-zh.png"))
        # English on request: every label switches, and so do the box's answers
        await page.click("[data-click='lang:en']")
        assert await page.inner_text("[data-i18n=mb_host]") == "Host"
        assert await page.inner_text("[data-i18n=scan]") == "Scan"
        await page.click("[data-click=validate]")
        await page.wait_for_function(
            "() => document.querySelector('#setup_msg').textContent.includes('should match')",
            timeout=10000)
        await page.screenshot(path=str(tmp_path / "installer-error-en.png"))
