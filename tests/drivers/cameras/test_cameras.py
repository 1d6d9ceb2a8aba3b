"""Camera drivers read real sources: files, image folders, a GStreamer RTSP server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers import registry
from drivers.cameras.base import CameraDriver
from drivers.cameras.rtsp import redact, with_credentials
from edge.core.config import CameraConfig
from tests.conftest import free_port
from tests.drivers.cameras.peers import GstRtspServer, gst_available, write_video


def make_camera(type_: str, health: list | None = None, cam_id: str = "c1", **keys: object):
    cls = registry.get("cameras", type_)
    opts = cls.Options.model_validate(keys)

    async def on_health(state: str, reason: str) -> None:
        if health is not None:
            health.append((state, reason))

    return cls(CameraConfig(id=cam_id, type=type_, options=opts), on_health=on_health)


async def wait_state(cam: CameraDriver, state: str, limit_s: float, why: str = "") -> None:
    async with asyncio.timeout(limit_s):
        # state is set from the reader thread, so poll it
        while cam.state != state or why not in cam.reason:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_file_video_loops_at_its_rate(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.avi", frames=10, fps=20)
    health: list = []
    cam = make_camera("file", health, path=str(video))
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        seqs = []
        last = -1
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.5:
            f = await cam.next_frame(last, 2.0)
            assert f is not None
            seqs.append(f.seq)
            last = f.seq
        assert seqs[-1] > 10  # looped past the 10-frame file
        assert 15 <= cam.fps <= 25, cam.fps
        assert (cam.width, cam.height) == (320, 240)
    finally:
        await cam.stop()
    assert health[0][0] == "online" and "320x240" in health[0][1]


async def test_image_folder_and_end_of_file_goes_offline(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((60, 80, 3), i * 80, np.uint8))
    health: list = []
    cam = make_camera("file", health, path=str(tmp_path), fps=30, loop=False,
                      reconnect_min_s=5, stall_s=0.2)
    await cam.start()
    try:
        f = await cam.next_frame(-1, 3)
        assert f is not None and f.image.shape == (60, 80, 3)
        await wait_state(cam, "offline", 3, why="no frames")
    finally:
        await cam.stop()
    assert [s for s, _ in health][:2] == ["online", "offline"]


async def test_missing_usb_camera_is_offline() -> None:
    cam = make_camera("usb", index=63, reconnect_min_s=0.1)
    await cam.start()
    try:
        await wait_state(cam, "offline", 5, why="/dev/video63")
    finally:
        await cam.stop()


def test_credentials_go_into_the_url_but_not_the_logs() -> None:
    url = with_credentials("rtsp://10.0.0.5:554/s1", "admin", "p@ss:1")
    assert url == "rtsp://admin:p%40ss%3A1@10.0.0.5:554/s1"
    assert redact(url) == "rtsp://***@10.0.0.5:554/s1"
    with pytest.raises(ValueError, match="url"):
        make_camera("rtsp", url="ftp://x")


@pytest.fixture(scope="module")
def gst() -> bool:
    if not gst_available():
        pytest.fail("GStreamer RTSP server missing (scripts/setup.sh test installs it)")
    return True


async def test_rtsp_stream_latest_frame_fps_and_reconnect(gst: bool) -> None:
    port = free_port()
    server = GstRtspServer(port, fps=15).start()
    health: list = []
    cam = make_camera("rtsp", health, url=server.url, reconnect_min_s=0.2, reconnect_max_s=1,
                      read_timeout_ms=1500, stall_s=1.0)
    try:
        await cam.start()
        await wait_state(cam, "online", 15)
        await asyncio.sleep(2.0)
        assert (cam.width, cam.height) == (640, 480)
        assert 12 <= cam.fps <= 18, cam.fps
        # Latest frame, not a queue: a slow consumer gets a fresh frame each time.
        f = await cam.next_frame(-1, 2)
        await asyncio.sleep(0.5)
        g = await cam.next_frame(f.seq, 2)
        assert g.seq - f.seq >= 5 and time.monotonic() - g.t < 0.2
        # Frames stay the decoder's YUV until someone looks (drivers/cameras/decode.py).
        assert not g.converted and g.luma is not None and g.image.shape == (480, 640, 3)
        # The camera disappears: offline with a reason; it comes back: online again.
        await asyncio.to_thread(server.stop)
        await wait_state(cam, "offline", 10, why="rtsp")
        server = GstRtspServer(port, fps=15).start()
        await wait_state(cam, "online", 20)
        assert cam.reconnects >= 1
    finally:
        await cam.stop()
        server.stop()
    # State changes (offline may be reported twice: the stream ended, then a retry found
    # nobody listening; which of the two comes first is up to timing).
    states = [s for i, (s, _) in enumerate(health) if i == 0 or health[i - 1][0] != s]
    assert states[:3] == ["online", "offline", "online"], health


async def test_a_stream_that_dies_right_after_it_opens_backs_off(tmp_path: Path) -> None:
    """A camera whose stream opens, gives a frame or two and drops (a flaky encoder, a
    session limit): the reader retried every ``reconnect_min_s`` for ever, because any frame
    at all counted as "it worked, retry soon". Each cycle was an online and an offline
    device-health record (MQTT, outbox to the cloud): ~8 records a second here, without end.
    Only a session that ran for the longest back-off counts as recovered now."""
    video = write_video(tmp_path / "short.avi", frames=2, fps=20)
    health: list = []
    cam = make_camera("file", health, path=str(video), loop=False, reconnect_min_s=0.1,
                      reconnect_max_s=2.0)
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        await asyncio.sleep(4.0)
    finally:
        await cam.stop()
    onlines = [r for s, r in health if s == "online"]
    # Back-off 0.1, 0.2, 0.4, 0.8, 1.6, 2 s: about 6 sessions in 4 s, not ~20.
    assert len(onlines) <= 8, (len(onlines), cam.reconnects)


async def test_rgbir_camera_keeps_stream_credentials_out_of_its_health(gst: bool) -> None:
    """A dual-sensor camera has no username/password keys, so its RTSP logins sit in the
    ``rgb``/``ir`` URLs. ``describe()`` put those URLs verbatim into the health reasons, which
    become standard device-health records (MQTT, synced to the cloud): the camera's admin
    password went out with every online/offline change. The rtsp driver redacts them."""
    port = free_port()
    server = GstRtspServer(port, fps=15).start()
    url = server.url.replace("rtsp://", "rtsp://admin:S3cret-pw@")
    health: list = []
    cam = make_camera("rgbir", health, rgb=url, ir=url, reconnect_min_s=0.2, stall_s=2.0)
    try:
        await cam.start()
        await wait_state(cam, "online", 20)
        server.stop()
        await wait_state(cam, "offline", 20)
    finally:
        await cam.stop()
        server.stop()
    reasons = " | ".join(r for _, r in health)
    assert "S3cret" not in reasons and "admin" not in reasons, reasons
    assert "127.0.0.1" in reasons  # still says which camera


async def test_a_reader_error_reconnects_instead_of_freezing_the_camera_online(
    tmp_path: Path,
) -> None:
    """A file camera fed through a named pipe (a vendor SDK writing its video into a FIFO):
    at the end of the video the looped source seeks back, which a pipe refuses. The error
    ended the reader thread: no more frames, no reconnect, and the camera stayed 'online'
    for good (no offline record, no repair ticket; the door's consumers just time out).
    Any error while reading now ends the session like a broken stream: offline, retry."""
    # Noise frames: ~1 MB, more than FFmpeg's read buffer, so the seek really hits the pipe.
    noise = [np.random.default_rng(i).integers(0, 255, (240, 320, 3), np.uint8) for i in range(20)]
    video = write_video(tmp_path / "v.avi", frames=20, fps=40, images=noise)
    fifo = tmp_path / "cam.fifo"
    os.mkfifo(fifo)

    def sdk_writes_once() -> threading.Thread:  # the SDK writes its video into the pipe
        def write() -> None:
            with contextlib.suppress(OSError), open(fifo, "wb") as f:  # reader gone: broken
                f.write(video.read_bytes())

        t = threading.Thread(target=write, daemon=True)
        t.start()
        return t

    writers = [sdk_writes_once()]
    health: list = []
    cam = make_camera("file", health, path=str(fifo), reconnect_min_s=0.1, reconnect_max_s=0.3)
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        await wait_state(cam, "offline", 5)  # the pass ended: stuck 'online' before
        writers.append(sdk_writes_once())
        await wait_state(cam, "online", 5)  # reopened: the next pass plays
        assert cam.reconnects >= 1
    finally:
        with contextlib.suppress(OSError):  # unblock a reader waiting for a writer
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        await cam.stop()
        for t in writers:
            with contextlib.suppress(OSError):  # unblock a writer waiting for a reader
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            t.join(3)
