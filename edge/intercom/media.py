"""The door's WebRTC video track (aiortc, PyAV), apart from edge/intercom/rtc.py so that the
daemon loads aiortc, PyAV's FFmpeg and cryptography (~33 MB RSS, bench/rss.py) only when a
call rings, not at start: a box whose residents never take a call by phone never carries them.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack

VIDEO_CLOCK = 90000


class DoorVideo(MediaStreamTrack):
    """The door camera's newest frame, at ``fps`` (never a backlog; the same frame repeats
    if the camera is slower)."""

    kind = "video"

    def __init__(self, camera: Any, fps: float, width: int) -> None:
        super().__init__()
        self.camera, self.period, self.width = camera, 1.0 / fps, width
        self._t0: float | None = None
        self._n = 0
        self.sent = 0

    async def recv(self) -> av.VideoFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        else:
            self._n += 1
            wait = self._t0 + self._n * self.period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        f = self.camera.latest() or await self.camera.next_frame(-1, 2.0)
        img = f.image if f is not None else np.zeros((480, 640, 3), np.uint8)
        h, w = img.shape[:2]
        if w > self.width:
            import cv2

            img = cv2.resize(img, (self.width, int(h * self.width / w) // 2 * 2),
                             interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts = int(self._n * self.period * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.sent += 1
        return frame
