"""Motion gate: a cheap check on a tiny grey copy of each frame, so an empty hallway does not
pay for face detection.

It lives with the camera drivers because the camera's reader thread runs it on each frame
(on the decoder's luma plane) once a consumer waits for motion
(``CameraDriver.next_frame(..., motion=threshold)``): an idle door's event loop then wakes
only when something moved, not for every frame (docs/cameras.md). edge/access/motion.py
re-exports it for the door code."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

SIZE = (80, 60)
PIXEL_DELTA = 18  # grey levels; below this a change is sensor noise or compression
# Limited-range luma (16-235) to full-range grey, as the decoder's BGR conversion scales it.
_FULL_RANGE = np.clip((np.arange(256) - 16) * 255 / 219 + 0.5, 0, 255).astype(np.uint8)


class MotionGate:
    """``strided``: look at every n-th pixel of a large frame first (a view, no copy), then
    average down: a third of the cost on 1280x720 (0.26 vs 0.77 ms), which an idle door pays
    on every frame. The old full-area average stays for the old door path."""

    def __init__(self, strided: bool = False) -> None:
        self._prev: np.ndarray | None = None
        self.strided = strided

    def score(self, frame_bgr: np.ndarray) -> float:
        """Share of the small frame's pixels that changed since the last call (0..1)."""
        small = cv2.resize(self._thin(frame_bgr), SIZE, interpolation=cv2.INTER_AREA)
        return self._compare(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))

    def score_frame(self, frame: Any) -> float:
        """:meth:`score` of a camera Frame, from the decoder's luma plane when it has one
        (drivers/cameras/base.py): an idle door then never converts a frame to BGR."""
        luma = getattr(frame, "luma", None)
        if luma is None:  # (convert(): the gate's read is not a consumer's look)
            return self.score(frame.convert() if hasattr(frame, "convert") else frame.image)
        y, limited = luma
        small = cv2.resize(self._thin(y), SIZE, interpolation=cv2.INTER_AREA)
        if limited:  # video range 16-235 -> the 0-255 grey a BGR frame gives: same threshold
            small = cv2.LUT(small, _FULL_RANGE)
        return self._compare(small)

    def _thin(self, img: np.ndarray) -> np.ndarray:
        if not self.strided:
            return img
        h, w = img.shape[:2]
        step = max(1, min(h // (SIZE[1] * 2), w // (SIZE[0] * 2)))
        return img[::step, ::step]

    def _compare(self, small_grey: np.ndarray) -> float:
        grey = _blur3(small_grey)
        prev, self._prev = self._prev, grey
        if prev is None:
            return 1.0  # first frame: look once
        return float(np.count_nonzero(cv2.absdiff(grey, prev) > PIXEL_DELTA)) / grey.size


def _blur3(grey: np.ndarray) -> np.ndarray:
    """``cv2.GaussianBlur(grey, (3, 3), 0)`` bit for bit (kernel 1-2-1, border reflect-101),
    in numpy: on an 80x60 image OpenCV's call wakes its worker threads, whose spinning cost
    ~0.6 ms of CPU per idle frame (bench/camera_idle.py) for a 0.04 ms job."""
    p = np.pad(grey.astype(np.uint16), 1, mode="reflect")
    rows = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    return ((rows[:-2] + 2 * rows[1:-1] + rows[2:] + 8) >> 4).astype(np.uint8)
