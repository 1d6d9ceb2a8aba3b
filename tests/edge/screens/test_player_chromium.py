"""The player page in real headless Chromium (Debian package, driven by Playwright)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp

from tests.conftest import STAFF_TOKEN, api_url, box_toml, free_port, wait_port
from tests.edge.screens.helpers import screen_key
from tests.edge.screens.test_service import png
from tests.peers.chromium import browser, near, rgb

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}
SCREEN = """
[[screens]]
id = "scr-1"
type = "sim"
name = "东门宣传屏"
tags = ["outdoor"]
"""
GREEN, BLUE, EMERGENCY_RED = (0, 200, 0), (0, 0, 200), (198, 40, 40)
COLORS = {"green": GREEN, "blue": BLUE}
VIEW = {"width": 640, "height": 360}
ROOT = Path(__file__).resolve().parents[3]


async def publish(base: str, dur: float = 1.5) -> None:
    async with aiohttp.ClientSession(headers=H) as s:
        for cid, bgr in (("green", (0, 200, 0)), ("blue", (200, 0, 0))):
            r = await s.put(
                f"{base}/api/v1/screens/content/{cid}/file?title={cid}&duration_s={dur}",
                data=png(bgr),
                headers={"Content-Type": "image/png"},
            )
            assert r.status == 201, await r.text()
        pl = {
            "id": "pl",
            "name": "宣传",
            "items": [{"content_id": "green"}, {"content_id": "blue"}],
        }
        assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl)).status == 201
        sch = {"id": "all-day", "playlist_id": "pl", "tags": ["outdoor"]}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201


async def showing(page) -> str | None:
    return await page.evaluate("document.body.dataset.showing || null")


async def shot_center(page) -> tuple[int, int, int]:
    return rgb(await page.screenshot(), VIEW["width"] // 2, VIEW["height"] // 2)


async def wait_showing(page, want: set[str], within: float = 5.0) -> tuple[str, float]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        cid = await showing(page)
        if cid in want:
            return cid, time.monotonic()
        await asyncio.sleep(0.01)
    raise AssertionError(f"page never showed {want} (showing {await showing(page)})")


async def test_schedule_emergency_and_proof_of_play(make_config, run_box):
    box = await run_box(make_config(extra=SCREEN))
    base = api_url(box)
    await publish(base)
    url = (await screen_key(base, "scr-1"))["player_url"]
    async with browser() as b:
        # Without the screen's key the page plays nothing and says why.
        stranger = await b.new_page(viewport=VIEW)
        await stranger.goto(f"{base}/screen/scr-1")
        await stranger.wait_for_function(
            "() => document.getElementById('status').textContent.includes('未授权')", timeout=5000)
        await asyncio.sleep(0.5)
        assert await showing(stranger) is None and not box.service("screens").connected("scr-1")
        await stranger.close()
        # The address staff got when provisioning the key, configured once on the device.
        page = await b.new_page(viewport=VIEW)
        await page.goto(url)
        first, _ = await wait_showing(page, {"green", "blue"})
        # The key left the address bar (it stays in the page's local storage).
        assert "key=" not in page.url and await page.evaluate("location.hash") == ""
        await page.wait_for_function("() => window.qiluPlayer.preloaded === 2", timeout=5000)
        # The item on screen is the scheduled image (pixels), then the next one replaces it.
        cid, t_switch = await wait_showing(page, {"green", "blue"} - {first})
        assert near(await shot_center(page), COLORS[cid])
        nxt, t_next = await wait_showing(page, {first})
        assert 1.2 < t_next - t_switch < 1.8, "item did not last its 1.5 s duration"
        assert near(await shot_center(page), COLORS[nxt])

        # Emergency takes over within 0.5 s, in Chinese, then the schedule resumes.
        async with aiohttp.ClientSession(headers=H) as s:
            t0 = time.monotonic()
            r = await s.post(
                f"{base}/api/v1/screens/emergencies",
                json={"title": "紧急停水通知", "body": "今晚 22:00 起全小区停水", "minutes": 10},
            )
            em = (await r.json())["id"]
            _, t_em = await wait_showing(page, {em}, within=2)
            assert t_em - t0 < 0.5, f"emergency took {t_em - t0:.3f} s"
            assert near(await shot_center(page), EMERGENCY_RED)
            assert "紧急停水通知" in await page.inner_text("body")
            await s.post(f"{base}/api/v1/screens/emergencies/{em}/cancel")
            cid, _ = await wait_showing(page, {"green", "blue"}, within=2)
            assert near(await shot_center(page), COLORS[cid])
        # Proof of play: the page's reports are in the store (and its outbox).
        deadline = time.monotonic() + 5
        rows: list = []
        while time.monotonic() < deadline:
            rows = list(box.store.sync.db.query("SELECT * FROM play_records ORDER BY started_at"))
            if len(rows) >= 4 and any(r["content_id"] == em for r in rows):
                break
            await asyncio.sleep(0.1)
    whole = [r for r in rows if r["content_id"] in COLORS][1:-1]  # first may be partial
    assert whole and all(1300 <= r["duration_ms"] <= 1700 for r in whole), rows
    for r in rows:
        start = datetime.fromisoformat(r["started_at"])
        end = datetime.fromisoformat(r["ended_at"])
        assert start <= end and abs((end - datetime.now(start.tzinfo)).total_seconds()) < 60
    outbox = box.store.sync.db.execute(
        "SELECT count(*) FROM outbox WHERE kind='play_record'"
    ).fetchone()[0]
    assert outbox == len(rows)


def start_box(cfg: Path) -> subprocess.Popen:
    """The box as its own process (`qilu-edge run`), so stopping it is the real thing."""
    return subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "-c", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def test_page_keeps_playing_when_the_box_process_stops(tmp_path: Path):
    port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(box_toml(tmp_path, api_port=port, extra=SCREEN))
    proc = start_box(cfg)
    try:
        await asyncio.to_thread(wait_port, port, 20)
        base = f"http://127.0.0.1:{port}"
        await publish(base, dur=1.0)
        url = (await screen_key(base, "scr-1"))["player_url"]
        async with browser() as b:
            ctx = await b.new_context(viewport=VIEW)
            page = await ctx.new_page()
            await page.goto(url)
            await wait_showing(page, {"green", "blue"})
            await page.wait_for_function(
                "() => navigator.serviceWorker.controller && window.qiluPlayer.preloaded === 2",
                timeout=8000,
            )
            await asyncio.sleep(0.5)  # let the service worker cache what the page warmed
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
            seen = set()
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and len(seen) < 2:
                cid, _ = await wait_showing(page, {"green", "blue"} - seen, within=3)
                await asyncio.sleep(0.2)
                if near(await shot_center(page), COLORS[cid]):
                    seen.add(cid)
            assert seen == {"green", "blue"}, "page stopped playing without the box"
            # Even a reload with the box gone plays from the service worker and the last plan.
            await page.reload()
            cid, _ = await wait_showing(page, {"green", "blue"}, within=5)
            await asyncio.sleep(0.3)
            assert near(await shot_center(page), COLORS[await showing(page)])
            queued = await page.evaluate("window.qiluPlayer.queue.length")
            assert queued >= 1  # plays wait in the page until the box is back
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def test_updated_notice_replaces_the_one_on_screen(make_config, run_box):
    """A one-item playlist's notice corrected by staff (same content id, new body): the screen
    must show the correction, not keep the old text until the page is reloaded."""
    box = await run_box(make_config(extra=SCREEN))
    base = api_url(box)
    notice = {"id": "water", "kind": "html", "title": "停水通知", "body": "周六 9:00 起停水",
              "duration_s": 2}
    async with aiohttp.ClientSession(headers=H) as s:
        assert (await s.post(f"{base}/api/v1/screens/content", json=notice)).status == 201
        pl = {"id": "pl", "name": "通知", "items": [{"content_id": "water"}]}
        assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl)).status == 201
        sch = {"id": "all-day", "playlist_id": "pl", "tags": ["outdoor"]}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201
        url = (await screen_key(base, "scr-1"))["player_url"]
        async with browser() as b:
            page = await b.new_page(viewport=VIEW)
            await page.goto(url)
            await wait_showing(page, {"water"})
            await page.wait_for_function(
                "() => document.querySelector('.front').innerText.includes('周六')", timeout=5000)
            fixed = {**notice, "body": "周日 9:00 起停水"}
            assert (await s.post(f"{base}/api/v1/screens/content", json=fixed)).status == 201
            # Within one 2 s slot and a bit: the page got the new plan over its WebSocket.
            await page.wait_for_function(
                "() => document.querySelector('.front').innerText.includes('周日')", timeout=4500)
            assert "周六" not in await page.inner_text(".front")


async def test_emergency_showing_a_scheduled_notice_takes_over(make_config, run_box):
    """An emergency due to start shortly shows an item the schedule also plays (the notice
    about the water cut): when it starts, the screen must switch to the emergency look (whole
    screen, badge), not keep showing it as an ordinary scheduled notice."""
    box = await run_box(make_config(extra=SCREEN))
    base = api_url(box)
    notice = {"id": "water", "kind": "html", "title": "停水通知", "body": "今晚 22:00 起停水",
              "duration_s": 30}
    async with aiohttp.ClientSession(headers=H) as s:
        assert (await s.post(f"{base}/api/v1/screens/content", json=notice)).status == 201
        pl = {"id": "pl", "name": "通知", "items": [{"content_id": "water"}]}
        assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl)).status == 201
        sch = {"id": "all-day", "playlist_id": "pl", "tags": ["outdoor"]}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201
        url = (await screen_key(base, "scr-1"))["player_url"]
        async with browser() as b:
            page = await b.new_page(viewport=VIEW)
            await page.goto(url)
            await wait_showing(page, {"water"})
            start = datetime.now().astimezone() + timedelta(seconds=2)
            em = {"title": "停水", "content_id": "water", "starts_at": start.isoformat(),
                  "expires_at": (start + timedelta(minutes=10)).isoformat()}
            assert (await s.post(f"{base}/api/v1/screens/emergencies", json=em)).status == 201
            assert not await page.evaluate("document.body.classList.contains('emergency')")
            await page.wait_for_function(
                "() => document.body.classList.contains('emergency')", timeout=5000)
            assert "紧急通知" in await page.inner_text(".front")


async def test_revoked_key_stops_the_screen(make_config, run_box):
    """Staff revoke a screen's key (a stolen or retired player): the page must stop playing,
    as documented, not go on showing its last plan from local storage, also after a reload."""
    box = await run_box(make_config(extra=SCREEN))
    base = api_url(box)
    await publish(base)
    url = (await screen_key(base, "scr-1"))["player_url"]
    async with browser() as b:
        page = await b.new_page(viewport=VIEW)
        await page.goto(url)
        await wait_showing(page, {"green", "blue"})
        async with aiohttp.ClientSession(headers=H) as s:
            assert (await s.delete(f"{base}/api/v1/screens/scr-1/key")).status == 200
        await page.wait_for_function(
            "() => !document.body.dataset.showing && !window.qiluPlayer.plan", timeout=3000)
        assert "未授权" in await page.inner_text("#status")
        await page.reload()
        await asyncio.sleep(1.0)
        assert await showing(page) is None
        assert await page.evaluate("window.qiluPlayer.plan") is None


async def test_an_emergency_longer_than_the_plan_does_not_replay_offline(tmp_path: Path):
    """An emergency broadcast that lasts longer than the screen's plan horizon (here 1 h
    against an emergency of 2 h; 48 h by default). The page, offline past its plan, keeps
    cycling the plan's last segment: that was the emergency, so an offline screen went on
    showing it after it had expired, for ever. Now, 3 h later (the page's clock moved on by
    Playwright), the screen plays the schedule again."""
    port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(box_toml(tmp_path, api_port=port, extra="[player]\nplan_hours = 1\n" + SCREEN))
    proc = start_box(cfg)
    try:
        await asyncio.to_thread(wait_port, port, 20)
        base = f"http://127.0.0.1:{port}"
        await publish(base, dur=1.0)
        url = (await screen_key(base, "scr-1"))["player_url"]
        async with aiohttp.ClientSession(headers=H) as s:
            r = await s.post(f"{base}/api/v1/screens/emergencies", json={
                "title": "暴雨红色预警", "body": "请勿外出", "minutes": 120})  # fmt: skip
            assert r.status == 201, await r.text()
            em = (await r.json())["id"]
        async with browser() as b:
            page = await b.new_page(viewport=VIEW)
            await page.clock.install()
            await page.goto(url)
            await wait_showing(page, {em}, within=10)
            assert await page.evaluate("document.body.classList.contains('emergency')")
            # both pictures in memory (a screen that lost the box before it had fetched them
            # shows its background instead)
            await page.wait_for_function("() => window.qiluPlayer.preloaded >= 2", timeout=5000)
            proc.send_signal(signal.SIGKILL)  # the box (and its link) is gone
            proc.wait(5)
            await page.wait_for_function(
                "() => document.getElementById('status').textContent.includes('离线')",
                timeout=10000)
            await page.clock.fast_forward(3 * 3600 * 1000)  # the emergency ended an hour ago
            await wait_showing(page, {"green", "blue"}, within=5)
            assert not await page.evaluate("document.body.classList.contains('emergency')")
            # The pixels of what it says it shows (items of 1 s: a sample may fall in a
            # cross-fade, so up to 20 samples, one of them must match).
            for _ in range(20):
                cid, px = await showing(page), await shot_center(page)
                if cid in COLORS and near(px, COLORS[cid]) and cid == await showing(page):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the screen shows {px}, not {cid}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def test_a_key_revoked_while_the_page_was_closed_stops_the_screen(make_config, run_box):
    """The key is revoked while the player page is closed (the screen switched off at night,
    its network down). Opened again, the page plays its saved plan from local storage while it
    connects; the box refused the socket with a plain HTTP 401, which the page cannot tell
    from a box that is down, so it went on playing the community's content as "离线播放"."""
    box = await run_box(make_config(extra=SCREEN))
    base = api_url(box)
    await publish(base)
    url = (await screen_key(base, "scr-1"))["player_url"]
    async with browser() as b:
        ctx = await b.new_context(viewport=VIEW)  # one context: the pages share local storage
        page = await ctx.new_page()
        await page.goto(url)
        await wait_showing(page, {"green", "blue"})
        await page.close()
        async with aiohttp.ClientSession(headers=H) as s:
            assert (await s.delete(f"{base}/api/v1/screens/scr-1/key")).status == 200
        page = await ctx.new_page()
        await page.goto(url)
        await page.wait_for_function(
            "() => !document.body.dataset.showing && !window.qiluPlayer.plan", timeout=5000)
        assert "未授权" in await page.inner_text("#status")
        # the saved plan and key are gone (the unacknowledged plays may stay queued)
        kept = await page.evaluate("Object.keys(localStorage)")
        assert not [k for k in kept if k.startswith(("qilu-plan-", "qilu-key-"))], kept
