"""A dual-sensor door camera: a colour sensor and an infrared sensor side by side, as on most
face terminals. ``type = "rgbir"``.

Each frame carries both images (``Frame.ir``); the access engine asks the face pipeline to find
the face in the IR frame too: a photo on a phone or tablet screen shows no face in IR (the
screen's light has none), so a face seen only in colour is refused as a presentation attack.
The two sensors are read in step and assumed registered (same field of view; the IR image is
scaled to the colour one's size when they differ).

    [[cameras]]
    id = "door-1-cam"
    type = "rgbir"
    rgb = "rtsp://192.0.2.10/ch1"      # a folder, a video file, rtsp:// URL or usb:N
    ir = "rtsp://192.0.2.10/ch2"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.cameras.file import ImageFolder, open_video
from drivers.cameras.rtsp import open_stream, redact
from drivers.registry import register


class RgbIrOptions(CameraOptions):
    rgb: str = Field(min_length=1)  # the colour sensor: folder, video file, rtsp:// URL, usb:N
    ir: str = Field(min_length=1)  # the infrared sensor, the same forms
    fps: float = Field(0.0, ge=0, le=120)  # pace for files and folders (0: 10)
    loop: bool = True  # files and folders


class _Capture:
    def __init__(self, cap: cv2.VideoCapture, what: str) -> None:
        if not cap.isOpened():
            raise OSError(f"cannot open {what}")
        self.cap = cap

    def read(self) -> tuple[bool, Any]:
        return self.cap.read()

    def release(self) -> None:
        self.cap.release()


def open_one(spec: str, loop: bool) -> Source:
    if spec.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return open_stream(spec, "tcp", 5000, 5000)  # PyAV, as the rtsp driver
    if spec.startswith("usb:"):
        return _Capture(cv2.VideoCapture(int(spec[4:])), spec)
    path = Path(spec)
    if path.is_dir():
        return ImageFolder(path, loop)
    if not path.exists():
        raise OSError(f"{path} does not exist")
    return open_video(path, loop)


class PairSource:
    """Reads the two sensors in step; the IR frame of the last read waits in ``last_ir``."""

    def __init__(self, rgb: Source, ir: Source) -> None:
        self.rgb, self.ir = rgb, ir
        self.last_ir: np.ndarray | None = None
        self.finished = False

    def read(self) -> tuple[bool, Any]:
        ok, img = self.rgb.read()
        ok_ir, ir = self.ir.read()
        self.finished = bool(getattr(self.rgb, "finished", False)
                             or getattr(self.ir, "finished", False))
        if not ok or img is None or not ok_ir or ir is None:
            return False, None
        if not isinstance(ir, np.ndarray):  # a decoded video picture (decode.py)
            ir = ir.bgr()
        if ir.ndim == 3:
            ir = cv2.cvtColor(ir, cv2.COLOR_BGR2GRAY)
        h, w = img.shape[:2] if isinstance(img, np.ndarray) else (img.height, img.width)
        if ir.shape[:2] != (h, w):
            ir = cv2.resize(ir, (w, h), interpolation=cv2.INTER_AREA)
        self.last_ir = ir
        return True, img

    def release(self) -> None:
        self.rgb.release()
        self.ir.release()


@register("cameras", "rgbir")
class RgbIrCamera(CameraDriver):
    Options = RgbIrOptions
    options: RgbIrOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pair: PairSource | None = None

    def describe(self) -> str:
        # Health reasons become records that leave the box: never the URLs' logins.
        return f"rgb {redact(self.options.rgb)} + ir {redact(self.options.ir)}"

    def open_source(self) -> Source:
        rgb = open_one(self.options.rgb, self.options.loop)
        try:
            ir = open_one(self.options.ir, self.options.loop)
        except Exception:
            rgb.release()
            raise
        self._pair = PairSource(rgb, ir)
        return self._pair

    def pace_fps(self) -> float:
        live = self.options.rgb.startswith(("rtsp", "http", "usb:"))
        return 0.0 if live else (self.options.fps or 10.0)

    def _publish(self, image: np.ndarray, ir: np.ndarray | None = None) -> None:
        pair = self._pair
        super()._publish(image, ir if ir is not None else (pair.last_ir if pair else None))
