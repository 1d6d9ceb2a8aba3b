"""A USB (UVC) camera by its V4L2 index, e.g. 0 for /dev/video0."""

from __future__ import annotations

from typing import Any

import cv2
from pydantic import Field

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.registry import register


class UsbOptions(CameraOptions):
    index: int = Field(0, ge=0, le=63)
    width: int | None = Field(None, ge=16, le=7680)
    height: int | None = Field(None, ge=16, le=4320)
    fps: float | None = Field(None, gt=0, le=240)
    mjpeg: bool = True  # ask for MJPG: most UVC cameras give full fps at 720p only that way


@register("cameras", "usb")
class UsbCamera(CameraDriver):
    Options = UsbOptions
    options: UsbOptions

    def describe(self) -> str:
        return f"/dev/video{self.options.index}"

    def open_source(self) -> Source:
        o = self.options
        cap = cv2.VideoCapture(o.index, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise OSError(f"{self.describe()} not available")
        if o.mjpeg:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        settings: list[tuple[int, Any]] = [
            (cv2.CAP_PROP_FRAME_WIDTH, o.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, o.height),
            (cv2.CAP_PROP_FPS, o.fps),
        ]
        for prop, value in settings:
            if value is not None:
                cap.set(prop, value)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # latest frame, not a queue of old ones
        return cap
