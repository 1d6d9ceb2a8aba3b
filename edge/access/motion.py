"""Motion gate: a cheap check on a tiny grey copy of each frame, so an empty hallway does not
pay for face detection."""

from __future__ import annotations

import cv2
import numpy as np

SIZE = (80, 60)
PIXEL_DELTA = 18  # grey levels; below this a change is sensor noise or compression


class MotionGate:
    def __init__(self) -> None:
        self._prev: np.ndarray | None = None

    def score(self, frame_bgr: np.ndarray) -> float:
        """Share of the small frame's pixels that changed since the last call (0..1)."""
        small = cv2.resize(frame_bgr, SIZE, interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (3, 3), 0)
        prev, self._prev = self._prev, grey
        if prev is None:
            return 1.0  # first frame: look once
        return float(np.count_nonzero(cv2.absdiff(grey, prev) > PIXEL_DELTA)) / grey.size
