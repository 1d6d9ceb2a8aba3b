"""The second factor at face doors as people use it, in real headless Chromium: a resident sets
their door PIN on 我的开门密码 (an easy one refused in Chinese); the real face pipeline sees them
at an "always" door through a `file` camera and the coil of a pymodbus board stays off until
they tap confirm on their phone (390x844, both text modes); the door's screen (1920x1080) shows
"请输入开门密码或在手机上确认" with a keypad, a wrong PIN typed on it is refused in Chinese, the
right one turns the coil on; "不是我" on the phone refuses and the door stays shut. Screenshots
land in the test's tmp dir (and QILU_SHOTS if set)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge.access import ACCESS as ACCESS_SERVICE
from edge.core.store import Store
from tests.conftest import api_url
from tests.edge.access.conftest import board  # noqa: F401 - fixture
from tests.edge.access.helpers import door_frame, enrol, head_turn, photo, write_folder
from tests.edge.access.test_engine import (  # noqa: F401 - fixtures
    ACCESS,
    cam_toml,
    door_toml,
    events,
    pipeline,
)
from tests.edge.intercom.test_pages_chromium import until
from tests.edge.portal.helpers import FAST, STAFF, staff
from tests.edge.portal.test_look_chromium import CONTRAST_JS, PHONE, box_colour, pixel
from tests.peers.chromium import browser

PIN = "482916"
SCREEN_VIEW = {"viewport": {"width": 1920, "height": 1080}, "device_scale_factor": 1}
SCREEN = """
[[screens]]
id = "scr-east"
type = "sim"
door = "d-east"
"""


async def shot(page: Any, tmp_path: Path, name: str) -> bytes:
    png = await page.screenshot(path=str(tmp_path / f"{name}.png"))
    if out := os.environ.get("QILU_SHOTS"):
        await asyncio.to_thread(Path(out).mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((Path(out) / f"{name}.png").write_bytes, png)
    return png


async def phone(b: Any, base: str, code: str, big: bool) -> Any:
    ctx = await b.new_context(**PHONE)
    await ctx.add_cookies([{"name": "qilu_big", "value": "1" if big else "0", "url": base}])
    page = await ctx.new_page()
    await page.goto(f"{base}/r/login?code={code}", timeout=15000)
    await page.click("main form button")
    await page.wait_for_url("**/r/read", timeout=10000)
    return page


def contrast_ok(got: dict, big: bool, where: str) -> None:
    assert not got["bad"], (where, big, got["bad"])  # WCAG AA on the rendered colours
    assert got["overflow"] <= 0, (where, big, "wider than the phone")
    assert got["body"] >= (20 if big else 16), (where, got)
    assert min(got["targets"], default=99) >= (52 if big else 40), (where, got["targets"])


async def keypad(door: Any, digits: str) -> None:
    for k in digits:
        await door.click(f"#sf-keys button[data-k='{k}']")
    await door.click("#sf-keys button[data-k='ok']")


@pytest.mark.timeout(420)  # the face pipeline and three browsers on a shared 2-core machine
async def test_pin_page_phone_confirm_and_door_screen_keypad(
    tmp_path: Path, make_config, run_box, board, pipeline  # noqa: F811
) -> None:
    turn = head_turn(door_frame(photo("obama3.jpg"), pipeline), pipeline)
    # The camera shows an empty hallway until the resident has set their PIN; then the folder
    # it plays (a symlink, looked at again each loop) becomes the resident turning their head.
    empty = write_folder(tmp_path / "empty", [turn[0] * 0 + 90])
    walk_in = write_folder(tmp_path / "turn", turn)
    (tmp_path / "east").symlink_to(empty, target_is_directory=True)
    extra = (FAST + ACCESS.replace("cooldown_s = 30\n", "cooldown_s = 600\n", 1)
             + door_toml("d-east", board.tcp_port, 0, "c-east")
             + 'name = "东门"\nsecond_factor = "always"\n'
             + cam_toml("c-east", tmp_path / "east") + SCREEN)
    config = make_config(extra=extra)
    store = Store(config.db_path, box_id=config.box.id)
    enrol(store, pipeline, "r-obama", door_frame(photo("obama2.jpg"), pipeline), building="1")
    store.close()
    t_start = time.monotonic()
    box = await run_box(config)
    base = api_url(box)
    svc = box.get(ACCESS_SERVICE)
    key = await box.service("screens").new_key("scr-east", "test")
    async with aiohttp.ClientSession() as s:
        codes = [(await staff(s, "POST", f"{base}/api/v1/portal/codes", json={
            "resident_id": "r-obama", "building": "1", "name": "奥阿姨"}))["code"]
            for _ in range(2)]  # fmt: skip
    async with browser() as b:
        door = await (await b.new_context(**SCREEN_VIEW)).new_page()
        await door.goto(f"{base}/screen/scr-east#key={key}")
        await until(door, "!!window.qiluDoorFactor && !!document.body.dataset.showing")
        assert await door.locator("#sf").is_hidden(), await door.evaluate(
            "document.body.dataset.factor")  # nothing waits: the player as usual
        small = await phone(b, base, codes[0], big=False)
        big = await phone(b, base, codes[1], big=True)

        # --- 我的开门密码: an easy PIN refused in Chinese, then the resident's own -----------
        await small.goto(f"{base}/r/me")
        await small.click("#my-pin")
        await small.wait_for_url("**/r/pin")
        assert await small.inner_text("#pin-state") == "还没有设置"
        await small.fill("input[name=pin]", "123456")
        await small.fill("input[name=pin2]", "123456")
        await small.click("#pin-save")
        await small.wait_for_selector(".msg.err")
        err = await small.inner_text(".msg.err")
        assert "密码太简单" in err and "pin" not in err, err
        png = await shot(small, tmp_path, "pin-refused-0")
        err_colour = box_colour(png, await small.locator(".msg.err").bounding_box())
        await small.fill("input[name=pin]", PIN)
        await small.fill("input[name=pin2]", "482917")
        await small.click("#pin-save")
        await small.wait_for_selector(".msg.err >> text=两次输入的密码不一样")
        await small.fill("input[name=pin]", PIN)
        await small.fill("input[name=pin2]", PIN)
        await small.click("#pin-save")
        await small.wait_for_selector(".msg.ok >> text=开门密码已保存")
        assert (await small.inner_text("#pin-state")).startswith("已设置")
        png = await shot(small, tmp_path, "pin-saved-0")
        ok_colour = box_colour(png, await small.locator(".msg.ok").bounding_box())
        assert ok_colour[1] > ok_colour[0] + 8 and err_colour[0] > err_colour[1] + 8
        contrast_ok(await small.evaluate(CONTRAST_JS), False, "/r/pin")
        await big.goto(f"{base}/r/pin")
        await shot(big, tmp_path, "pin-1")
        contrast_ok(await big.evaluate(CONTRAST_JS), True, "/r/pin")
        # removing asks once first (and is not done by that question alone)
        await big.click("#pin-remove")
        await big.wait_for_selector("#pin-remove-confirm")
        await big.goto(f"{base}/r/read")  # the resident changes their mind
        await small.goto(f"{base}/r/read")
        assert await small.locator("#factor").count() == 0  # nothing waits: no prompt

        # --- the resident walks up to the door --------------------------------------------
        (tmp_path / "east-new").symlink_to(walk_in, target_is_directory=True)
        (tmp_path / "east-new").replace(tmp_path / "east")

        # --- the face at the "always" door: both phones ask, the screen shows the keypad ----
        for p in (small, big):
            await until(p, "!!window.qiluFactor && !!window.qiluFactor.shown", 240)
        assert await big.inner_text("#factor-q") == "您正在东门前？"
        assert await big.inner_text("#factor-yes") == "点此确认开门"
        assert await big.locator("#factor-no").inner_text() == "不是我"
        await until(door, "document.body.dataset.factor === 'waiting'")
        assert await door.inner_text("#sf-title") == "请输入开门密码或在手机上确认"
        assert await door.inner_text("#sf-door") == "东门"
        png = await shot(door, tmp_path, "door-waiting")
        card = await door.locator("#sf .sf-card").bounding_box()
        assert card and card["height"] > 600 and card["y"] >= 0
        assert card["y"] + card["height"] <= 1080
        assert box_colour(png, card) == (13, 27, 42)  # the keypad's card, over the player
        assert max(pixel(png, 20, 540)) < 90  # the player behind it is dimmed
        for name, p, is_big in (("prompt-0", small, False), ("prompt-1", big, True)):
            await shot(p, tmp_path, name)
            got = await p.evaluate(CONTRAST_JS)
            assert not got["bad"] and got["overflow"] <= 0, (name, got)
            bb = await p.locator("#factor-yes").bounding_box()
            assert bb and bb["height"] >= (80 if is_big else 64) and bb["width"] >= 300, bb
        await asyncio.sleep(1.0)
        assert board.first_write(1, 0, True, t_start) is None  # face alone: still shut
        assert not await events(box, "d-east", "granted")

        # --- a tap on the phone: the coil goes on; the phone says so, the screen clears ------
        t0 = time.monotonic()
        await big.click("#factor-yes")
        await asyncio.to_thread(board.wait_for, 1, 0, True, 5.0, t0)
        await big.wait_for_selector("#factor-msg.ok >> text=门已打开（东门）")
        await shot(big, tmp_path, "prompt-opened-1")
        ev = (await events(box, "d-east", "granted"))[0]
        assert (ev["method"], ev["factor"], ev["resident_id"]) == ("face", "phone", "r-obama")
        await until(small, "!window.qiluFactor.shown")  # the other phone's prompt goes away
        await until(door, "document.body.dataset.factor === 'opened'")
        assert await door.inner_text("#sf-msg") == "门已打开，请进"
        await until(door, "!document.body.dataset.factor", 10)
        assert await door.locator("#sf").is_hidden()

        # --- the door screen's keypad: a wrong PIN refused in Chinese, the right one opens --
        fields = {"fused_score": 0.7, "frames_used": 5, "track": 99}
        await svc.factors.challenge("d-east", "r-obama", "always", time.monotonic(), fields)
        await until(door, "document.body.dataset.factor === 'waiting'")
        t1 = time.monotonic()
        await keypad(door, "135790")
        await until(door, "document.getElementById('sf-msg').textContent !== ''")
        assert await door.inner_text("#sf-msg") == "密码不对，请重新输入"
        assert await door.inner_text("#sf-pin") == ""  # cleared for the next try
        png = await shot(door, tmp_path, "door-wrong-pin")
        await asyncio.sleep(0.5)
        assert board.first_write(1, 0, True, t1) is None
        await keypad(door, PIN)
        await asyncio.to_thread(board.wait_for, 1, 0, True, 5.0, t1)
        await until(door, "document.body.dataset.factor === 'opened'")
        await shot(door, tmp_path, "door-opened")
        ev = (await events(box, "d-east", "granted"))[0]
        assert (ev["factor"], ev["resident_id"]) == ("pin", "r-obama")
        await until(door, "!document.body.dataset.factor", 10)

        # --- "不是我": the wait ends refused, the door stays shut, the screen says so ---------
        for p in (small, big):  # a fresh page: no answer of before left on it
            await p.goto(f"{base}/r/read")
        await svc.factors.challenge("d-east", "r-obama", "always", time.monotonic(), fields)
        await until(small, "!!window.qiluFactor && !!window.qiluFactor.shown")
        t2 = time.monotonic()
        await small.click("#factor-no")
        await small.wait_for_selector("#factor-msg.warn >> text=已拒绝")
        await shot(small, tmp_path, "prompt-refused-0")
        await until(door, "document.getElementById('sf-msg').textContent"
                          " === '住户已拒绝，门不会打开'")
        await shot(door, tmp_path, "door-refused")
        await small.click("#factor-close")  # the phone's answer goes when the resident says
        await until(small, "document.getElementById('factor').hidden")
        await asyncio.sleep(0.5)
        assert board.first_write(1, 0, True, t2) is None
        ev = (await events(box, "d-east", "denied"))[0]
        assert (ev["reason"], ev["resident_id"]) == ("second_factor_refused", "r-obama")
        assert svc.factors.waiting("d-east") is None

        # --- nobody answers: the screen says so and clears, the phone's prompt goes ---------
        await until(door, "!document.body.dataset.factor", 10)
        svc.factors.cfg = svc.cfg.model_copy(update={"second_factor_timeout_s": 2.0})
        await svc.factors.challenge("d-east", "r-obama", "always", time.monotonic(), fields)
        await until(big, "!!window.qiluFactor.shown")
        await until(door, "document.body.dataset.factor === 'waiting'")
        await until(door, "document.body.dataset.factor === 'ended'", 10)
        assert await door.inner_text("#sf-msg") == "已超时，请重新刷脸"
        await until(big, "!window.qiluFactor.shown", 10)
        await until(door, "!document.body.dataset.factor", 10)
        assert board.first_write(1, 0, True, t2) is None

        # --- the phone asked enough lately: the door asks for the PIN only, no prompt ------
        svc.factors.cfg = svc.factors.cfg.model_copy(update={"second_factor_phone_max": 2})
        await svc.factors.challenge("d-east", "r-obama", "always", time.monotonic(), fields)
        await until(door, "document.body.dataset.factor === 'waiting'")
        assert await door.inner_text("#sf-title") == "请输入开门密码"
        await shot(door, tmp_path, "door-pin-only")
        await asyncio.sleep(1.0)  # the phones' long-polls woke with the change: no prompt
        for p in (small, big):
            assert not await p.evaluate("() => !!window.qiluFactor.shown")
        await until(door, "document.body.dataset.factor === 'ended'", 10)
        ev = (await events(box, "d-east", "denied"))[0]
        assert (ev["reason"], ev["resident_id"]) == ("second_factor_timeout_pin_only", "r-obama")


async def test_factor_long_poll_wakes_on_change_and_relay_answers_at_once(
    make_config, run_box
) -> None:
    """The phone's and the door screen's long-polls return as soon as a door starts or stops
    waiting (not at their 15 s limit); through the cloud relay they answer at once and tell
    the page how long to wait; the screen's PIN needs its key and a waiting door."""
    from edge.core.http import KEY_HEADER, RELAY_KEY
    from tests.edge.portal.helpers import login

    extra = FAST + """
[[doors]]
id = "d-sim"
type = "sim"
name = "南门"
building = "1"
second_factor = "always"
""" + SCREEN.replace("scr-east", "scr-sim").replace("d-east", "d-sim")
    box = await run_box(make_config(extra=extra))
    base = api_url(box)
    svc = box.get(ACCESS_SERVICE)
    key = await box.service("screens").new_key("scr-sim", "test")
    fields = {"fused_score": 0.7, "frames_used": 5, "track": 1}
    async with aiohttp.ClientSession() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={
            "id": "r-1", "name": "李叔", "building": "1"})  # fmt: skip
        me = await login(s, base, "r-1", "1")
        cookie = {"Cookie": "qilu_rs=" + me["Authorization"].removeprefix("Bearer ")}
        screen = {"X-Screen-Key": key}
        async with s.get(f"{base}/r/api/factor", headers=cookie) as r:
            first = await r.json()
        assert first["waiting"] == [] and first["poll_s"] == 0
        async with s.get(f"{base}/screen/scr-sim/factor", headers=screen) as r:
            assert (await r.json())["waiting"] is False
        async with s.post(f"{base}/screen/scr-sim/factor/pin", headers=screen,
                          json={"pin": "482916"}) as r:
            assert r.status == 409 and (await r.json())["error_zh"]  # nothing waits
        async with s.post(f"{base}/screen/scr-sim/factor/pin", headers={"X-Screen-Key": "x"},
                          json={"pin": "482916"}) as r:
            assert r.status == 401

        async def poll(url: str, headers: dict) -> tuple[float, dict]:
            t = time.monotonic()
            async with s.get(url, headers=headers) as r:
                assert r.status == 200
                return time.monotonic() - t, await r.json()

        v = first["version"]
        phone_wait = asyncio.create_task(poll(f"{base}/r/api/factor?after={v}", cookie))
        screen_wait = asyncio.create_task(poll(f"{base}/screen/scr-sim/factor?after={v}",
                                               screen))
        await asyncio.sleep(0.5)
        assert not phone_wait.done() and not screen_wait.done()  # held: nothing changed
        await svc.factors.challenge("d-sim", "r-1", "always", time.monotonic(), fields)
        took, got = await asyncio.wait_for(phone_wait, 5)
        assert took < 3 and [w["door"] for w in got["waiting"]] == ["南门"]
        took, got = await asyncio.wait_for(screen_wait, 5)
        assert got["waiting"] is True and got["door"] == "南门" and got["expires_in_s"] > 0
        # a wrong PIN at the screen: refused in Chinese, the door still waits
        async with s.post(f"{base}/screen/scr-sim/factor/pin", headers=screen,
                          json={"pin": "135790"}) as r:
            out = await r.json()
        assert r.status == 403 and out["reason"] == "no_resident_pin"
        assert out["error_zh"] == "您还没有设置开门密码，请在手机上确认" and out["waiting"]
        # through the cloud relay: answered at once, with the pause the page should take
        relay = {**cookie, KEY_HEADER: box.http[RELAY_KEY]}
        took, got = await poll(f"{base}/r/api/factor?after={got['version']}", relay)
        assert took < 2 and got["poll_s"] > 0 and got["waiting"]
        # the phone refuses: the screen is told how it ended
        v = got["version"]
        screen_wait = asyncio.create_task(poll(f"{base}/screen/scr-sim/factor?after={v}",
                                               screen))
        await asyncio.sleep(0.3)
        async with s.post(f"{base}/r/api/factor/d-sim/refuse", headers=cookie) as r:
            assert r.status == 200 and (await r.json())["done"] == "refused"
        took, got = await asyncio.wait_for(screen_wait, 5)
        assert got["waiting"] is False and got["ended"] == "refused"
        assert got["text"] == "住户已拒绝，门不会打开"
        evs = await events(box, "d-sim", "denied")
        assert [e["reason"] for e in evs][:1] == ["second_factor_refused"]


async def test_door_screen_asks_for_the_phone_only_while_the_pin_is_locked(
    tmp_path: Path, make_config, run_box
) -> None:
    """Wrong PINs for a resident at one door lock their PIN at every door (the budget is per
    resident). Another door's screen then asks for the resident's phone only: no keypad to
    type into, "请在手机上确认开门" (1920x1080)."""
    extra = FAST + """
[[doors]]
id = "d-west"
type = "sim"
second_factor = "always"

[[doors]]
id = "d-sim"
type = "sim"
name = "南门"
building = "1"
second_factor = "always"
""" + SCREEN.replace("scr-east", "scr-sim").replace("d-east", "d-sim")
    box = await run_box(make_config(extra=extra))
    base = api_url(box)
    svc = box.get(ACCESS_SERVICE)
    key = await box.service("screens").new_key("scr-sim", "test")
    fields = {"fused_score": 0.7, "frames_used": 5, "track": 1}
    async with aiohttp.ClientSession() as s:
        await staff(s, "POST", f"{base}/api/v1/residents", json={
            "id": "r-1", "name": "李叔", "building": "1"})  # fmt: skip
        await staff(s, "PUT", f"{base}/api/v1/residents/r-1/pin", json={"pin": PIN})
        await svc.factors.challenge("d-west", "r-1", "always", time.monotonic(), fields)
        for i in range(3):
            async with s.post(f"{base}/api/v1/doors/d-west/pin", headers=STAFF,
                              json={"pin": f"13579{i}", "source": f"kp/{i}"}) as r:
                assert (await r.json())["reason"] == "wrong_pin"
    async with browser() as b:
        door = await (await b.new_context(**SCREEN_VIEW)).new_page()
        await door.goto(f"{base}/screen/scr-sim#key={key}")
        await until(door, "!!window.qiluDoorFactor")
        await svc.factors.challenge("d-sim", "r-1", "always", time.monotonic(), fields)
        await until(door, "document.body.dataset.factor === 'waiting'")
        assert await door.inner_text("#sf-title") == "请在手机上确认开门"
        assert await door.locator("#sf-keys").is_hidden()
        assert await door.locator("#sf-pin").is_hidden()
        await shot(door, tmp_path, "door-phone-only")
