"""LCUS-type USB/serial relay modules (CH340 based, 1–8 channels), via pyserial.

The module takes four-byte frames ``A0 <channel> <state> <checksum>``: channel from 1,
state 0 (off) or 1 (on), checksum the low byte of the sum of the first three bytes. It sends
nothing back, so an unlock cannot be read back (``changed`` is None) and health means "the
port opens and takes our writes". Serial I/O is blocking, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import serial
from pydantic import Field

from drivers.doors.base import DoorOptions, RelayDoor
from drivers.registry import register


def frame(channel: int, on: bool) -> bytes:
    """The LCUS command frame for one channel."""
    if not 1 <= channel <= 255:
        raise ValueError(f"channel must be 1..255, got {channel}")
    head = bytes((0xA0, channel, 1 if on else 0))
    return head + bytes((sum(head) & 0xFF,))


class LcusOptions(DoorOptions):
    serial: str  # e.g. /dev/ttyUSB0 (or a /dev/serial/by-id/... link, which survives re-plugging)
    baudrate: int = Field(9600, ge=1200, le=115200)
    channel: int = Field(1, ge=1, le=8)
    write_timeout_ms: int = Field(200, ge=10, le=5000)
    reopen_s: float = Field(2.0, ge=0.1, le=600)  # retry opening a missing port this often


# Several doors can sit on channels of one module: they share one port and one lock.
_ports: dict[str, tuple[serial.Serial, threading.Lock, list[int]]] = {}
_ports_lock = threading.Lock()


def _open(opts: LcusOptions) -> tuple[serial.Serial, threading.Lock]:
    with _ports_lock:
        entry = _ports.get(opts.serial)
        if entry is None or not entry[0].is_open:
            port = serial.Serial(
                opts.serial,
                baudrate=opts.baudrate,
                timeout=0,
                write_timeout=opts.write_timeout_ms / 1000,
            )
            users = entry[2] if entry else [0]
            entry = _ports[opts.serial] = (port, threading.Lock(), users)
        entry[2][0] += 1
        return entry[0], entry[1]


def _release(path: str) -> None:
    with _ports_lock:
        entry = _ports.get(path)
        if entry is None:
            return
        entry[2][0] -= 1
        if entry[2][0] <= 0:
            del _ports[path]
            with contextlib.suppress(OSError, serial.SerialException):
                entry[0].close()


@register("doors", "lcus")
class LcusDoor(RelayDoor):
    Options = LcusOptions
    options: LcusOptions
    READBACK = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._port: serial.Serial | None = None
        self._lock: threading.Lock | None = None
        self._watch: asyncio.Task | None = None
        self.last_state: bool | None = None  # what we last wrote

    def _write_sync(self, on: bool) -> None:
        if self._port is not None and not self._port.is_open:
            self._drop()  # another door on this module found the port broken and closed it
        if self._port is None:
            self._port, self._lock = _open(self.options)
        assert self._lock is not None
        try:
            with self._lock:
                self._port.write(frame(self.options.channel, on))
                self._port.flush()
        except (serial.SerialException, OSError) as e:
            # Broken for every door on the module (unplugged): close it, so that the next
            # write of any of them opens the port afresh instead of the same dead handle.
            with contextlib.suppress(OSError, serial.SerialException):
                self._port.close()
            self._drop()
            raise OSError(f"{self.options.serial}: {e}") from e

    def _drop(self) -> None:
        if self._port is not None:
            self._port = None
            _release(self.options.serial)

    async def _write_relay(self, on: bool) -> None:
        try:
            await asyncio.to_thread(self._write_sync, on)
        except serial.SerialException as e:  # open failed
            raise OSError(f"{self.options.serial}: {e}") from e
        self.last_state = on

    async def _read_relay(self) -> bool | None:
        return None  # the module never answers

    async def start(self) -> None:
        if await self.force_closed():
            await self.set_health("online", f"{self.options.serial} channel {self.options.channel}")
        else:
            await self.set_health("offline", f"cannot open {self.options.serial}")
        self._watch = asyncio.create_task(self._watch_port(), name=f"door-{self.id}-port")

    async def _watch_port(self) -> None:
        """Re-plugged module: reopen it and force the relay closed again."""
        while True:
            await asyncio.sleep(self.options.reopen_s)
            if self._port is None or not self._port.is_open:
                if self._pulse_until > time.monotonic():
                    continue
                # Offline already: the change was logged (and recorded) once, not each try.
                if await self.force_closed(quiet=self.state == "offline"):
                    await self.set_health(
                        "online", f"{self.options.serial} channel {self.options.channel}"
                    )
                else:
                    await self.set_health("offline", f"cannot open {self.options.serial}")

    async def stop(self) -> None:
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.stop_pulses()
        await asyncio.to_thread(self._drop)
        await self.set_health("offline", "stopped")
