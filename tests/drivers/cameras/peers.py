"""Camera peers for tests and benchmarks: a GStreamer RTSP server process and test videos."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import stop_process, wait_port

GST_SERVER = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def gst_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0');"
         "from gi.repository import GstRtspServer"],
        capture_output=True,
        timeout=20,
    )
    return probe.returncode == 0


class GstRtspServer:
    """rtsp://127.0.0.1:PORT/cam served by gst-rtsp-server in its own process."""

    def __init__(self, port: int, file: Path | None = None, size: str = "640x480", fps: int = 15):
        self.port = port
        self.url = f"rtsp://127.0.0.1:{port}/cam"
        args = [SYSTEM_PYTHON, str(GST_SERVER), str(port), "--size", size, "--fps", str(fps)]
        if file is not None:
            args += ["--file", str(file)]
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self) -> GstRtspServer:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_port(self.port, 15)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def write_video(path: Path, frames: int = 30, size: tuple[int, int] = (320, 240), fps: int = 15,
                images: list[np.ndarray] | None = None) -> Path:
    """A small MJPG .avi: a moving square, or the given images in order."""
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert out.isOpened(), "OpenCV cannot write MJPG video"
    for i in range(frames):
        if images is not None:
            img = cv2.resize(images[i % len(images)], (w, h))
        else:
            img = np.full((h, w, 3), 40, np.uint8)
            x = (i * 7) % (w - 40)
            cv2.rectangle(img, (x, 60), (x + 40, 100), (0, 200, 255), -1)
        out.write(img)
    out.release()
    return path


def write_h264(path: Path, frames: list[np.ndarray], fps: int = 15, bitrate: int = 1_000_000,
               gop: int = 30) -> Path:
    """H.264 in mp4 as IP cameras send it (no B-frames, a key frame every ``gop`` frames),
    encoded with PyAV's libx264."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.bit_rate = bitrate
        s.options = {"g": str(gop), "bf": "0", "preset": "veryfast"}
        for f in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="bgr24")))
        out.mux(s.encode())
    return path


def ffmpeg_available() -> bool:
    return shutil.which("ffmpeg") is not None


def wait(cond, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
