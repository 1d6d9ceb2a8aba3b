"""A video file or a folder of images, looped: for the demo, tests and benchmarks.

Frames are paced at ``fps`` (or the file's own rate) so the file behaves like a live camera.
With ``loop = false`` the stream ends with the file, which then looks like a camera going
offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.registry import register

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class FileOptions(CameraOptions):
    path: Path  # a video file or a folder of images (sorted by name)
    fps: float = Field(0.0, ge=0, le=120)  # 0: the video's own rate (images: 10)
    loop: bool = True


class VideoLoop:
    def __init__(self, path: Path, loop: bool) -> None:
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise OSError(f"cannot open video {path}")
        self.loop = loop
        self.finished = False
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)

    def read(self) -> tuple[bool, Any]:
        ok, img = self.cap.read()
        if not ok and self.loop:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
        self.finished = not ok  # end of a file that does not loop: no point waiting
        return ok, img

    def release(self) -> None:
        self.cap.release()


class ImageFolder:
    def __init__(self, path: Path, loop: bool) -> None:
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise OSError(f"no images in {path}")
        self.images: list[np.ndarray] = []
        for f in files:  # decoded once: a looped folder must not cost a decode per frame
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot read image {f}")
            self.images.append(img)
        self.loop = loop
        self.finished = False
        self.i = 0

    def read(self) -> tuple[bool, Any]:
        if self.i >= len(self.images):
            if not self.loop:
                self.finished = True
                return False, None
            self.i = 0
        img = self.images[self.i]
        self.i += 1
        return True, img.copy()

    def release(self) -> None:
        self.images = []


@register("cameras", "file")
class FileCamera(CameraDriver):
    Options = FileOptions
    options: FileOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._native_fps = 0.0

    def describe(self) -> str:
        return str(self.options.path)

    def open_source(self) -> Source:
        path = self.options.path
        if path.is_dir():
            return ImageFolder(path, self.options.loop)
        if not path.exists():
            raise OSError(f"{path} does not exist")
        src = VideoLoop(path, self.options.loop)
        self._native_fps = src.fps
        return src

    def pace_fps(self) -> float:
        return self.options.fps or self._native_fps or 10.0
