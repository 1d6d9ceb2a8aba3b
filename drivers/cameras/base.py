"""The narrow interface every camera driver implements, and the frame reader they share.

A camera is read in its own thread, as fast as the source delivers, keeping only the latest
frame: a consumer that falls behind (face recognition on a busy box) skips frames instead of
building up latency. Consumers wait for the next frame with :meth:`CameraDriver.next_frame`.
When reading fails the reader reconnects with exponential back-off and reports the camera
offline; fps and resolution are measured from what actually arrives.

Decoding costs: a consumer that needs only every n-th frame for a while (a face door holding
a face it has decided) says so with :meth:`CameraDriver.want_every`; the reader then only
``grab()``s the frames in between (demux and decode keep the stream current, but no BGR
conversion and no copy). Published frames are read-only: consumers share them without copies.

A source may hand over a decoded picture instead of a BGR array (drivers/cameras/decode.py):
the frame then converts it to BGR only when a consumer first reads ``Frame.image``, and an
idle door's motion check reads ``Frame.luma`` (the decoder's Y plane, no conversion). While
consumers are reading images (a door with a person in view) the reader converts each new
frame itself, as before, so the conversion stays off the event loop.

Idle without waking the event loop: a consumer that only needs to know when something moves
(an idle door) waits with ``next_frame(after_seq, limit_s, motion=threshold)``. From then on
the reader thread runs the motion gate (drivers/cameras/motion.py, on the luma plane) on each
frame it publishes and stores the score in ``Frame.motion``; it wakes that waiter only for a
frame that moved at least ``threshold`` (that very frame), or with the latest frame after
``limit_s`` (a heartbeat). Before, an idle door's event loop woke for every frame to run the
gate itself (0.3-0.7 % of a core per idle camera at 15 fps, measured: docs/cameras.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.base import Driver
from drivers.cameras.motion import MotionGate


class Picture(Protocol):
    """A decoded picture not converted yet (drivers/cameras/decode.py ``AvPicture``)."""

    width: int
    height: int

    def luma(self) -> tuple[np.ndarray, bool] | None: ...  # (HxW Y view, limited range?)
    def bgr(self) -> np.ndarray: ...


class LookClock:
    """When a consumer last read a frame's ``image`` (shared by one camera's frames)."""

    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t = -1e9


class Frame:
    """One frame from the camera. ``image`` is BGR, HxWx3, read-only and shared; from a
    decoded picture it is converted the first time it is read, once, whoever asks first."""

    __slots__ = ("_clock", "_image", "_lock", "_picture", "ir", "motion", "seq", "t")

    def __init__(self, image: np.ndarray | None, seq: int, t: float,
                 ir: np.ndarray | None = None, picture: Picture | None = None,
                 clock: LookClock | None = None) -> None:
        if image is None and picture is None:
            raise ValueError("a frame needs an image or a picture")
        self._image = image
        self._picture = picture
        self._lock = threading.Lock() if image is None else None
        self._clock = clock
        self.seq = seq  # increases by one per frame read from the source
        self.t = t  # time.monotonic() when the frame arrived
        self.ir = ir  # the infrared frame of a dual-sensor camera (grey, HxW)
        # Share of pixels that changed since the previous frame (the camera's motion gate),
        # once a consumer waits for motion; None before (the consumer runs its own gate).
        self.motion: float | None = None

    @property
    def image(self) -> np.ndarray:
        if self._clock is not None:
            self._clock.t = time.monotonic()
        return self.convert()

    def convert(self) -> np.ndarray:
        """The BGR image, converted now if it was not (without counting as a look)."""
        img = self._image
        if img is None:
            assert self._lock is not None and self._picture is not None
            with self._lock:
                img = self._image
                if img is None:
                    img = self._picture.bgr()
                    img.flags.writeable = False
                    self._image = img
        return img

    @property
    def luma(self) -> tuple[np.ndarray, bool] | None:
        """The decoder's luma plane (HxW view, limited range?) when the source made one."""
        return self._picture.luma() if self._picture is not None else None

    @property
    def converted(self) -> bool:
        """Whether ``image`` was produced (for tests and benches: what idle costs)."""
        return self._image is not None

    @property
    def shape(self) -> tuple[int, int]:
        if self._image is not None:
            return self._image.shape[:2]
        assert self._picture is not None
        return self._picture.height, self._picture.width


class Source(Protocol):
    """What the reader pulls frames from (decode.py's AvVideo, a cv2.VideoCapture, a folder of
    images); ``read`` gives a BGR array or a decoded Picture."""

    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


def _grab_only(src: Any) -> bool | None:
    """Advance ``src`` by one frame without converting it; None if it cannot."""
    grab = getattr(src, "grab", None)
    return None if grab is None else bool(grab())


# A consumer read a frame's image this recently: convert the next frames in the reader thread
# (an idle door reads none, so idle frames stay unconverted).
EAGER_S = 0.5


class CameraOptions(BaseModel):
    """Keys every camera has; a driver's Options subclass adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(30.0, gt=0, le=3600)
    # No frame for this long while connected: the source is stalled, reconnect.
    stall_s: float = Field(5.0, gt=0, le=600)


class CameraDriver(Driver):
    KIND = "camera"
    # The reader thread runs the motion gate for consumers that wait for motion; False: it
    # never does and ``next_frame`` ignores ``motion`` (the behaviour before; for benches).
    motion_in_reader: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._latest: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrivals: deque[float] = deque(maxlen=60)
        self._seq = 0
        self.width: int | None = None
        self.height: int | None = None
        self.reconnects = 0
        self.decoder: str | None = None  # the FFmpeg decoder in use, where the source says
        self._got_frames = False
        # waiting consumer -> the motion it waits for (None: any new frame)
        self._waiters: dict[asyncio.Future, float | None] = {}
        self._gate: MotionGate | None = None  # runs in the reader once someone waits for motion
        self._moved: Frame | None = None  # the newest frame that moved >= _wake_at
        self._wake_at = 1.0
        self._every: dict[str, int] = {}  # consumer -> it looks at every n-th frame only
        self._looks = LookClock()

    # --- what a vendor driver provides ------------------------------------------------------

    def open_source(self) -> Source:
        """Open the stream (in the reader thread); raise OSError with a reason if it fails."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.TYPE

    # Sources that deliver faster than real time (a file) pace themselves; 0 = as they come.
    def pace_fps(self) -> float:
        return 0.0

    # --- consumers ------------------------------------------------------------------------

    def latest(self) -> Frame | None:
        return self._latest

    def want_every(self, consumer: str, n: int) -> None:
        """``consumer`` looks at every ``n``-th frame only for now (1: every frame). The
        reader converts frames at the rate the most demanding consumer asks for."""
        if n <= 1:
            self._every.pop(consumer, None)
        else:
            self._every[consumer] = n

    def _stride(self) -> int:
        ev = self._every
        return min(ev.values()) if ev else 1

    async def next_frame(self, after_seq: int = -1, limit_s: float = 5.0,
                         motion: float | None = None) -> Frame | None:
        """The latest frame newer than ``after_seq``; waits for one up to ``limit_s``.

        ``motion``: wait instead for a frame whose motion score (``Frame.motion``, the share of
        changed pixels; the reader thread computes it from now on) is at least this, and get
        that frame; after ``limit_s`` without one, the latest frame anyway (a heartbeat), so
        an idle consumer wakes once per ``limit_s``, not once per frame."""
        if motion is not None and self.motion_in_reader:
            if self._gate is None:
                self._gate = MotionGate(strided=True)
            self._wake_at = min(self._wake_at, motion)
        else:
            motion = None
        f = self._pick(after_seq, motion)
        if f is not None:
            return f
        fut = asyncio.get_running_loop().create_future()
        self._waiters[fut] = motion
        try:
            f = self._pick(after_seq, motion)  # it may have arrived while we registered
            if f is not None:
                return f
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit_s):
                    await fut
            woke = fut.done() and not fut.cancelled()  # (a timeout cancels it)
            f = self._pick(after_seq, motion) or (fut.result() if woke else None)
            if f is None and motion is not None:  # heartbeat: the latest, moving or not
                f = self._latest
            return f if f is not None and f.seq > after_seq else None
        finally:
            self._waiters.pop(fut, None)

    def _pick(self, after_seq: int, motion: float | None) -> Frame | None:
        """The frame to hand a consumer now: the latest newer than ``after_seq``; waiting
        for motion, the newest such frame that moved enough (the latest if it did)."""
        for f in (self._latest, self._moved if motion is not None else None):
            if f is not None and f.seq > after_seq and (
                    motion is None or (f.motion is not None and f.motion >= motion)):
                return f
        return None

    @property
    def fps(self) -> float | None:
        a = list(self._arrivals)
        if len(a) < 2 or a[-1] == a[0]:
            return None
        return round((len(a) - 1) / (a[-1] - a[0]), 2)

    def status(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "reconnects": self.reconnects,
            "frames": self._seq,
            "decoder": self.decoder,
        }

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"camera-{self.id}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 3.0)
        await self.set_health("offline", "stopped")

    # --- the reader thread ----------------------------------------------------------------

    def _health(self, state: str, reason: str) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self.set_health(state, reason), loop)  # type: ignore[arg-type]

    def _publish(self, image: np.ndarray | Picture, ir: np.ndarray | None = None) -> None:
        now = time.monotonic()
        self._seq += 1
        if isinstance(image, np.ndarray):
            image.flags.writeable = False  # shared by every consumer; nobody copies it
            frame = Frame(image, self._seq, now, ir)
        else:  # converted when (if) a consumer reads frame.image
            frame = Frame(None, self._seq, now, ir, picture=image, clock=self._looks)
            if now - self._looks.t < EAGER_S:
                # Someone is looking at frames (a door with a person in view): convert here,
                # in the reader thread, as before, not on the event loop that runs all doors.
                frame.convert()
        gate = self._gate
        if gate is not None:  # someone waits for motion: score here, in the reader thread
            frame.motion = gate.score_frame(frame)
            if frame.motion >= self._wake_at:
                self._moved = frame
        self._latest = frame
        self._arrivals.append(now)
        self.height, self.width = frame.shape
        loop = self._loop
        waiting = tuple(self._waiters.values())  # (a copy: the loop's thread changes it)
        if loop is not None and waiting and any(
                m is None or (frame.motion is not None and frame.motion >= m)
                for m in waiting):
            # Only these wake the event loop; an idle door's quiet frames do not.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake, frame)

    def _wake(self, frame: Frame) -> None:
        for fut, m in list(self._waiters.items()):
            if not fut.done() and (
                    m is None or (frame.motion is not None and frame.motion >= m)):
                fut.set_result(frame)

    def _run(self) -> None:
        opts = self.options
        delay = opts.reconnect_min_s
        while not self._stop.is_set():
            try:
                src = self.open_source()
            except Exception as e:  # OSError from drivers, cv2.error, anything: retry
                self._health("offline", f"cannot open {self.describe()}: {e}")
                self._stop.wait(delay)
                delay = min(delay * 2, opts.reconnect_max_s)
                continue
            opened = time.monotonic()
            try:
                reason = self._read_loop(src)
            except Exception as e:  # an odd source or a decoder error: end this session
                # only, as a broken stream does (before: the reader thread ended, and the
                # camera stayed "online" for good with no frames).
                reason = f"reading {self.describe()} failed: {e}"
            finally:
                with contextlib.suppress(Exception):
                    src.release()
            if self._stop.is_set():
                break
            self.reconnects += 1
            self._arrivals.clear()
            self._health("offline", reason)
            # It worked for a good while: retry soon. A stream that drops right after it
            # opens keeps backing off (else: reconnect and two health records per cycle).
            if self._got_frames and time.monotonic() - opened >= opts.reconnect_max_s:
                delay = opts.reconnect_min_s
            self._stop.wait(delay)
            delay = min(delay * 2, opts.reconnect_max_s)

    def _read_loop(self, src: Source) -> str:
        opts = self.options
        self._got_frames = False
        pace = self.pace_fps()
        period = 1.0 / pace if pace > 0 else 0.0
        next_t = time.monotonic()
        last_frame = time.monotonic()
        skipped = 0
        while not self._stop.is_set():
            stride = self._stride()
            if self._got_frames and skipped + 1 < stride:
                grabbed = _grab_only(src)
                if grabbed:
                    skipped += 1
                    now = last_frame = time.monotonic()
                    self._seq += 1  # the frame exists; nobody will look at it
                    self._arrivals.append(now)
                    if period:
                        next_t += period
                        sleep = next_t - time.monotonic()
                        if sleep > 0:
                            self._stop.wait(sleep)
                        else:
                            next_t = time.monotonic()
                    continue
            skipped = 0
            ok, image = src.read()
            now = time.monotonic()
            if not ok or image is None:
                if now - last_frame > opts.stall_s or getattr(src, "finished", False):
                    return f"no frames from {self.describe()}"
                # FFmpeg returns False on a hiccup (or before the first key frame); give it
                # until stall_s before reconnecting.
                self._stop.wait(0.02)
                continue
            last_frame = now
            if not self._got_frames:
                self._got_frames = True
                # (known once a frame is decoded: a hardware decoder may have fallen back)
                self.decoder = getattr(src, "decoder_used", None)
                h, w = image.shape[:2] if isinstance(image, np.ndarray) else (
                    image.height, image.width)
                self._health("online", f"{self.describe()} {w}x{h}")
            self._publish(image)
            if period:
                next_t += period
                sleep = next_t - time.monotonic()
                if sleep > 0:
                    self._stop.wait(sleep)
                else:
                    next_t = time.monotonic()
        return "stopped"
