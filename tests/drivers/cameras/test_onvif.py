"""The onvif driver against an ipycam ONVIF camera: device info, profiles, URIs, frames,
snapshot, and a WS-Discovery probe."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from drivers.cameras.onvif import discover
from tests.conftest import free_port, stop_process, wait_port
from tests.drivers.cameras.test_cameras import make_camera, wait_state

PEER = Path(__file__).with_name("ipycam_peer.py")


def wildcard_port() -> int:
    """A port free on every address: ipycam binds all interfaces, and a port that is free on
    127.0.0.1 may be taken on another loopback address (busy shared machines)."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@contextmanager
def wsd_port_lock(timeout_s: float = 180.0) -> Iterator[None]:
    """WS-Discovery's port is fixed (3702) and ipycam's responder binds it: two test runs on
    one machine (CI beside a developer's run) would answer each other's probes. A lock file
    shared by every run on the machine lets one camera hold the port at a time."""
    with open("/tmp/qilu-test-wsd-3702.lock", "a") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run held the WS-Discovery port for {timeout_s} s")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture
def ipycam():
    pytest.importorskip("ipycam", reason="pip install --no-deps ipycam (scripts/setup.sh test)")
    onvif_port, rtsp_port = wildcard_port(), wildcard_port()
    with wsd_port_lock():
        proc = subprocess.Popen(
            [sys.executable, str(PEER), str(onvif_port), str(rtsp_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(onvif_port, 15)
            wait_port(rtsp_port, 15)
            yield onvif_port, rtsp_port
        finally:
            stop_process(proc)


async def test_onvif_camera_through_the_driver(ipycam) -> None:
    onvif_port, rtsp_port = ipycam
    cam = make_camera("onvif", host="127.0.0.1", port=onvif_port, username="admin",
                      password="x", reconnect_min_s=0.2)
    await cam.start()
    try:
        await wait_state(cam, "online", 20)
        st = cam.status()
        assert st["manufacturer"] == "QiluTest" and st["model"] == "VC-1"
        assert [p["width"] for p in st["profiles"]] == [640, 320]
        assert st["stream"] == f"rtsp://127.0.0.1:{rtsp_port}/video_main"
        f = await cam.next_frame(-1, 5)
        assert f is not None and f.image.shape == (480, 640, 3)
        jpeg = await cam.snapshot()
        assert jpeg[:2] == b"\xff\xd8"
    finally:
        await cam.stop()


async def test_ws_discovery_finds_the_camera(ipycam) -> None:
    onvif_port, _ = ipycam
    found = await asyncio.to_thread(discover, 2.0, (("127.0.0.1", 3702),))
    urls = [x for f in found for x in f.xaddrs]
    assert f"http://127.0.0.1:{onvif_port}/onvif/device_service" in urls


async def test_unreachable_onvif_camera_is_offline() -> None:
    cam = make_camera("onvif", host="127.0.0.1", port=free_port(), timeout_s=1,
                      reconnect_min_s=0.2)
    await cam.start()
    try:
        await wait_state(cam, "offline", 10, why="ONVIF")
    finally:
        await cam.stop()


async def test_onvif_min_width_decodes_the_sub_stream(ipycam) -> None:
    # A door needs ~640 px at most: min_width picks the smallest profile at least that wide
    # (here the 320x240 sub-stream), so the box decodes a quarter of the pixels.
    onvif_port, rtsp_port = ipycam
    cam = make_camera("onvif", host="127.0.0.1", port=onvif_port, username="admin",
                      password="x", reconnect_min_s=0.2, min_width=300)
    await cam.start()
    try:
        await wait_state(cam, "online", 20)
        st = cam.status()
        assert [p["chosen"] for p in st["profiles"]] == [False, True]
        assert st["stream"] != f"rtsp://127.0.0.1:{rtsp_port}/video_main"
        f = await cam.next_frame(-1, 5)
        assert f is not None and f.image.shape == (240, 320, 3)
    finally:
        await cam.stop()


def test_pick_profile_smallest_wide_enough() -> None:
    from types import SimpleNamespace as NS

    from drivers.cameras.onvif import pick_profile

    def prof(token: str, width: int | None) -> NS:
        res = NS(Width=width, Height=None) if width else None
        return NS(token=token, VideoEncoderConfiguration=NS(Resolution=res))

    profiles = [prof("main", 1920), prof("sub", 640), prof("third", 352)]
    assert pick_profile(profiles, 600).token == "sub"
    assert pick_profile(profiles, 300).token == "third"
    assert pick_profile(profiles, 4000).token == "main"  # none that wide: the widest
    assert pick_profile([prof("a", None)], 640).token == "a"  # no sizes reported: the first
