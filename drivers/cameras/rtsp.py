"""Any RTSP (or HTTP/MJPEG) stream, decoded with FFmpeg through PyAV.

FFmpeg options go with each stream (drivers/cameras/decode.py). ``nobuffer`` plus the reader
thread that always keeps only the newest frame keep latency flat; frames stay YUV until a
consumer reads ``Frame.image`` (an idle door reads only luma).

Decode cost: a door needs ~640 px wide frames (docs/access.md "Rush hour"); point ``url`` at
the camera's sub-stream when it has one (most IP cameras serve e.g. 640x360 beside the main
stream; the onvif driver picks it with ``min_width``). ``hw_decode = true`` tries the box's
hardware decoders (Rockchip MPP, V4L2 M2M: decode.py) and falls back to software; ``decoder``
names one.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, field_validator

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.cameras.decode import AvVideo
from drivers.registry import register


class RtspOptions(CameraOptions):
    url: str  # rtsp://host:554/path, http://host/mjpeg
    username: str | None = None  # put into the URL at open; never logged
    password: str | None = None
    transport: Literal["tcp", "udp"] = "tcp"  # tcp survives lossy links and NAT
    open_timeout_ms: int = Field(5000, ge=100, le=60000)
    read_timeout_ms: int = Field(5000, ge=100, le=60000)
    hw_decode: bool = False  # try the box's hardware decoders first (decode.py; else software)
    decoder: str | None = None  # a named FFmpeg decoder to try first, e.g. "h264_rkmpp"

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
                hw_decode: bool = False, decoder: str | None = None) -> Source:
    """The stream through PyAV (drivers/cameras/decode.py): frames stay YUV until a consumer
    reads ``Frame.image``; FFmpeg's options go with this stream only."""
    # (The decoder's low_delay flag broke ipycam's H.264 stream, and without B-frames, as
    # cameras send, the decoder holds nothing back anyway.)
    opts = {"fflags": "nobuffer"}
    if url.startswith("rtsp"):
        opts["rtsp_transport"] = transport
    try:
        return AvVideo(url, options=opts, timeout=(open_ms / 1000, read_ms / 1000),
                       decoder=decoder, hw_decode=hw_decode, label=redact(url))
    except OSError as e:  # FFmpeg's own message may quote the URL: never the credentials
        raise OSError(str(e).replace(url, redact(url))) from None


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
                           o.hw_decode, o.decoder)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "url": self.describe()}
