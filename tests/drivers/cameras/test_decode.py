"""Cameras decode with PyAV and convert to BGR only when a consumer looks (decode.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.cameras.base import Frame
from drivers.cameras.decode import AvVideo
from drivers.cameras.rtsp import open_stream
from edge.access import synthetic
from edge.access.motion import MotionGate
from edge.faces import weights
from edge.faces.config import FacesConfig
from edge.faces.pipeline import FacePipeline
from tests.drivers.cameras.peers import write_h264
from tests.drivers.cameras.test_cameras import make_camera, wait_state

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"
SIZE = (640, 360)


def hallway(n: int, seed: int = 0) -> list[np.ndarray]:
    """An empty hallway with texture and fresh sensor noise every frame, as cameras see it."""
    rng = np.random.default_rng(seed)
    base = synthetic.hallway(SIZE).astype(np.float32)
    base += cv2.GaussianBlur(rng.normal(0, 25, base.shape).astype(np.float32), (0, 0), 3)
    return [np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
            for _ in range(n)]


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    p = FacePipeline(FacesConfig(), weights.default_model_dir())
    yield p
    p.close()


def frames_of(video: Path) -> list[Frame]:
    src = AvVideo(str(video))
    out = []
    while True:
        ok, pic = src.read()
        if not ok:
            break
        out.append(Frame(None, len(out) + 1, 0.0, picture=pic))
    src.release()
    return out


async def test_file_camera_delivers_yuv_frames_converted_only_when_looked_at(
        tmp_path: Path) -> None:
    video = write_h264(tmp_path / "idle.mp4", hallway(20), fps=20)
    cam = make_camera("file", path=str(video))
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        got, last, t0 = [], -1, time.monotonic()
        while time.monotonic() - t0 < 1.5:
            f = await cam.next_frame(last, 2.0)
            assert f is not None
            got.append(f)
            last = f.seq
        assert got[-1].seq > 20  # looped past the 20-frame file, at its own 20 fps
        assert 15 <= (cam.fps or 0) <= 25, cam.fps  # as test_file_video_loops_at_its_rate
        assert (cam.width, cam.height) == SIZE and cam.status()["decoder"] == "h264"
        # Nobody asked for BGR: no frame was converted; the luma plane is there for free.
        assert not any(f.converted for f in got)
        y, limited = got[-1].luma
        assert y.shape == (360, 640) and limited
        # Asked for, a frame converts once, read-only, to the pixels OpenCV's read() gives.
        f = got[-1]
        img = f.image
        assert f.converted and f.image is img and not img.flags.writeable
        # Someone is looking now: the reader converts the next frames itself (off the event
        # loop), until nobody has looked for a while (EAGER_S).
        nxt = await cam.next_frame(cam.latest().seq, 2.0)
        nxt = await cam.next_frame(nxt.seq, 2.0)  # surely read from the source after the look
        assert nxt is not None and nxt.converted
        cap = cv2.VideoCapture(str(video))
        cap.set(cv2.CAP_PROP_POS_FRAMES, (f.seq - 1) % 20)
        ok, ref = cap.read()
        cap.release()
        assert ok and img.shape == ref.shape and np.array_equal(img, ref)
        await asyncio.sleep(0.8)
        quiet = await cam.next_frame(-1, 2.0)
        assert quiet is not None and not quiet.converted
    finally:
        await cam.stop()


def test_idle_check_on_luma_wakes_on_the_frame_a_face_appears(
        tmp_path: Path, pipeline: FacePipeline) -> None:
    """The door's motion gate on the decoder's luma plane decides as it did on BGR: noise
    does not wake it, the first frame with a person does, and that frame's face is found."""
    empty = hallway(20, seed=1)
    person = cv2.imread(str(FACES / "obama.jpg"))
    assert person is not None
    face = pipeline.detector.detect(person)[0]
    arrive = 12
    frames = empty[:arrive] + [
        np.where(p.sum(2, keepdims=True) != synthetic.hallway(SIZE).sum(2, keepdims=True),
                 p, e)
        for p, e in zip([synthetic.door_frame(person, face, 150, SIZE)] * 8, empty[arrive:],
                        strict=True)]
    video = write_h264(tmp_path / "arrive.mp4", frames, bitrate=1_500_000)
    by_luma, by_bgr = MotionGate(strided=True), MotionGate(strided=True)
    woke_luma, woke_bgr = [], []
    for i, f in enumerate(frames_of(video)):
        if by_luma.score_frame(f) >= 0.01 and i:
            woke_luma.append(i)
            assert not f.converted  # the gate read luma, not a converted frame
        if by_bgr.score(f.image) >= 0.01 and i:
            woke_bgr.append(i)
    assert woke_luma[0] == woke_bgr[0] == arrive, (woke_luma, woke_bgr)
    # The first look after the wake-up sees the person on that very frame.
    first = frames_of(video)[arrive]
    assert len(pipeline.detector.detect(np.ascontiguousarray(first.image))) == 1


def test_hardware_decoder_falls_back_to_software(tmp_path: Path) -> None:
    """No V4L2 M2M device here: the named decoder does not open and FFmpeg's software
    decoder takes over; an explicitly named software decoder runs and gives the same pixels."""
    video = write_h264(tmp_path / "v.mp4", hallway(5))
    pixels = {}
    for name in ("h264_v4l2m2m", "h264", None):
        src = AvVideo(str(video), decoder=name, hw_decode=name is None)
        assert src.decoder_used == "h264"
        ok, pic = src.read()
        assert ok
        pixels[name] = pic.bgr()
        src.release()
    assert np.array_equal(pixels["h264"], pixels[None])
    assert np.array_equal(pixels["h264_v4l2m2m"], pixels[None])


def test_stream_that_cannot_open_names_it_without_the_password() -> None:
    with pytest.raises(OSError) as e:
        open_stream("rtsp://admin:s3cret@127.0.0.1:9/cam", "tcp", 1000, 1000)
    assert "s3cret" not in str(e.value) and "***@127.0.0.1:9/cam" in str(e.value)


def test_motion_gate_blur_is_opencvs_bit_for_bit() -> None:
    """The gate's numpy 3x3 blur (no OpenCV worker threads woken per idle frame) gives
    exactly cv2.GaussianBlur's pixels, so the motion rule is unchanged."""
    from edge.access.motion import _blur3

    rng = np.random.default_rng(3)
    for i in range(50):
        img = rng.integers(0, 256, (60, 80), dtype=np.uint8)
        if i % 2:
            img = cv2.GaussianBlur(img, (0, 0), 2)
        assert np.array_equal(_blur3(img), cv2.GaussianBlur(img, (3, 3), 0))


async def test_http_mjpeg_stream_through_the_rtsp_driver() -> None:
    """An HTTP MJPEG camera (multipart/x-mixed-replace, served here by aiohttp on loopback)
    is read by the rtsp driver through PyAV; its frames are full-range luma for the gate."""
    from aiohttp import web

    from tests.conftest import free_port

    frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in hallway(5, seed=4)]

    async def mjpeg(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        for i in range(300):  # bounded: 20 s at 15 fps
            jpg = frames[i % len(frames)]
            await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                             + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
            await asyncio.sleep(1 / 15)
        return resp

    app = web.Application()
    app.router.add_get("/mjpeg", mjpeg)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    cam = make_camera("rtsp", url=f"http://127.0.0.1:{port}/mjpeg")
    try:
        await cam.start()
        await wait_state(cam, "online", 10)
        f = await cam.next_frame(-1, 3.0)
        f = await cam.next_frame(f.seq, 3.0)
        assert f is not None and cam.status()["decoder"] == "mjpeg"
        y, limited = f.luma
        assert y.shape == (360, 640) and not limited  # JPEG: full range, no rescaling
        assert not f.converted and f.image.shape == (360, 640, 3)
    finally:
        await cam.stop()
        await runner.cleanup()


def walk_in(n: int, arrive: int) -> list[np.ndarray]:
    """``arrive`` frames of an empty (noisy) hallway, then someone walking across it."""
    frames = hallway(n, seed=5)
    for i in range(arrive, n):
        x = 40 + (i - arrive) * 25
        cv2.rectangle(frames[i], (x, 80), (x + 90, 330), (20, 20, 20), -1)  # dark coat
    return frames


async def test_idle_camera_wakes_its_waiter_only_for_motion(tmp_path: Path) -> None:
    """An idle door waits with ``next_frame(..., motion=t)``: the reader thread runs the gate,
    so the quiet frames are never handed to the event loop, while every frame of someone
    walking in is, starting with the very frame they appear on."""
    n, arrive = 30, 18
    video = write_h264(tmp_path / "walk.mp4", walk_in(n, arrive), fps=30)
    cam = make_camera("file", path=str(video))
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        handed, last, t0 = [], -1, time.monotonic()
        first = cam.status()["frames"]
        while time.monotonic() - t0 < 2.5:  # bounded: ~2.5 loops of the 1 s file
            f = await cam.next_frame(last, 2.0, motion=0.01)
            assert f is not None
            handed.append(f)
            last = f.seq
        published = cam.status()["frames"] - first
    finally:
        await cam.stop()
    index = [(f.seq - 1) % n for f in handed]  # the file's frame each one is
    moving = {0, *range(arrive, n)}  # the walk, and the jump back to empty at the loop
    assert published >= 60 and len(handed) < published * 0.6, (len(handed), published)
    # Not one quiet frame reached the loop, after the first the gate scored (1.0: nothing to
    # compare it with, so a door looks once, as before).
    assert handed[0].motion == 1.0
    handed, index = handed[1:], index[1:]
    assert all(i in moving for i in index), index
    assert all(f.motion is not None and f.motion >= 0.01 for f in handed)
    assert not any(f.converted for f in handed)  # the gate read luma only
    # Each pass of the walk is handed from the frame the person appears on, no later.
    # (after the loop's jump back to the empty hallway, frame 0, the next one handed over)
    after_empty = [index[k + 1] for k in range(len(index) - 1) if index[k] == 0]
    assert len(after_empty) >= 2 and set(after_empty) == {arrive}, index


async def test_quiet_camera_hands_a_heartbeat_only(tmp_path: Path) -> None:
    """Nothing moves: the waiter gets the latest frame once per ``limit_s`` (liveness), while
    a consumer that waits for any frame still gets every one."""
    video = write_h264(tmp_path / "quiet.mp4", hallway(30, seed=6), fps=30)
    cam = make_camera("file", path=str(video))
    await cam.start()
    try:
        await wait_state(cam, "online", 5)
        f = await cam.next_frame(-1, 2.0, motion=0.01)  # turns the gate on; scores 1.0
        assert f is not None
        quiet, last, t0 = [], f.seq, time.monotonic()
        while time.monotonic() - t0 < 1.3:  # bounded
            f = await cam.next_frame(last, 0.4, motion=0.01)
            if f is not None:
                quiet.append(f)
                last = f.seq
        every, t0 = [], time.monotonic()
        while time.monotonic() - t0 < 0.5:
            f = await cam.next_frame(last, 2.0)
            assert f is not None
            every.append(f)
            last = f.seq
    finally:
        await cam.stop()
    assert 2 <= len(quiet) <= 4, [q.motion for q in quiet]  # ~1.3 s / 0.4 s heartbeats
    assert all(q.motion is not None and q.motion < 0.01 for q in quiet)
    assert len(every) >= 10  # 30 fps: every frame to a plain waiter
