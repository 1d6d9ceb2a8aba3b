"""A video file or a folder of images, looped: for the demo, tests and benchmarks.

Frames are paced at ``fps`` (or the file's own rate) so the file behaves like a live camera.
With ``loop = false`` the stream ends with the file, which then looks like a camera going
offline. A folder is looked at again each time it loops: frames dropped in (or a symlinked
folder swapped atomically, as the demo does) play from the next loop; a folder that vanished
or holds no images any more ends the stream (the camera goes offline and retries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.cameras.decode import AvVideo
from drivers.registry import register

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class FileOptions(CameraOptions):
    path: Path  # a video file or a folder of images (sorted by name)
    fps: float = Field(0.0, ge=0, le=120)  # 0: the video's own rate (images: 10)
    loop: bool = True
    decoder: str | None = None  # a named FFmpeg decoder to try first (drivers/cameras/decode.py)


def open_video(path: Path, loop: bool, decoder: str | None = None) -> AvVideo:
    """A video file as a camera source (decoded with PyAV, converted only when looked at:
    drivers/cameras/decode.py)."""
    return AvVideo(str(path), loop=loop, decoder=decoder)


def _folder_signature(path: Path) -> tuple:
    """What the folder holds now (names, sizes, times; the resolved path for a symlink)."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return (str(path.resolve()), tuple((f.name, *_stamp(f)) for f in files))


def _stamp(f: Path) -> tuple[int, int]:
    st = f.stat()
    return st.st_mtime_ns, st.st_size


class ImageFolder:
    def __init__(self, path: Path, loop: bool) -> None:
        self.path = path
        self.images: list[np.ndarray] = []
        self._sig: tuple = ()
        self._load()
        self.loop = loop
        self.finished = False
        self.i = 0

    def _load(self) -> None:
        sig = _folder_signature(self.path)
        if not sig[1]:
            raise OSError(f"no images in {self.path}")
        images = []
        for name, *_ in sig[1]:  # decoded once: a looped folder must not cost a decode per frame
            img = cv2.imread(str(Path(sig[0]) / name), cv2.IMREAD_COLOR)
            if img is None:
                raise OSError(f"cannot read image {self.path / name}")
            images.append(img)
        self.images, self._sig = images, sig

    def _reload_if_changed(self) -> bool:
        """At the end of a loop: pick up a changed folder; False if it is gone or empty."""
        try:
            if _folder_signature(self.path) != self._sig:
                self._load()
        except OSError:
            return False
        return True

    def read(self) -> tuple[bool, Any]:
        if self.i >= len(self.images):
            if not self.loop or not self._reload_if_changed():
                self.finished = True
                return False, None
            self.i = 0
        img = self.images[self.i]
        self.i += 1
        return True, img  # read-only once published: consumers share it, no copy

    def grab(self) -> bool:
        ok, _ = self.read()
        return ok

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
        src = open_video(path, self.options.loop, self.options.decoder)
        self._native_fps = src.fps
        return src

    def pace_fps(self) -> float:
        return self.options.fps or self._native_fps or 10.0
