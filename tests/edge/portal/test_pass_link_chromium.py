"""A visitor pass shared as a link (issue 19): "发送链接" hands the phone's share sheet a link
that a visitor opens on another phone without a login (390x844, normal and large text): the
PIN and a QR code the door's reader accepts. The link is unguessable (a changed character is
404), the box keeps neither the token nor the PIN in clear, and the link ends with the pass
(revoked, used up or expired: 410 in Chinese)."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import cv2
import numpy as np

from edge.access import passes
from tests.conftest import api_url
from tests.edge.portal.test_look_chromium import CONTRAST_JS, PHONE, config, log_in, seed
from tests.peers.chromium import browser

SHARE_STUB = """
  Object.defineProperty(navigator, "share", {value: async d => { window.__shared = {
    title: d.title, text: d.text, url: d.url || null,
    files: (d.files || []).map(f => [f.name, f.type, f.size])}; }});
  Object.defineProperty(navigator, "canShare", {value: () => true});
"""


def db(box: Any, sql: str, *args: Any) -> list:
    con = sqlite3.connect(box.config.db_path)
    try:
        with con:
            return con.execute(sql, args).fetchall()
    finally:
        con.close()


def qr_in(png: bytes) -> str:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return passes.QrReader().read(img) or ""


async def test_a_pass_shared_as_a_link_opens_without_login_and_ends_with_the_pass(
    run_box, tmp_path
) -> None:
    box = await run_box(config(tmp_path))
    base = api_url(box)
    codes = await seed(base)
    async with browser() as b:
        phone = await b.new_context(**PHONE)
        await phone.add_init_script(SHARE_STUB)
        page = await phone.new_page()
        await log_in(page, base, codes["code1"])
        await page.goto(f"{base}/r/me", timeout=15000)
        await page.fill("#new-pass input[name=visitor]", "小李")
        await page.locator("#new-pass input[type=checkbox]").first.check()
        await page.click("#new-pass button")
        await page.wait_for_selector("#pass .pin", timeout=10000)
        pin = (await page.inner_text("#pass .pin b")).strip()
        await page.screenshot(path=str(tmp_path / "pass-created.png"), full_page=True)
        await page.click("#share-link")
        await page.wait_for_function("() => window.__shared", timeout=10000)
        shared = await page.evaluate("window.__shared")
        link = shared["url"]
        assert link and link == await page.get_attribute("#pass-link", "href")
        assert pin in shared["text"] and not shared["files"]
        token = urlsplit(link).path.rsplit("/", 1)[-1]
        assert urlsplit(link).path == f"/r/v/{token}" and len(token) >= 32
        # "发送图片" still sends the QR image
        await page.evaluate("window.__shared = null")
        await page.click("#share")
        await page.wait_for_function("() => window.__shared", timeout=10000)
        [(_name, ftype, _size)] = (await page.evaluate("window.__shared"))["files"]
        assert ftype == "image/png"
        # the box keeps neither the token nor the PIN in clear
        (row_id, sealed), = db(box, "SELECT id, sealed FROM portal_pass_links")
        assert token not in row_id and pin.encode() not in bytes(sealed)
        pass_id = db(box, "SELECT id FROM visitor_passes")[0][0]

        # --- the visitor's phone: no login, both text modes --------------------------------
        for big in (False, True):
            visitor = await b.new_context(**PHONE)
            await visitor.add_cookies([{"name": "qilu_big", "value": "1" if big else "0",
                                        "url": base}])  # fmt: skip
            vpage = await visitor.new_page()
            resp = await vpage.goto(link, timeout=15000)
            assert resp is not None and resp.status == 200
            assert resp.headers.get("referrer-policy") == "no-referrer"
            assert (await vpage.inner_text("#pin")).strip() == pin
            assert "东门" in await vpage.inner_text("#pass") and "小李" in await vpage.inner_text(
                "#pass")
            assert await vpage.locator(".tabbar").count() == 0  # not a resident's app
            png = await vpage.screenshot(path=str(tmp_path / f"visitor-{int(big)}.png"),
                                         full_page=True)
            assert passes.verify_qr(box.service("access").key, qr_in(png)) == pass_id
            got = await vpage.evaluate(CONTRAST_JS)
            assert not got["bad"] and got["overflow"] <= 0, got
            assert got["body"] >= (20 if big else 16), got
            await visitor.close()
        await phone.close()

    async with aiohttp.ClientSession() as s:
        # unguessable: one character changed is no pass at all
        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
        async with s.get(f"{base}/r/v/{wrong}") as r:
            assert r.status == 404 and "链接无效" in await r.text()
        # revoked by the resident: the link shows nothing any more
        db(box, "UPDATE visitor_passes SET revoked = 1 WHERE id = ?", pass_id)
        async with s.get(f"{base}/r/v/{token}") as r:
            body = await r.text()
            assert r.status == 410 and "已被作废" in body and pin not in body
        # expired with the pass
        db(box, "UPDATE visitor_passes SET revoked = 0, valid_to = '2020-01-01T00:00:00+00:00'"
                " WHERE id = ?", pass_id)  # fmt: skip
        async with s.get(f"{base}/r/v/{token}") as r:
            body = await r.text()
            assert r.status == 410 and "已过期" in body and pin not in body
