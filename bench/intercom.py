"""Intercom benchmark: a visitor dials, a phone page rings, answers, sees the door, opens.

    .venv/bin/python bench/intercom.py [--trials 8] [--cpu-seconds 6]

A whole box runs in this process (the real daemon: intercom, access, a Modbus door on a
pymodbus TCP board in its own thread that timestamps every coil write, a `file` door camera);
the phone is headless Chromium (390x844) on the box's /r/intercom page. Each trial:
- dial -> ring: the door screen's POST until the phone page has the ringing call (the page's
  wall clock against ours, same machine);
- answer -> first picture: the tap on 接听 until the first door snapshot has loaded;
- answer -> first video frame: the same tap until WebRTC's first decoded frame (media through a
  real coturn on loopback, relay-only ICE, as for a phone away);
- open tap -> coil: the tap on 开门 until the coil-on write arrives at the board;
on the LAN (WebSocket) and away through a real qilu-cloudsync relay (long-poll, in this
process too). CPU of the box process with one answered call (WebRTC: VP8 encoding of the door
camera, audio both ways) against the same box idle with the page open, side by side.
Timings on a shared 2-core machine are noisy. Prints readable lines, then one JSON object on
the LAST line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.daemon import Daemon  # noqa: E402
from edge.features import parse_config  # noqa: E402
from tests.cloudsync.helpers import cli_provision, start_cloud  # noqa: E402
from tests.conftest import box_toml, free_port  # noqa: E402
from tests.drivers.doors.relay_peers import RelayBoard  # noqa: E402
from tests.edge.intercom.helpers import camera_frames, intercom_toml, seed  # noqa: E402
from tests.edge.intercom.test_rtc import MEDIA, Turn, rtc_toml  # noqa: E402
from tests.edge.portal.helpers import staff  # noqa: E402
from tests.peers.chromium import browser  # noqa: E402

COIL = 2
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(q * (len(xs) - 1)))], 1)


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": pct(xs, 0.5), "p95": pct(xs, 0.95), "n": len(xs)}


async def until(page: Any, js: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await page.evaluate(js)
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(js)
        await asyncio.sleep(0.01)


async def trial(page: Any, base: str, key: str, board: RelayBoard, s: aiohttp.ClientSession,
                out: dict[str, list[float]]) -> None:
    n = await page.evaluate("window.intercom.rings.length")
    t_wall = time.time() * 1000
    async with s.post(f"{base}/screen/scr-gate/intercom/calls", json={"flat": "1-1-101"},
                      headers={"X-Screen-Key": key}) as r:
        assert r.status == 201, await r.text()
    ring_wall = await until(page, f"window.intercom.rings.length > {n} && "
                                  "window.intercom.rings[window.intercom.rings.length-1].wall")
    out["dial_to_ring_ms"].append(ring_wall - t_wall)
    await page.evaluate("window.intercom.firstFrameAt = null; window.intercom.answeredAt = null;"
                        " window.intercom.videoAt = null")
    await until(page, "!document.getElementById('answer').hidden")
    await page.click("#answer")
    first = await until(page, "window.intercom.firstFrameAt !== null && "
                              "window.intercom.answeredAt !== null && "
                              "window.intercom.firstFrameAt - window.intercom.answeredAt")
    out["answer_to_picture_ms"].append(first)
    video = await until(page, "window.intercom.videoAt !== null && "
                              "window.intercom.videoAt - window.intercom.answeredAt", 20)
    out["answer_to_video_ms"].append(video)
    t_tap = time.monotonic()
    await page.click("#open")
    w = await asyncio.to_thread(board.wait_for, 1, COIL, True, 10.0, t_tap)
    out["open_tap_to_coil_ms"].append((w.t - t_tap) * 1000)
    await until(page, "document.body.dataset.state === 'ended'")
    await asyncio.sleep(1.2)  # the pulse ends and the coil goes off before the next trial


async def cpu_of_a_call(page: Any, base: str, key: str, s: aiohttp.ClientSession,
                        seconds: float) -> dict[str, float]:
    idle0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    idle = (time.process_time() - idle0) / (time.monotonic() - w0) * 100
    async with s.post(f"{base}/screen/scr-gate/intercom/calls", json={"flat": "1-1-101"},
                      headers={"X-Screen-Key": key}) as r:
        call = await r.json()
    await until(page, "!document.getElementById('answer').hidden")
    await page.click("#answer")
    await until(page, "window.intercom.videoFrames > 0", 20)
    f0 = await page.evaluate("window.intercom.videoFrames")
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    busy = (time.process_time() - c0) / (time.monotonic() - w0) * 100
    fps = (await page.evaluate("window.intercom.videoFrames") - f0) / (time.monotonic() - w0)
    async with s.post(f"{base}/screen/scr-gate/intercom/calls/{call['id']}/hangup",
                      headers={"X-Screen-Key": key}):
        pass
    return {"box_cpu_pct_idle": round(idle, 1), "box_cpu_pct_one_call": round(busy, 1),
            "box_cpu_pct_per_call": round(busy - idle, 1), "video_fps_at_phone": round(fps, 1)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--cpu-seconds", type=float, default=6.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    board = RelayBoard(units=(1,), tcp_port=free_port()).start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-intercom-"))
    cloud = await start_cloud(str(tmp / "cloud.db"), tmp)
    await cloud.community(community="c1")
    limits = "source_calls_per_min = 600\nflat_calls_per_10min = 600\n"  # trials, not pranks
    turn = Turn(tmp)  # a real coturn on loopback: the WebRTC media goes through it
    text = box_toml(tmp, extra=intercom_toml(board.tcp_port, camera_frames(tmp / "cam"),
                                             limits, ring_s=30, rtc=rtc_toml(turn, tmp)))
    (tmp / "edge.toml").write_text(text)
    config = parse_config(text, source=tmp / "edge.toml")
    seed(config)
    await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
    daemon = Daemon(config)
    box = await daemon.start()
    res: dict[str, Any] = {"trials": args.trials}
    try:
        relay = box.service("portal_relay")
        for _ in range(200):
            if relay.connected:
                break
            await asyncio.sleep(0.05)
        base = f"http://127.0.0.1:{box.service('api').port}"
        key = await box.service("screens").new_key("scr-gate", "bench")
        async with aiohttp.ClientSession() as s, browser(*MEDIA) as b:
            code_lan = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                                   json={"resident_id": "r-a", "building": "1"})
            code_away = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                                    json={"resident_id": "r-a", "building": "1"})
            for where, site, code in (("lan", base, code_lan), ("relay", cloud.url, code_away)):
                ctx = await b.new_context(**PHONE)
                page = await ctx.new_page()
                start = (f"{site}/r/login?code={code['code']}" if where == "lan" else
                         f"{site}/r/at/c1?next={quote('/r/login?code=' + code['code'])}")
                await page.goto(start)
                await page.click("button")
                await page.wait_for_url("**/r/read")
                await page.goto(f"{site}/r/intercom")
                await until(page, f"window.intercom && window.intercom.mode === "
                                  f"'{'ws' if where == 'lan' else 'poll'}'")
                await asyncio.sleep(0.5)
                out: dict[str, list[float]] = {"dial_to_ring_ms": [], "answer_to_picture_ms": [],
                                               "answer_to_video_ms": [],
                                               "open_tap_to_coil_ms": []}
                for _ in range(args.trials):
                    await trial(page, base, key, board, s, out)
                res[where] = {k: summary(v) for k, v in out.items()}
                print(where, json.dumps(res[where]))
                if where == "lan":
                    res["cpu"] = await cpu_of_a_call(page, base, key, s, args.cpu_seconds)
                    print("cpu", json.dumps(res["cpu"]))
                await ctx.close()
    finally:
        await daemon.stop()
        await cloud.stop()
        board.stop()
        turn.stop()
    print(json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    asyncio.run(main())
