"""Real peers for the door drivers: a pymodbus relay board (TCP or RTU on a socat pty pair)
and an LCUS module emulated on a pty. Used by the tests and by bench/access.py.

The board runs in its own thread and event loop, as a separate device would, and records
every coil write with the monotonic time it arrived, so a test or benchmark can see exactly
when a coil went on and off *at the board*.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.conftest import stop_process


@dataclass
class CoilWrite:
    t: float  # time.monotonic() at the board
    unit: int
    coil: int
    on: bool


class SocatPair:
    """Two linked ptys: the box opens ``a``, the peer opens ``b``."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("socat") is None:
            raise RuntimeError("socat is not installed (scripts/setup.sh test installs it)")
        self.a, self.b = str(tmp / "ttyA"), str(tmp / "ttyB")
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError("socat did not create the pty pair")
            time.sleep(0.02)

    def close(self) -> None:
        stop_process(self.proc, grace_s=3)


def _blocks(coils: int) -> tuple:
    return (
        [SimData(0, count=coils, values=False, datatype=DataType.BITS)],
        [SimData(0, count=coils, values=False, datatype=DataType.BITS)],
        [SimData(0, count=4, values=0, datatype=DataType.REGISTERS)],
        [SimData(0, count=4, values=0, datatype=DataType.REGISTERS)],
    )


@dataclass
class RelayBoard:
    """A Modbus relay board (8 coils per unit) served by pymodbus in its own thread.

    ``units`` answer; ``dead_units`` are on the same line but never answer (as a board with
    a blown fuse on a shared RS-485 bus).
    """

    units: tuple[int, ...] = (1,)
    dead_units: tuple[int, ...] = ()
    coils: int = 16
    tcp_port: int | None = None
    serial: str | None = None
    writes: list[CoilWrite] = field(default_factory=list)
    state: dict[tuple[int, int], bool] = field(default_factory=dict)
    # discrete inputs a test sets (a call button, a door contact): (unit, address) -> value
    inputs: dict[tuple[int, int], bool] = field(default_factory=dict)
    # RTU: rewrites each answer frame (unit, function, data, CRC) before it goes on the wire,
    # as a board with buggy firmware would send it.
    mangle: Callable[[bytes], bytes] | None = None
    # RTU: rewrites each request as it arrives (b"": lost on a noisy line, never seen).
    mangle_request: Callable[[bytes], bytes] | None = None

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="relay-board")
        self.changed = threading.Condition()

    def _device(self, unit: int) -> SimDevice:
        async def action(fc, start, address, count, regs, set_values):
            if fc == 2:  # read discrete inputs: the bits (bit 0 first) of what the test set
                for (u, a), v in list(self.inputs.items()):
                    w = a // 16 - start
                    if u == unit and 0 <= w < len(regs):
                        regs[w] = regs[w] | (1 << a % 16) if v else regs[w] & ~(1 << a % 16)
            if set_values is None or unit in self.dead_units:
                return None
            if fc in (5, 15):
                now = time.monotonic()
                with self.changed:
                    for i, v in enumerate(set_values):
                        self.writes.append(CoilWrite(now, unit, address + i, bool(v)))
                        self.state[(unit, address + i)] = bool(v)
                    self.changed.notify_all()
            return None

        return SimDevice(id=unit, simdata=_blocks(self.coils), action=action)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        # A dead unit hears its request but its answer never reaches the wire.
        if sending and data and self.serial and data[0] in self.dead_units:
            return b""
        if sending and data and self.serial and self.mangle is not None:
            return self.mangle(data)
        if not sending and data and self.serial and self.mangle_request is not None:
            return self.mangle_request(data)
        return data

    async def _serve(self) -> None:
        devices = [self._device(u) for u in (*self.units, *self.dead_units)]
        if self.serial:
            self._server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=self.serial, baudrate=9600,
                trace_packet=self._trace,
            )
        else:
            self._server = ModbusTcpServer(
                devices, address=("127.0.0.1", self.tcp_port), trace_packet=self._trace
            )
        asyncio.get_running_loop().call_later(0.2, self._ready.set)
        await self._server.serve_forever()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self) -> RelayBoard:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("relay board did not start")
        if self._error:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop and self._server and self._thread.is_alive():
            fut = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(5)
        self._thread.join(5)

    def coil(self, unit: int, coil: int) -> bool:
        return self.state.get((unit, coil), False)

    def wait_for(
        self, unit: int, coil: int, on: bool, timeout: float = 5.0, after: float | None = None
    ) -> CoilWrite:
        """Block until the board has a write of ``on`` to that coil at or after ``after``
        (default: from now); return it."""
        after = time.monotonic() if after is None else after
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                w = self.first_write(unit, coil, on, after)
                if w is not None:
                    return w
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"unit {unit} coil {coil} never went {on}")
                self.changed.wait(left)

    def first_write(self, unit: int, coil: int, on: bool, after: float = 0.0) -> CoilWrite | None:
        for w in list(self.writes):
            if (w.unit, w.coil, w.on) == (unit, coil, on) and w.t >= after:
                return w
        return None


class LcusEmulator:
    """An LCUS relay module on the far end of a pty: checks every frame exactly."""

    def __init__(self, path: str, channels: int = 4) -> None:
        import serial

        self.port = serial.Serial(path, 9600, timeout=0.05)
        self.channels = channels
        self.relays = [False] * (channels + 1)
        self.frames: list[bytes] = []
        self.bad: list[bytes] = []
        self.changes: list[tuple[float, int, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lcus")
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        while not self._stop.is_set():
            try:
                buf += self.port.read(64)
            except Exception:  # the pty vanished
                return
            while len(buf) >= 4:
                if buf[0] != 0xA0:  # resync on the start byte, recording the garbage
                    self.bad.append(buf[:1])
                    buf = buf[1:]
                    continue
                f, buf = buf[:4], buf[4:]
                ch, st, cs = f[1], f[2], f[3]
                valid = cs == (0xA0 + ch + st) & 0xFF and st in (0, 1)
                if not valid or not 1 <= ch <= self.channels:
                    self.bad.append(f)
                    continue
                self.frames.append(f)
                self.relays[ch] = bool(st)
                self.changes.append((time.monotonic(), ch, bool(st)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.port.close()
