"""Screen layouts by pixels in real Chromium at 1920x1080 and 1080x1920: the header (community,
clock and date in the community's zone), the content, the ticker of notices (moving), the side
zone (QR code and weather from the configured file) to the right in landscape and below in
portrait; an emergency over the whole screen with title, body, issuing office and end time,
a flashing border, and text sized for 10 m."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import cv2
import numpy as np

from edge.features import parse_config
from tests.conftest import STAFF_TOKEN, api_url, box_toml
from tests.edge.screens.helpers import screen_key
from tests.peers.chromium import browser, near, rgb

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}
EXTRA = """
[player]
layout = "standard"
side_qr_url = "http://192.168.1.10:8080/r/"
weather_file = "weather.json"
emergency_office = "幸福里社区居委会"

[[screens]]
id = "scr-side"
type = "sim"
tags = ["outdoor"]
layout = "side"

[[screens]]
id = "scr-std"
type = "sim"
tags = ["outdoor"]
"""
HEADER, TICKER, NOTICE, RED = (13, 43, 94), (16, 42, 76), (255, 248, 225), (198, 40, 40)
SIZES = {"landscape": (1920, 1080), "portrait": (1080, 1920)}


def config(tmp_path: Path):
    text = box_toml(tmp_path, 1, 0, EXTRA).replace("[box]\n", '[box]\nname = "幸福里小区"\n', 1)
    (tmp_path / "edge.toml").write_text(text)
    return parse_config(text, source=tmp_path / "edge.toml")


def dark_fraction(png: bytes, x0: int, y0: int, x1: int, y1: int) -> float:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)[y0:y1, x0:x1]
    return float((img < 60).mean())


async def publish(base: str) -> None:
    async with aiohttp.ClientSession(headers=H) as s:
        for cid, title, body in (
            ("n-water", "周六停水通知", "周六 9:00–15:00 5号楼、6号楼停水，请提前储水。"),
            ("n-lift", "电梯年检", "下周一 3号楼电梯年检，暂停使用两小时。"),
        ):
            r = await s.post(f"{base}/api/v1/screens/content", json={
                "id": cid, "kind": "html", "title": title, "body": body, "duration_s": 30})
            assert r.status == 201, await r.text()
        pl = {"id": "pl", "name": "通知", "items": [{"content_id": "n-water"},
                                                   {"content_id": "n-lift"}]}  # fmt: skip
        assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl)).status == 201
        sch = {"id": "all-day", "playlist_id": "pl", "tags": ["outdoor"]}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201


async def test_layouts_in_both_orientations_and_an_emergency(run_box, tmp_path) -> None:
    cfg = config(tmp_path)
    cfg.box.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.box.data_dir / "weather.json").write_text(
        json.dumps({"text": "多云", "temp": "12℃", "range": "6~14℃", "aqi": "良"}))
    box = await run_box(cfg)
    base = api_url(box)
    await publish(base)
    side_url = (await screen_key(base, "scr-side"))["player_url"]
    std_url = (await screen_key(base, "scr-std"))["player_url"]
    async with browser() as b:
        for orient, (w, h) in SIZES.items():
            page = await b.new_page(viewport={"width": w, "height": h})
            await page.goto(side_url)
            await page.wait_for_function("() => document.body.dataset.showing", timeout=15000)
            await asyncio.sleep(0.5)
            png = await page.screenshot(path=str(tmp_path / f"side-{orient}.png"))
            vmin = min(w, h) / 100
            # header band: community, clock and date in Beijing time
            assert near(rgb(png, w // 2, int(2 * vmin)), HEADER, 10), orient
            assert await page.inner_text("#community") == "幸福里小区"
            now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai"))
            clock = await page.inner_text("#clock")
            shown = {(now + timedelta(minutes=d)).strftime("%H:%M") for d in (-1, 0, 1)}
            assert clock in shown, (clock, shown)
            assert f"{now.month}月{now.day}日" in await page.inner_text("#date")
            # the notice fills the main zone; the ticker runs along the bottom
            side = await page.locator("#side").bounding_box()
            main = await page.locator("#main").bounding_box()
            assert near(rgb(png, int(main["x"] + 20), int(main["y"] + main["height"] - 20)),
                        NOTICE, 8), orient  # fmt: skip
            assert near(rgb(png, 5, h - int(2 * vmin)), TICKER, 10), orient
            ticker = await page.inner_text("#ticker")
            assert "周六停水通知" in ticker and "电梯年检" in ticker
            x1 = await page.eval_on_selector("#ticker-run", "e => e.getBoundingClientRect().x")
            await asyncio.sleep(0.6)
            x2 = await page.eval_on_selector("#ticker-run", "e => e.getBoundingClientRect().x")
            assert x2 < x1 - 5, (x1, x2)  # it moves right to left
            # side zone: right of the content in landscape, below it in portrait
            if orient == "landscape":
                assert side["x"] >= main["x"] + main["width"] - 1 and side["width"] > 0.2 * w
            else:
                assert side["y"] >= main["y"] + main["height"] - 1 and side["width"] == w
            qr = await page.locator("#side-qr svg").bounding_box()
            frac = dark_fraction(png, int(qr["x"]), int(qr["y"]), int(qr["x"] + qr["width"]),
                                 int(qr["y"] + qr["height"]))  # fmt: skip
            assert 0.25 < frac < 0.75, frac  # a QR code: black and white modules
            assert "12°C" in await page.inner_text("#weather")
            await page.close()
        # the standard layout has no side zone: the content reaches the right edge
        page = await b.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(std_url)
        await page.wait_for_function("() => document.body.dataset.showing", timeout=15000)
        png = await page.screenshot(path=str(tmp_path / "standard-landscape.png"))
        assert near(rgb(png, 1900, 540), NOTICE, 8)
        assert not await page.locator("#side").is_visible()
        # --- an emergency takes the whole screen, on both orientations ----------------------
        portrait = await b.new_page(viewport={"width": 1080, "height": 1920})
        await portrait.goto(side_url)
        await portrait.wait_for_function("() => document.body.dataset.showing", timeout=15000)
        async with aiohttp.ClientSession(headers=H) as s:
            r = await s.post(f"{base}/api/v1/screens/emergencies", json={
                "title": "燃气泄漏", "body": "5号楼燃气泄漏，请勿使用明火，从东门撤离。",
                "minutes": 30})  # fmt: skip
            assert r.status == 201, await r.text()
            em = await r.json()
        ends = datetime.fromisoformat(em["expires_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
        # The player names the day too when the emergency ends on another day (a 30-minute
        # one started after 23:30 Beijing time ends after midnight).
        today = ends.date() == datetime.now(ends.tzinfo).date()
        day = "" if today else f"{ends.month}月{ends.day}日 "
        for p, (w, h), name in ((page, (1920, 1080), "landscape"),
                                (portrait, (1080, 1920), "portrait")):  # fmt: skip
            await p.wait_for_function("() => document.body.classList.contains('emergency')",
                                      timeout=5000)  # fmt: skip
            await asyncio.sleep(0.3)
            text = await p.inner_text(".layer.front")
            assert "燃气泄漏" in text and "从东门撤离" in text
            assert "发布：幸福里社区居委会" in text and f"有效至 {day}{ends:%H:%M}" in text
            assert not await p.locator("#hdr").is_visible()
            assert not await p.locator("#ticker").is_visible()
            shots = []
            for i in range(8):  # over more than one flash period (1 s)
                shots.append(await p.screenshot(path=str(tmp_path / f"emergency-{name}-{i}.png")))
                await asyncio.sleep(0.17)
            assert near(rgb(shots[0], w // 2, h // 2), RED, 12)  # red over the whole screen
            corners = {rgb(s, 5, 5) for s in shots}  # the border flashes yellow / white
            assert any(near(c, (255, 235, 59), 12) for c in corners), corners
            assert any(near(c, (255, 255, 255), 12) for c in corners), corners
            # sized for 10 m: the title >= 11 % of the short side (~12 cm on a 55" screen)
            px = await p.eval_on_selector(".layer.front h1",
                                          "e => parseFloat(getComputedStyle(e).fontSize)")
            assert px >= 0.11 * min(w, h), px
            body_px = await p.eval_on_selector(".layer.front .body",
                                               "e => parseFloat(getComputedStyle(e).fontSize)")
            assert body_px >= 0.065 * min(w, h), body_px


async def test_a_layout_by_the_clock(run_box, tmp_path) -> None:
    """[[player.layout_times]]: the standard screen shows the side zone during a window that
    holds now (Beijing time), and another screen outside the window's list keeps its own."""
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime(
        "%H:%M")
    extra = EXTRA + f"""
[[player.layout_times]]
start = "{start}"
end = "{end}"
layout = "side"
screens = ["scr-std"]

[[player.layout_times]]
start = "{end}"
end = "{start}"
layout = "full"
"""
    text = box_toml(tmp_path, 1, 0, extra).replace("[box]\n", '[box]\nname = "幸福里小区"\n', 1)
    (tmp_path / "edge.toml").write_text(text)
    box = await run_box(parse_config(text, source=tmp_path / "edge.toml"))
    base = api_url(box)
    await publish(base)
    std_url = (await screen_key(base, "scr-std"))["player_url"]
    side_url = (await screen_key(base, "scr-side"))["player_url"]
    async with browser() as b:
        page = await b.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(std_url)
        await page.wait_for_function("() => document.body.classList.contains('layout-side')",
                                     timeout=15000)  # fmt: skip
        png = await page.screenshot(path=str(tmp_path / "std-by-clock.png"))
        assert await page.locator("#side").is_visible()
        assert near(rgb(png, 1900, 540), (255, 255, 255), 8)  # the white side zone at the right
        other = await b.new_page(viewport={"width": 1920, "height": 1080})
        await other.goto(side_url)
        await other.wait_for_function("() => document.body.dataset.showing", timeout=15000)
        assert await other.evaluate("document.body.className") == "layout-side"


async def test_a_layout_by_schedule_entry(run_box, tmp_path) -> None:
    """[issue 19] layouts chosen per schedule entry: while an entry with its own layout plays
    the page takes it (side zone, or posters edge to edge with no header), in both
    orientations; when it ends the screen's own layout comes back."""
    box = await run_box(config(tmp_path))
    base = api_url(box)
    await publish(base)  # "all-day" plays on both screens in the screen's layout
    std_url = (await screen_key(base, "scr-std"))["player_url"]
    async with aiohttp.ClientSession(headers=H) as s:
        sch = {"id": "all-day", "playlist_id": "pl", "tags": ["outdoor"], "layout": "side"}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201
        r = await s.post(f"{base}/api/v1/screens/schedules", json={**sch, "layout": "round"})
        assert r.status == 400 and "layout" in (await r.json())["error"]
    async with browser() as b:
        pages = {}
        for orient, (w, h) in SIZES.items():
            page = pages[orient] = await b.new_page(viewport={"width": w, "height": h})
            await page.goto(std_url)
            await page.wait_for_function(
                "() => document.body.classList.contains('layout-side')", timeout=15000)
            await asyncio.sleep(0.3)
            png = await page.screenshot(path=str(tmp_path / f"entry-side-{orient}.png"))
            side = await page.locator("#side").bounding_box()
            assert side and side["width"] > 0.2 * w, orient
            x, y = int(side["x"] + side["width"] - 8), int(side["y"] + side["height"] - 8)
            assert near(rgb(png, x, y), (255, 255, 255), 8), orient  # the white side zone
            assert near(rgb(png, w // 2, int(2 * min(w, h) / 100)), HEADER, 10), orient
        # a higher-priority entry with posters edge to edge: no header, ticker or side zone
        async with aiohttp.ClientSession(headers=H) as s:
            night = {"id": "full-now", "playlist_id": "pl", "screens": ["scr-std"],
                     "priority": 5, "layout": "full"}
            assert (await s.post(f"{base}/api/v1/screens/schedules", json=night)).status == 201
        for orient, (w, h) in SIZES.items():
            page = pages[orient]
            await page.wait_for_function(
                "() => document.body.classList.contains('layout-full')", timeout=10000)
            await asyncio.sleep(0.3)
            png = await page.screenshot(path=str(tmp_path / f"entry-full-{orient}.png"))
            for x, y in ((w // 2, 5), (5, h - 5), (w - 5, h // 2)):  # top, bottom, right edge
                assert near(rgb(png, x, y), NOTICE, 8), (orient, x, y)
        async with aiohttp.ClientSession(headers=H) as s:
            r = await s.delete(f"{base}/api/v1/screens/schedules/full-now")
            assert r.status in (200, 204), await r.text()
        for page in pages.values():
            await page.wait_for_function(
                "() => document.body.classList.contains('layout-side')", timeout=10000)


async def test_a_revoked_screen_shows_nothing_of_the_community(run_box, tmp_path) -> None:
    """Staff revoke a screen's key (a stolen or retired player). The page stopped its plan,
    but the ticker along the bottom went on scrolling the last notices, under the community's
    name, QR code and weather: whoever holds the device still read the community's notices.
    Now the page shows only a neutral line (屏幕未授权，请联系物业), also after a reload."""
    cfg = config(tmp_path)
    cfg.box.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.box.data_dir / "weather.json").write_text(json.dumps({"text": "多云", "temp": "12℃"}))
    box = await run_box(cfg)
    base = api_url(box)
    await publish(base)
    url = (await screen_key(base, "scr-side"))["player_url"]
    secrets = ("周六停水通知", "电梯年检", "幸福里小区", "12°C")
    async with browser() as b:
        page = await b.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(url)
        await page.wait_for_function("() => document.body.dataset.showing", timeout=15000)
        assert "周六停水通知" in await page.inner_text("#ticker")
        async with aiohttp.ClientSession(headers=H) as s:
            assert (await s.delete(f"{base}/api/v1/screens/scr-side/key")).status == 200
        await page.wait_for_function("() => !window.qiluPlayer.plan", timeout=5000)
        for when in ("revoked", "reloaded"):
            await asyncio.sleep(1.0)
            png = await page.screenshot(path=str(tmp_path / f"{when}.png"))
            text = await page.evaluate("document.body.innerText")
            leaked = [w for w in secrets if w in text]
            assert not leaked, (when, leaked, text)
            for zone in ("#ticker", "#hdr", "#side"):
                assert not await page.locator(zone).is_visible(), (when, zone)
            assert not near(rgb(png, 5, 1080 - 20), TICKER, 10), when  # no ticker band
            assert "请联系物业" in await page.inner_text("#status"), when
            assert await page.locator("#status").is_visible(), when
            if when == "revoked":
                await page.reload()
