"""WebRTC for an answered call: live video from the box's `file` door camera and two-way audio
(the box plays a door tone, the phone's fake microphone reaches the box), media only through a
real coturn on loopback (relay-only ICE on both ends), signalled over HTTP — on the LAN and
through a real qilu-cloudsync relay."""

from __future__ import annotations

import asyncio
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import numpy as np
import pytest

from tests.cloudsync.helpers import Cloud, start_cloud
from tests.conftest import api_url, free_port, stop_process, wait_port
from tests.edge.intercom.helpers import camera_frames, intercom_toml, screen_key, seed, tokens
from tests.edge.intercom.test_calls import COIL
from tests.edge.intercom.test_pages_chromium import PHONE_VIEW, SHOTS, until
from tests.edge.portal.helpers import staff
from tests.edge.portal.test_relay import relayed
from tests.peers.chromium import browser

MEDIA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
         "--allow-loopback-in-peer-connection")
SECRET = "turn-test-secret"


class Turn:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        lo = 20000 + (self.port % 20000)
        self.log = tmp / "turn.log"
        self.proc = subprocess.Popen(
            ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
             f"--listening-port={self.port}", f"--min-port={lo}", f"--max-port={lo + 200}",
             "--use-auth-secret", f"--static-auth-secret={SECRET}", "--realm=qilu.test",
             "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers",
             "--no-multicast-peers", f"--log-file={self.log}", "--simple-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[Turn]:
    t = Turn(tmp_path)
    yield t
    t.stop()


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    await c.community(community="c1")
    yield c
    await c.stop()


def tone(path: Path) -> Path:
    """One second of a 440 Hz tone: the door microphone (a file the box loops)."""
    t = np.arange(48000) / 48000
    pcm = (np.sin(2 * np.pi * 440 * t) * 0.5 * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(pcm.tobytes())
    return path


def rtc_toml(turn: Turn, tmp: Path) -> str:
    """The door's audio as files: its microphone a looped tone, its speaker a WAV the box
    writes (on a real door: mic_format / speaker_format = "alsa" with ALSA devices)."""
    return f"""rtc_relay_only = true
turn_urls = ["turn:127.0.0.1:{turn.port}?transport=udp"]
turn_secret = "{SECRET}"

[[intercom.audio]]
door = "d-gate"
mic = "{tone(tmp / 'door.wav')}"
speaker = "{tmp / 'door-speaker.wav'}"
"""


def peak_of(path: Path) -> float:
    """The loudest sample of a 16-bit WAV (0..1)."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2 and w.getnframes() > 0, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    return float(np.abs(pcm.astype(np.int32)).max()) / 32768.0


VIDEO_SUM = """(() => { const v = document.getElementById('vid');
  const c = document.createElement('canvas'); c.width = 160; c.height = 120;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0, 160, 120);
  return Array.from(g.getImageData(0, 0, 160, 120).data); })()"""


async def live_call(page: Any, base: str, key: str, board: Any, box: Any) -> dict[str, float]:
    async with aiohttp.ClientSession() as door:
        async with door.post(f"{base}/screen/scr-gate/intercom/calls", json={"flat": "1-1-101"},
                             headers={"X-Screen-Key": key}) as r:
            assert r.status == 201
    await until(page, "window.intercom.rings.length === 1", 10)
    t0 = time.monotonic()
    await page.click("#answer")
    await until(page, "window.intercom.rtc === 'connected' && window.intercom.videoFrames >= 5",
                25)
    first_video_s = time.monotonic() - t0
    a = np.array(await page.evaluate(VIDEO_SUM), np.int32).reshape(120, 160, 4)
    n = await page.evaluate("window.intercom.videoFrames")
    await until(page, f"window.intercom.videoFrames >= {n + 10}", 10)
    b = np.array(await page.evaluate(VIDEO_SUM), np.int32).reshape(120, 160, 4)
    # the door camera's picture (green background) and it moves
    assert a[10, 80, 1] > a[10, 80, 0] + 20, a[10, 80]
    assert float(np.abs(a - b).mean()) > 1.0
    await until(page, "window.intercom.rxAudioPeak > 0.05", 10)  # the door tone, not silence
    sessions = box.service("intercom").rtc.sessions
    (sess,) = [s for v in sessions.values() for s in v]
    for _ in range(100):  # the phone's fake microphone (a beep) reaches the box
        if sess.rx_audio_peak > 0.05:
            break
        await asyncio.sleep(0.1)
    assert sess.rx_audio_frames > 0 and sess.rx_audio_peak > 0.05, sess.rx_audio_peak
    assert sess.video is not None and sess.video.sent > 10
    # relay-only on both ends: the pair the phone uses is a TURN relay candidate
    # The transport's selected pair (a pair's "nominated" flag can lag in getStats: the
    # first read once came back empty in CI while media flowed); read until it is set.
    kind = None
    for _ in range(50):
        kind = await page.evaluate("""(async () => {
            const stats = await window.intercomPc().getStats(); let out = null;
            stats.forEach((s) => {
                let pair = null;
                if (s.type === 'transport' && s.selectedCandidatePairId)
                    pair = stats.get(s.selectedCandidatePairId);
                else if (s.type === 'candidate-pair' && s.state === 'succeeded'
                         && s.nominated) pair = s;
                if (pair && stats.get(pair.localCandidateId))
                    out = stats.get(pair.localCandidateId).candidateType; });
            return out; })()""")
        if kind is not None:
            break
        await asyncio.sleep(0.1)
    assert kind == "relay", kind
    assert not await page.locator("#vid").is_hidden()
    await page.screenshot(path=str(SHOTS / "phone-video.png"))
    t_tap = time.monotonic()
    await page.click("#open")
    await asyncio.to_thread(board.wait_for, 1, COIL, True, 5.0, t_tap)
    await until(page, "document.body.dataset.state === 'ended'")
    for _ in range(50):  # the call's media ends with it
        if not sessions:
            break
        await asyncio.sleep(0.1)
    assert not sessions
    # the phone's voice was played on the door's speaker (here a WAV file): not silence
    speaker = Path(box.service("intercom").cfg.audio[0].speaker)
    assert peak_of(speaker) > 0.05, peak_of(speaker)
    return {"first_video_s": first_video_s}


async def test_live_video_and_two_way_audio_through_turn_on_the_lan(
    make_config, run_box, board, tmp_path, turn: Turn
) -> None:
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "cam"),
                                             ring_s=30, rtc=rtc_toml(turn, tmp_path)))
    seed(config)
    box = await run_box(config)
    base = api_url(box)
    key = await screen_key(box)
    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, base)
    async with browser(*MEDIA) as b:
        ctx = await b.new_context(**PHONE_VIEW)
        await ctx.add_cookies([{"name": "qilu_rs", "value": tok["r-a"], "url": base}])
        page = await ctx.new_page()
        await page.goto(f"{base}/r/intercom")
        await until(page, "window.intercom && window.intercom.mode === 'ws'")
        got = await live_call(page, base, key, board, box)
    assert got["first_video_s"] < 10


async def test_live_video_away_through_the_cloud_relay_and_turn(
    make_config, run_box, board, tmp_path, turn: Turn, cloud: Cloud
) -> None:
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "cam"),
                                             ring_s=30, rtc=rtc_toml(turn, tmp_path)))
    seed(config)
    box, _ = await relayed(cloud, config, run_box)
    base = api_url(box)
    key = await screen_key(box)
    async with aiohttp.ClientSession() as lan:
        code = await staff(lan, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": "r-a", "building": "1"})
    async with browser(*MEDIA) as b:
        page = await (await b.new_context(**PHONE_VIEW)).new_page()
        await page.goto(f"{cloud.url}/r/at/c1?next={quote('/r/login?code=' + code['code'])}",
                        timeout=15000)
        await page.click("main form button")
        await page.wait_for_url(f"{cloud.url}/r/read", timeout=10000)
        await page.goto(f"{cloud.url}/r/intercom", timeout=15000)
        await until(page, "window.intercom && window.intercom.mode === 'poll'", 15)
        await asyncio.sleep(0.5)
        await live_call(page, base, key, board, box)


async def turn_allocates(port: int, username: str | None, password: str | None) -> bool:
    """Does the real coturn give these credentials a relay allocation (TURN Allocate)?"""
    from aioice.turn import create_turn_endpoint

    if not username or not password:
        return False
    try:
        transport, _ = await asyncio.wait_for(create_turn_endpoint(
            asyncio.DatagramProtocol, ("127.0.0.1", port), username, password), 5)
    except Exception:  # 401 from coturn (a stale or wrong credential): no allocation
        return False
    transport.close()
    return True


def creds(config: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    return [(s.get("username"), s.get("credential")) for s in config.get("iceServers", [])]


async def test_turn_credentials_only_for_the_phone_in_a_live_call(
    make_config, run_box, board, tmp_path, turn: Turn
) -> None:
    """Probe 11 (docs/security.md listed it as a known gap): any signed-in resident got
    one-hour TURN credentials from /r/intercom/rtc without a call, i.e. a free relay on the
    community's coturn. Credentials now go only to the phone that answered a live call, for
    that call's remaining time, and coturn refuses everything else."""
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "cam"),
                                             ring_s=30, rtc=rtc_toml(turn, tmp_path)))
    seed(config)
    box = await run_box(config)
    base = api_url(box)
    key = await screen_key(box)
    talk_s = box.service("intercom").cfg.talk_s

    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, base)

        async def rtc(rid: str, call: str | None = None) -> tuple[int, dict[str, Any]]:
            q = f"?call={call}" if call else ""
            async with s.get(f"{base}/r/intercom/rtc{q}",
                             headers={"Cookie": f"qilu_rs={tok[rid]}"}) as r:
                return r.status, await r.json()

        async def usable(rid: str, call: str | None = None) -> bool:
            _st, cfg = await rtc(rid, call)
            return any([await turn_allocates(turn.port, u, p) for u, p in creds(cfg)])

        # no call at all: nothing coturn accepts
        assert not await usable("r-a")
        async with s.post(f"{base}/screen/scr-gate/intercom/calls", json={"flat": "1-1-101"},
                          headers={"X-Screen-Key": key}) as r:
            assert r.status == 201
            cid = (await r.json())["id"]
        # ringing, not answered yet; a neighbour; a call id of nobody's
        assert not await usable("r-a")
        assert not await usable("r-a", cid)
        st, body = await rtc("r-n", cid)
        assert st == 404 and not creds(body)
        async with s.post(f"{base}/r/intercom/calls/{cid}/answer",
                          headers={"Cookie": f"qilu_rs={tok['r-a']}"}) as r:
            assert r.status == 200
        # the phone that answered: credentials coturn accepts, for this call's time only
        st, cfg = await rtc("r-a", cid)
        assert st == 200, cfg
        ((user, pw),) = creds(cfg)
        assert await turn_allocates(turn.port, user, pw)
        assert int(user.split(":")[0]) - time.time() <= talk_s + 60, user
        assert not await usable("r-b", cid)  # the other phone of the flat did not answer
        assert not await usable("r-a")  # still nothing without naming the call
        async with s.post(f"{base}/r/intercom/calls/{cid}/decline",
                          headers={"Cookie": f"qilu_rs={tok['r-a']}"}) as r:
            assert r.status == 200
        st, body = await rtc("r-a", cid)  # the call ended: none any more
        assert st == 409 and not creds(body) and body["error_zh"], body
