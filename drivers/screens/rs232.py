"""Display control over RS-232 (pyserial) with the LG commercial-display protocol, which many
outdoor LED/LCD controllers also speak: ``k<cmd> <set id> <data>\\r``, answered
``<cmd> <set id> OK<data>x`` (or ``NG``). ``ka`` is power (00 off, 01 on), ``kh`` brightness
(00..64 hex = 0..100 %), data ``ff`` reads the current value back.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import termios

import serial
from pydantic import Field

from drivers.registry import register
from drivers.screens.base import DisplayDriver, DisplayOptions, DisplayStatus

REPLY = re.compile(rb"([a-z]) ([0-9a-fA-F]{2}) (OK|NG)([0-9a-fA-F]{2})x")


class Rs232Options(DisplayOptions):
    port: str = Field(min_length=1)  # e.g. /dev/ttyUSB0
    baudrate: int = Field(9600, ge=1200, le=115200)
    set_id: int = Field(1, ge=0, le=99)  # 0 addresses every display on the line
    timeout_s: float = Field(1.0, gt=0, le=10)


class DisplayError(RuntimeError):
    """The display refused (NG) or did not answer."""


@register("screens", "rs232")
class Rs232Display(DisplayDriver):
    Options = Rs232Options

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._serial: serial.Serial | None = None
        self._lock = asyncio.Lock()  # one command on the line at a time

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._open)
            await self.read_status()
            await self.set_health("online", f"answering on {self.options.port}")
        except (OSError, serial.SerialException, DisplayError) as e:
            await self.set_health("offline", f"{self.options.port}: {e}")

    def _open(self) -> None:
        o = self.options
        self._serial = serial.Serial(o.port, o.baudrate, timeout=o.timeout_s)

    async def stop(self) -> None:
        if self._serial is not None:
            await asyncio.to_thread(self._serial.close)
            self._serial = None
        await self.set_health("offline", "stopped")

    def _transact(self, cmd: str, data: int) -> int:
        if self._serial is None or not self._serial.is_open:
            self._open()
        s = self._serial
        assert s is not None
        try:
            s.reset_input_buffer()
            s.write(f"k{cmd} {self.options.set_id:02x} {data:02x}\r".encode())
            reply = s.read_until(b"x", 32)
        except (OSError, serial.SerialException, termios.error) as e:
            # The adapter is gone (unplugged, USB reset): drop the dead handle, so the next
            # command opens the port afresh (pyserial still calls this one open).
            self._serial = None
            with contextlib.suppress(OSError, serial.SerialException, termios.error):
                s.close()
            raise OSError(f"{self.options.port}: {e}") from e
        m = REPLY.search(reply)
        sid = self.options.set_id
        # On a daisy chain another display's (late) answer is not ours (0: any may answer).
        if m is None or (sid != 0 and int(m.group(2), 16) != sid):
            raise DisplayError(f"no answer to k{cmd} from set {sid:02x} (got {reply!r})")
        if m.group(1).decode() != cmd or m.group(3) != b"OK":
            raise DisplayError(f"display refused k{cmd} {data:02x}: {reply!r}")
        return int(m.group(4), 16)

    async def _cmd(self, cmd: str, data: int) -> int:
        async with self._lock:
            return await asyncio.to_thread(self._transact, cmd, data)

    async def set_power(self, on: bool) -> None:
        await self._cmd("a", 1 if on else 0)

    async def set_brightness(self, percent: int) -> None:
        await self._cmd("h", max(0, min(100, percent)))

    async def read_status(self) -> DisplayStatus:
        power = await self._cmd("a", 0xFF)
        brightness = await self._cmd("h", 0xFF)
        return DisplayStatus(power == 1, brightness)
