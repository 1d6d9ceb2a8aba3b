"""The resident pages in real headless Chromium on a small phone viewport."""

from __future__ import annotations

import sqlite3

import aiohttp
import cv2
import numpy as np

from tests.conftest import api_url
from tests.edge.portal.helpers import FAST, STAFF, article, staff
from tests.peers.chromium import browser

PHONE = {"viewport": {"width": 360, "height": 640}, "device_scale_factor": 1, "is_mobile": True}


def big_jpeg() -> bytes:
    img = np.zeros((900, 1600, 3), np.uint8)
    img[:, :800] = (0, 0, 200)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


async def feed_ids(page) -> list[str]:
    return await page.eval_on_selector_all("ul.feed li", "els => els.map(e => e.dataset.id)")


async def test_read_acknowledge_and_the_feed_changes(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await article(s, base, "a-policy", "关于垃圾分类的新规定", ["policy"], must_read=True)
        await article(s, base, "a-dance", "广场舞比赛报名开始", ["culture"])
        await article(s, base, "a-opera", "社区戏曲晚会", ["culture"])
        await article(s, base, "a-tax", "个税专项附加扣除指南", ["finance"])
        # a photo published once in the screens' content model, shown on phones too
        async with s.put(
            f"{base}/api/v1/screens/content/a-photo/file?title=社区新貌",
            data=big_jpeg(),
            headers={**STAFF, "Content-Type": "image/jpeg"},
        ) as r:
            assert r.status == 201, await r.text()
            item = await r.json()
        item.pop("schema")
        await staff(s, "POST", f"{base}/api/v1/screens/content", json={**item, "tags": ["phone"]})
        code = await staff(
            s,
            "POST",
            f"{base}/api/v1/portal/codes",
            json={"resident_id": "r-301", "name": "王阿姨", "building": "3"},
        )

    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await page.goto(f"{base}/r/login?code={code['code']}", timeout=15000)
        await page.click("button")
        await page.wait_for_url("**/r/read", timeout=10000)
        ids = await feed_ids(page)
        assert ids[0] == "a-policy"
        assert await page.inner_text("ul.feed li:first-child .why") == "必读：请阅读并确认知晓"
        # small pages: the feed plus its stylesheet, no framework
        size = "u => fetch(u).then(r => r.arrayBuffer()).then(b => b.byteLength)"
        assert await page.evaluate(size, "/r/read") < 10_000
        assert await page.evaluate(size, "/r/portal.css") < 5_000

        # read the must-read notice, stay a moment, acknowledge it
        await page.click("ul.feed li:first-child a")
        await page.wait_for_selector("#ack", timeout=10000)
        await page.wait_for_timeout(1200)
        await page.click("#ack")
        await page.wait_for_url("**/r/read?acked=1", timeout=10000)
        ids = await feed_ids(page)
        assert ids[0] != "a-policy" and ids[-1] == "a-policy"
        assert "已读" in await page.inner_text("li[data-id='a-policy']")

        # read one culture article: the other one is now recommended because of it
        await page.click("li[data-id='a-dance'] a")
        await page.wait_for_selector("h1", timeout=10000)
        await page.go_back()
        await page.reload()
        why = await page.inner_text("li[data-id='a-opera'] .why")
        assert why == "因为你读过《广场舞比赛报名开始》"
        ids = await feed_ids(page)
        assert ids.index("a-opera") < ids.index("a-tax")

        # the photo comes scaled to the phone, not at 1600 px
        await page.click("li[data-id='a-photo'] a")
        await page.wait_for_function(
            "() => document.querySelector('img') && document.querySelector('img').complete"
            " && document.querySelector('img').naturalWidth > 0",
            timeout=10000,
        )
        natural = await page.eval_on_selector("img", "i => i.naturalWidth")
        assert natural <= 480
        assert await page.eval_on_selector("img", "i => i.getBoundingClientRect().width") <= 360
        await ctx.close()

    db = sqlite3.connect(box.config.db_path)
    acked = db.execute("SELECT content_id FROM portal_acks WHERE resident_id = 'r-301'")
    assert [r[0] for r in acked] == ["a-policy"]
    # the dwell beacon reported the time spent on the notice (page hidden on navigation)
    dwell = db.execute(
        "SELECT max(dwell_ms) FROM portal_reads WHERE content_id = 'a-policy'"
    ).fetchone()[0]
    assert dwell >= 1000


async def test_login_page_refuses_a_wrong_code(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await page.goto(f"{api_url(box)}/r/read", timeout=15000)
        assert page.url.endswith("/r/login")  # not logged in
        await page.fill("input[name=code]", "12345678")
        await page.click("button")
        assert "登录码错误" in await page.inner_text(".err")
        await ctx.close()
