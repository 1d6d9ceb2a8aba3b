"""Video files and network streams decoded with PyAV (FFmpeg), converted only when asked.

OpenCV's ``VideoCapture.read()`` turns every decoded frame into BGR. An idle door looks at
every frame only to ask "did anything move?", which the luma plane the decoder already made
answers; so a frame here stays the decoder's YUV picture (:class:`AvPicture`) and becomes BGR
the first time a consumer reads ``Frame.image`` (drivers/cameras/base.py). On a 1280x720
idle camera the BGR conversion costs ~0.4 ms a frame and the motion check on BGR ~0.25 ms vs
~0.06 ms on luma; the decode itself 0.3-3 ms, growing with the bit rate (docs/cameras.md).

Decoding runs in one thread (``threads = 1``): a door camera's frames are small enough that
FFmpeg's worker threads cost more in wake-ups than they save, and frame threading would hold
frames back (one frame of latency per extra thread).

Hardware decoders (``decoder`` / ``hw_decode``): on the boxes we ship these are FFmpeg's
stateful V4L2 memory-to-memory decoders (Raspberry Pi 4: ``h264_v4l2m2m``) and Rockchip's MPP
(RK3588: ``h264_rkmpp``/``hevc_rkmpp``, only in an FFmpeg built with rkmpp, e.g. the
``ffmpeg-rockchip`` fork, with PyAV built against it). They are named decoders, not hwaccels,
so a camera names one, or ``hw_decode = true`` tries ``<codec>_rkmpp`` then
``<codec>_v4l2m2m`` where the FFmpeg build has them, and otherwise FFmpeg's VAAPI / Quick Sync
hwaccel (Intel boxes) on the software decoder; a decoder that does not open (no device) falls
back to FFmpeg's software decoder, and ``decoder_used`` says which one runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import av
import numpy as np

log = logging.getLogger(__name__)

HW_SUFFIXES = ("rkmpp", "v4l2m2m")  # named decoders, tried in this order by hw_decode
HW_DEVICES = ("vaapi", "qsv")  # then FFmpeg hwaccels (frames copied back to memory by PyAV)
# 8-bit pixel formats whose first plane is the luma, one byte a pixel.
LUMA_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
                        "yuv440p", "yuvj440p", "yuv411p", "nv12", "nv21", "gray"})


class AvPicture:
    """One decoded picture: luma for free, BGR on demand (once; thread-safe)."""

    __slots__ = ("_frame", "height", "width")

    def __init__(self, frame: av.VideoFrame) -> None:
        self._frame = frame
        self.width, self.height = frame.width, frame.height

    def luma(self) -> tuple[np.ndarray, bool] | None:
        """The Y plane as an HxW view (no copy) and whether it is limited range (16-235),
        or None for formats without a plain 8-bit luma plane first."""
        f = self._frame
        name = f.format.name
        if name not in LUMA_FIRST:
            return None
        plane = f.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(f.height, plane.line_size)[:, : f.width]
        limited = not name.startswith(("yuvj", "gray")) and f.color_range != 2  # 2: JPEG/full
        return y, limited

    def bgr(self) -> np.ndarray:
        # The same swscale conversion OpenCV's read() does (pixel-identical on yuv420p).
        return self._frame.to_ndarray(format="bgr24")


def _hwaccel() -> tuple[str | None, Any]:
    """An FFmpeg hwaccel device for ``hw_decode`` where this FFmpeg build has one (VAAPI or
    Quick Sync on Intel boxes); decoding falls back to software if it does not work."""
    from av.codec.hwaccel import HWAccel, hwdevices_available

    have = hwdevices_available()
    kind = next((k for k in HW_DEVICES if k in have), None)
    return kind, HWAccel(device_type=kind, allow_software_fallback=True) if kind else None


def _decoders(stream: Any, decoder: str | None, hw: bool) -> list[str]:
    """Decoder names to try, best first; the stream's own (software) one always last."""
    codec = stream.codec_context.name
    names = [decoder] if decoder else []
    if hw:
        names += [f"{codec}_{s}" for s in HW_SUFFIXES if f"{codec}_{s}" in av.codecs_available]
    return [*dict.fromkeys(names)]


class AvVideo:
    """A video file (looped if asked) or a live stream (rtsp://, http://), as a camera Source.

    ``options``: FFmpeg format/protocol options (e.g. ``rtsp_transport``), not the
    decoder's; ``timeout``: seconds to open, seconds to wait for data (a stalled stream ends
    ``read`` with False)."""

    def __init__(self, url: str, *, loop: bool = False, options: dict[str, str] | None = None,
                 timeout: tuple[float, float] | None = None, decoder: str | None = None,
                 hw_decode: bool = False, threads: int = 1, label: str | None = None) -> None:
        label = label or url  # what messages call it (a stream's URL without credentials)
        self._hw_kind, hw = _hwaccel() if hw_decode else (None, None)
        self.container = self._open(url, options or {}, timeout, label, hw)
        if not self.container.streams.video:
            self.container.close()
            raise OSError(f"no video in {label}")
        self.stream = self.container.streams.video[0]
        self.loop = loop
        self.finished = False
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 0.0)
        self.frame_count = int(self.stream.frames or 0)  # 0 where the container does not say
        self._threads = threads
        self.codec = self._open_decoder(_decoders(self.stream, decoder, hw_decode))
        self._frames = self._decode()

    def _open(self, url: str, options: dict[str, str], timeout: tuple[float, float] | None,
              label: str, hw: Any) -> Any:
        if hw is not None:
            try:
                return av.open(url, container_options=options, timeout=timeout, hwaccel=hw)
            except (av.FFmpegError, OSError) as e:  # no such device, no permission
                log.warning("hardware decoding (%s) not usable for %s (%s); software",
                            self._hw_kind, label, e)
                self._hw_kind = None
        try:
            return av.open(url, container_options=options, timeout=timeout)
        except (av.FFmpegError, OSError) as e:
            raise OSError(f"cannot open {label}: {getattr(e, 'strerror', None) or e}") from None

    @property
    def decoder_used(self) -> str:
        """The decoder's name, and the hwaccel device when frames really come from it (known
        once a frame is decoded)."""
        cc = self.codec
        hw = self._hw_kind if getattr(cc, "is_hwaccel", False) else None
        return f"{cc.name}+{hw}" if hw else cc.name

    def _open_decoder(self, names: list[str]) -> Any:
        src = self.stream.codec_context
        for name in names:
            try:
                cc = av.CodecContext.create(name, "r")
                cc.extradata = src.extradata
                cc.width, cc.height = src.width, src.height
                self._threading(cc)
                cc.open()
                return cc
            except (av.FFmpegError, ValueError, OSError) as e:
                log.warning("decoder %s not usable here (%s); trying the next", name, e)
        self._threading(src)  # the stream's own software decoder
        return src

    def _threading(self, cc: Any) -> None:
        if self._threads == 1:
            cc.thread_type = "NONE"
        cc.thread_count = self._threads

    def _decode(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            try:
                frames = self.codec.decode(packet)  # the last (empty) packet flushes
            except av.InvalidDataError:  # a damaged packet (data lost, no key frame yet)
                continue
            yield from frames

    def _next(self) -> av.VideoFrame | None:
        try:
            return next(self._frames)
        except StopIteration:
            if not self.loop:
                return None
        except (av.FFmpegError, OSError) as e:  # a timeout or a broken stream
            log.debug("decode stopped: %s", e)
            return None
        self.container.seek(0)  # loop a file: from the start, decoder flushed
        self.codec.flush_buffers()
        self._frames = self._decode()
        try:
            return next(self._frames)
        except (StopIteration, av.FFmpegError, OSError):
            return None

    def read(self) -> tuple[bool, Any]:
        f = self._next()
        # The end of a file that does not loop, or a live stream that broke or timed out
        # (its demuxer is done): either way the reader reconnects instead of waiting.
        self.finished = f is None
        if f is None:
            return False, None
        return True, AvPicture(f)

    def grab(self) -> bool:
        """Decode the next frame and drop it (a consumer skipping frames: base.py)."""
        return self.read()[0]

    def release(self) -> None:
        self.container.close()
