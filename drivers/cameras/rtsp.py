"""Any RTSP (or HTTP/MJPEG) stream through OpenCV's bundled FFmpeg.

FFmpeg options are process-wide (``OPENCV_FFMPEG_CAPTURE_OPTIONS``), read when a capture
opens, so opening is serialised and the variable set just before. ``nobuffer``/``low_delay``
plus the reader thread that always keeps only the newest frame keep latency flat.

Decode cost: a door needs ~640 px wide frames (docs/access.md "Rush hour"); point ``url`` at
the camera's sub-stream when it has one (most IP cameras serve e.g. 640x360 beside the main
stream; the onvif driver picks it with ``min_width``). ``hw_decode = true`` asks FFmpeg for a
hardware decoder (VAAPI, V4L2 M2M ... whatever the box's FFmpeg build and kernel offer); where
there is none OpenCV decodes in software as before. Frames the door does not look at are
demuxed and decoded but not converted to BGR (drivers/cameras/base.py, ``want_every``).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import cv2
from pydantic import Field, field_validator

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.registry import register

_open_lock = threading.Lock()


class RtspOptions(CameraOptions):
    url: str  # rtsp://host:554/path, http://host/mjpeg
    username: str | None = None  # put into the URL at open; never logged
    password: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"  # tcp survives lossy links and NAT
    open_timeout_ms: int = Field(5000, ge=100, le=60000)
    read_timeout_ms: int = Field(5000, ge=100, le=60000)
    hw_decode: bool = False  # try a hardware decoder first (falls back to software)

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("rtsp", "rtsps", "http", "https"):
            raise ValueError("url must start with rtsp://, rtsps://, http:// or https://")
        return v


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    if not username:
        return url
    u = urlsplit(url)
    host = u.hostname or ""
    if u.port:
        host = f"{host}:{u.port}"
    auth = quote(username, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit((u.scheme, f"{auth}@{host}", u.path, u.query, u.fragment))


def redact(url: str) -> str:
    u = urlsplit(url)
    if "@" not in u.netloc:
        return url
    return urlunsplit((u.scheme, "***@" + u.netloc.rsplit("@", 1)[1], u.path, u.query, ""))


def open_stream(url: str, transport: str, open_ms: int, read_ms: int,
                hw_decode: bool = False) -> Source:
    opts = "fflags;nobuffer|flags;low_delay"
    if url.startswith("rtsp"):
        opts = f"rtsp_transport;{transport}|{opts}"
    with _open_lock:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = opts
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        if hw_decode:
            params += [cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_ANY]
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise OSError(f"cannot open stream {redact(url)}")
    return cap


@register("cameras", "rtsp")
class RtspCamera(CameraDriver):
    Options = RtspOptions
    options: RtspOptions

    def describe(self) -> str:
        return redact(self.options.url)

    def stream_url(self) -> str:
        o = self.options
        return with_credentials(o.url, o.username, o.password)

    def open_source(self) -> Source:
        o = self.options
        return open_stream(self.stream_url(), o.transport, o.open_timeout_ms, o.read_timeout_ms,
                           o.hw_decode)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "url": self.describe()}
