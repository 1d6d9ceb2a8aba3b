"""What an idle door camera (nobody in view) costs: CPU time per second of video, new vs today.

    .venv/bin/python bench/camera_idle.py [--rounds 3] [--live-seconds 10] [--live-cameras 2]

Two parts, each alternating the designs A B B A (new, today, today, new, ...) in one run so a
neighbour's load falls on both alike:

1. **fixed work** (robust on a shared machine): one camera's idle recording decoded frame by
   frame as fast as the CPU allows, each frame through the idle door's per-frame work (the
   motion gate; edge/access/service.py ``_watch_tracked`` while nobody is there). CPU seconds
   (this process, all threads: FFmpeg's decoder threads count) per second of video at 15 fps.
   *today*: OpenCV ``VideoCapture.read()`` (decode + BGR conversion) and the gate on BGR with
   its cv2.GaussianBlur (``todays_code``);
   *new*: the file/rtsp drivers' PyAV source (drivers/cameras/decode.py) and the gate on the
   decoder's luma plane (``MotionGate.score_frame``), nothing converted.
   Videos: ``flat`` = bench/rush.py's idle hallway (one flat colour, mp4v: almost nothing to
   decode, the figure docs/access.md has quoted so far); ``camera`` = a hallway with texture
   and sensor noise (sigma 2 grey levels, new every frame) in H.264 at ~2 Mbit/s, GOP 30, no
   B-frames, like an IP camera's main stream; ``substream`` = the same at 640x360, 0.5 Mbit/s.
2. **live** (the real thing, noisier): the real box (edge.daemon, the access engine's door
   loops, the camera reader threads) with ``--live-cameras`` idle ``file`` cameras playing each
   recording (``--live-videos``) at 15 fps, via bench/rush.py ``run_point``; CPU per second of
   video above the box without cameras. *today* = a ``file`` camera reading with OpenCV as
   before this change (``IdleOpencvCamera`` below, the old VideoLoop) and the old blur.

Prints readable lines, then one JSON object on the LAST line. Check ``loadavg`` in it: on a
loaded machine the fixed-work figures hold up, the live ones less so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from drivers.cameras.base import Frame, Source  # noqa: E402
from drivers.cameras.decode import AvVideo  # noqa: E402
from drivers.cameras.file import FileCamera  # noqa: E402
from drivers.registry import register  # noqa: E402
from edge.access import motion, synthetic  # noqa: E402
from edge.access.motion import MotionGate  # noqa: E402
from tests.drivers.cameras.peers import write_h264  # noqa: E402

FPS = 15


# --- recordings ------------------------------------------------------------------------------


def camera_scene(size: tuple[int, int], frames: int, seed: int = 0) -> list[np.ndarray]:
    """An empty hallway as a camera sees it: texture that stays, sensor noise that does not."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = synthetic.hallway(size).astype(np.float32)
    texture = cv2.GaussianBlur(rng.normal(0, 25, (h, w, 3)).astype(np.float32), (0, 0), 3)
    ramp = np.linspace(-30, 30, w, dtype=np.float32)[None, :, None]  # light falling off
    scene = base + texture + ramp
    return [np.clip(scene + rng.normal(0, 2, scene.shape), 0, 255).astype(np.uint8)
            for _ in range(frames)]


def write_mp4v(path: Path, frames: list[np.ndarray]) -> Path:
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (w, h))
    for f in frames:
        wr.write(f)
    wr.release()
    return path


def recordings(folder: Path) -> dict[str, Path]:
    return {
        "flat_720p_mp4v": write_mp4v(folder / "flat.mp4", [synthetic.hallway((1280, 720))] * 30),
        "camera_720p_h264": write_h264(folder / "cam720.mp4", camera_scene((1280, 720), 60),
                                       FPS, 2_000_000),
        "substream_640x360_h264": write_h264(folder / "cam360.mp4",
                                             camera_scene((640, 360), 60), FPS, 500_000),
    }


# --- today's reader (before drivers/cameras/decode.py), for the side-by-side ------------------


class OpencvVideoLoop:
    """The file camera's source as it was: OpenCV decodes and converts every frame to BGR."""

    def __init__(self, path: Path, loop: bool = True) -> None:
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise OSError(f"cannot open video {path}")
        self.loop, self.finished = loop, False
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> tuple[bool, Any]:
        ok, img = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        self.finished = not ok
        return ok, img

    def grab(self) -> bool:
        ok = self.cap.grab()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok = self.cap.grab()
        self.finished = not ok
        return ok

    def release(self) -> None:
        self.cap.release()


@register("cameras", "idle-opencv-file")
class IdleOpencvCamera(FileCamera):
    """A ``file`` camera reading as before this change (the live part's *today*)."""

    def open_source(self) -> Source:
        src = OpencvVideoLoop(self.options.path, self.options.loop)
        self._native_fps = src.fps
        return src


@contextlib.contextmanager
def todays_code(design: str) -> Iterator[None]:
    """For *today*: the motion gate's blur as it was (cv2.GaussianBlur, which wakes OpenCV's
    worker threads on every idle frame); *new* runs the code as it is."""
    if design != "today":
        yield
        return
    saved = motion._blur3
    motion._blur3 = lambda grey: cv2.GaussianBlur(grey, (3, 3), 0)
    try:
        yield
    finally:
        motion._blur3 = saved


# --- 1. fixed work ---------------------------------------------------------------------------


def replay(video: Path, design: str, loops: int) -> dict[str, Any]:
    """``loops`` passes over ``video``: decode + the idle door's motion gate per frame."""
    with todays_code(design):
        return _replay(video, design, loops)


def _replay(video: Path, design: str, loops: int) -> dict[str, Any]:
    gate = MotionGate(strided=True)
    moving = frames = converted = 0
    src = OpencvVideoLoop(video, loop=False) if design == "today" else AvVideo(str(video))
    c0 = time.process_time()
    for i in range(loops):
        if i:
            src.release()
            src = (OpencvVideoLoop(video, loop=False) if design == "today"
                   else AvVideo(str(video)))
        while True:
            ok, img = src.read()
            if not ok:
                break
            frames += 1
            if isinstance(img, np.ndarray):  # today: the reader converted it already
                f = Frame(img, frames, 0.0)
            else:
                f = Frame(None, frames, 0.0, picture=img)
            moving += gate.score_frame(f) >= 0.01
            converted += f.converted
    cpu = time.process_time() - c0
    src.release()
    return {"design": design, "video_s": round(frames / FPS, 1), "cpu_s": round(cpu, 3),
            "cpu_pct_of_one_core": round(cpu / (frames / FPS) * 100, 2),
            "ms_per_frame": round(cpu / frames * 1000, 3),
            "frames_converted_to_bgr": converted, "frames_with_motion": int(moving)}


def abba(n: int) -> list[str]:
    order: list[str] = []
    for i in range(n):
        order += ["new", "today"] if i % 2 == 0 else ["today", "new"]
    return order


def fixed_work(videos: dict[str, Path], rounds: int, loops: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, video in videos.items():
        runs: dict[str, list[dict]] = {"new": [], "today": []}
        replay(video, "new", 1)  # warm caches, codecs
        replay(video, "today", 1)
        for design in abba(2 * rounds):
            runs[design].append(replay(video, design, loops))
        out[name] = {
            d: {"cpu_pct_of_one_core": round(statistics.median(
                r["cpu_pct_of_one_core"] for r in rs), 2),
                "runs": [r["cpu_pct_of_one_core"] for r in rs],
                "ms_per_frame": round(statistics.median(r["ms_per_frame"] for r in rs), 3),
                "frames_converted_to_bgr": rs[-1]["frames_converted_to_bgr"],
                "frames_with_motion": rs[-1]["frames_with_motion"],
                "video_s": rs[-1]["video_s"]}
            for d, rs in runs.items()}
        n, t = out[name]["new"], out[name]["today"]
        print(f"fixed work {name}: new {n['cpu_pct_of_one_core']:.2f} % ({n['runs']}) vs today "
              f"{t['cpu_pct_of_one_core']:.2f} % ({t['runs']}) of one core; ms/frame "
              f"{n['ms_per_frame']:.3f} vs {t['ms_per_frame']:.3f}; frames converted "
              f"{n['frames_converted_to_bgr']} vs {t['frames_converted_to_bgr']}")
    return out


# --- 2. live ---------------------------------------------------------------------------------


async def live(video: Path, cameras: int, seconds: float, rounds: int) -> dict[str, Any]:
    from bench import rush
    from edge.faces import weights
    from edge.faces.config import FacesConfig
    from edge.faces.pipeline import FacePipeline

    pipeline = FacePipeline(FacesConfig(), weights.default_model_dir())
    out: dict[str, Any] = {"cameras": cameras, "seconds": seconds, "video": video.name}
    try:
        with tempfile.TemporaryDirectory(prefix="qilu-idle-") as tmp_s:
            tmp = Path(tmp_s)
            videos = {f"cam-{i}": (video, {}) for i in range(cameras)}
            floor = await rush.run_point(tmp, pipeline, videos, 0, False, seconds)
            base = floor["process_cpu_pct"]
            out["box_without_cameras_cpu_pct"] = base
            runs: dict[str, list[dict]] = {"new": [], "today": []}
            for design in abba(2 * rounds):
                kind = "file" if design == "new" else "idle-opencv-file"
                with todays_code(design):
                    p = await rush.run_point(tmp, pipeline, videos, cameras, False, seconds,
                                             idle_video=video, camera_type=kind)
                rush._cpu_figures(p, base, cameras)
                runs[design].append(p)
                print(f"live {video.name} {design}: {p['cpu_per_camera_second_pct']} % of a core "
                      "per camera "
                      f"(wall {p['cpu_per_busy_camera_pct']} %), realtime {p['realtime_share']}, "
                      f"load {p['loadavg_start']}->{p['loadavg_end']}")
            for d, ps in runs.items():
                out[d] = {
                    "cpu_per_camera_pct": round(statistics.median(
                        p["cpu_per_camera_second_pct"] for p in ps), 2),
                    "runs": [p["cpu_per_camera_second_pct"] for p in ps],
                    "realtime_share": [p["realtime_share"] for p in ps],
                    "noisy": any(p["noisy"] for p in ps),
                }
    finally:
        pipeline.close()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3, help="A B B A pairs per design")
    ap.add_argument("--loops", type=int, default=10, help="passes over each recording")
    ap.add_argument("--live-seconds", type=float, default=10.0)
    ap.add_argument("--live-cameras", type=int, default=2)
    ap.add_argument("--live-rounds", type=int, default=1)
    ap.add_argument("--live-videos",
                    default="flat_720p_mp4v,camera_720p_h264,substream_640x360_h264")
    ap.add_argument("--no-live", action="store_true", help="only the fixed-work part")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    res: dict[str, Any] = {"cpus": os.cpu_count(), "fps": FPS,
                           "loadavg_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="qilu-idle-rec-") as tmp:
        videos = recordings(Path(tmp))
        res["fixed_work"] = fixed_work(videos, args.rounds, args.loops)
        if not args.no_live:
            res["live"] = {name: await live(videos[name], args.live_cameras, args.live_seconds,
                                            args.live_rounds)
                           for name in args.live_videos.split(",")}
    fw = res["fixed_work"]
    res["targets_met"] = {
        "idle_720p_le_2pct_fixed_work": fw["camera_720p_h264"]["new"]["cpu_pct_of_one_core"] <= 2,
        "idle_720p_flat_le_2pct_fixed_work":
            fw["flat_720p_mp4v"]["new"]["cpu_pct_of_one_core"] <= 2,
    }
    for name, lv in res.get("live", {}).items():
        res["targets_met"][f"{name}_le_2pct_live"] = lv["new"]["cpu_per_camera_pct"] <= 2
    res["loadavg_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    asyncio.run(main())
