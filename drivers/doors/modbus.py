"""Modbus relay boards (pymodbus 3) over TCP or RTU: a door is a coil on a unit id.

Several doors usually share one RS-485 line (or one TCP gateway). They share one client, and
every request goes through that line's queue, one at a time as the wire requires. A dead or
slow unit must not stall the other doors, so:

- each request has a short timeout (``timeout_ms``) and no automatic retries;
- door commands (unlock, close) jump ahead of background health polls in the queue;
- a unit that stopped answering is polled with exponential back-off (up to ``backoff_max_s``),
  so it occupies the line rarely instead of on every poll.

Boards with a "flash" (timed-on) mode could close themselves; most cheap boards have none,
so the shared watchdog in :class:`drivers.doors.base.RelayDoor` closes the coil, and every
coil is forced off at start-up in case the box died mid-pulse.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import Field, model_validator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from drivers.doors.base import DoorOptions, RelayDoor
from drivers.registry import register

log = logging.getLogger(__name__)

URGENT, BACKGROUND = 0, 1


class ModbusOptions(DoorOptions):
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str = "127.0.0.1"  # tcp: the board or the RS-485 gateway
    port: int = Field(502, ge=1, le=65535)
    serial: str | None = None  # rtu: e.g. /dev/ttyUSB0
    baudrate: int = Field(9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    unit: int = Field(1, ge=0, le=247)  # Modbus device id of the board
    coil: int = Field(0, ge=0, le=65535)  # 0-based coil address of this door's relay
    contact_input: int | None = Field(None, ge=0, le=65535)  # discrete input: door contact
    contact_open_is: bool = True  # the input value that means "door open"
    timeout_ms: int = Field(150, ge=10, le=10000)  # per request; keep short on a shared bus
    poll_s: float = Field(5.0, ge=0.2, le=3600)  # health poll when the unit answers
    backoff_max_s: float = Field(30.0, ge=1, le=3600)  # longest wait between polls of a dead unit

    @model_validator(mode="after")
    def _serial_for_rtu(self) -> ModbusOptions:
        if self.transport == "rtu" and not self.serial:
            raise ValueError("serial: required when transport = 'rtu' (e.g. /dev/ttyUSB0)")
        return self


class ModbusLine:
    """One physical line (serial port or TCP endpoint): one client, one request at a time."""

    def __init__(self, opts: ModbusOptions) -> None:
        self.opts = opts
        if opts.transport == "rtu":
            assert opts.serial is not None
            self.name = f"rtu:{opts.serial}"
            self.client: Any = AsyncModbusSerialClient(
                opts.serial,
                framer=FramerType.RTU,
                baudrate=opts.baudrate,
                parity=opts.parity,
                stopbits=opts.stopbits,
                timeout=opts.timeout_ms / 1000,
                retries=0,
                reconnect_delay=0,  # we reconnect ourselves, with our own back-off
            )
        else:
            self.name = f"tcp:{opts.host}:{opts.port}"
            self.client = AsyncModbusTcpClient(
                opts.host,
                port=opts.port,
                timeout=opts.timeout_ms / 1000,
                retries=0,
                reconnect_delay=0,
            )
        self.users = 0
        self._queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._worker: asyncio.Task | None = None
        self._next_connect = 0.0
        self._connect_delay = 0.2

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._work(), name=f"modbus-{self.name}")

    async def close(self) -> None:
        if self._worker:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self.client.close()

    async def call(
        self, fn: Callable[[Any], Awaitable[Any]], priority: int, limit_s: float
    ) -> Any:
        """Queue one request; URGENT ones pass every BACKGROUND one still waiting."""
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((priority, next(self._seq), fn, fut, limit_s))
        return await fut

    async def _ensure_connected(self) -> None:
        if self.client.connected:
            return
        now = time.monotonic()
        if now < self._next_connect:
            raise ConnectionError(f"{self.name}: not connected (retrying)")
        ok = await asyncio.wait_for(self.client.connect(), max(self.opts.timeout_ms / 1000, 1.0))
        if not ok:
            self._next_connect = now + self._connect_delay
            self._connect_delay = min(self._connect_delay * 2, 10.0)
            raise ConnectionError(f"{self.name}: cannot connect")
        self._connect_delay = 0.2

    async def _work(self) -> None:
        while True:
            _prio, _seq, fn, fut, timeout = await self._queue.get()
            if fut.done():  # the caller gave up
                continue
            try:
                await self._ensure_connected()
                # Our own bound as well as pymodbus's: a cancelled request frees the line.
                result = await asyncio.wait_for(fn(self.client), timeout)
            except (ModbusException, OSError, TimeoutError, ConnectionError) as e:
                if not fut.done():
                    fut.set_exception(_as_io_error(e, self.name))
            except Exception as e:  # pragma: no cover - a bug, but keep the line alive
                if not fut.done():
                    fut.set_exception(e)
            else:
                if not fut.done():
                    fut.set_result(result)


def _as_io_error(e: BaseException, where: str) -> OSError:
    if isinstance(e, TimeoutError):
        return TimeoutError(f"{where}: no answer")
    return ConnectionError(f"{where}: {e}")


# Doors of one line share it; keyed per event loop (tests run many loops in one process).
_lines: dict[tuple[int, str], ModbusLine] = {}


def _line_key(opts: ModbusOptions) -> str:
    return f"rtu:{opts.serial}" if opts.transport == "rtu" else f"tcp:{opts.host}:{opts.port}"


def acquire_line(opts: ModbusOptions) -> ModbusLine:
    key = (id(asyncio.get_running_loop()), _line_key(opts))
    line = _lines.get(key)
    if line is None:
        line = _lines[key] = ModbusLine(opts)
    line.users += 1
    line.start()
    return line


async def release_line(line: ModbusLine) -> None:
    line.users -= 1
    if line.users <= 0:
        for k, v in list(_lines.items()):
            if v is line:
                del _lines[k]
        await line.close()


def _check(resp: Any) -> Any:
    if resp.isError():
        raise ConnectionError(f"device answered with an error: {resp}")
    return resp


def _bit(resp: Any) -> bool:
    """The first bit of a coil/input read; a malformed answer (no bits) is an I/O failure."""
    bits = getattr(_check(resp), "bits", None)
    if not bits:
        raise ConnectionError(f"device answered without the bit: {resp}")
    return bool(bits[0])


@register("doors", "modbus")
class ModbusDoor(RelayDoor):
    Options = ModbusOptions
    options: ModbusOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line: ModbusLine | None = None
        self._poller: asyncio.Task | None = None
        self._timeout = self.options.timeout_ms / 1000

    async def _req(self, fn: Callable[[Any], Awaitable[Any]], priority: int = URGENT) -> Any:
        assert self.line is not None, "door not started"
        return await self.line.call(fn, priority, self._timeout)

    async def _write_relay(self, on: bool) -> None:
        o = self.options
        await self._req(lambda c: _write_coil(c, o.coil, on, o.unit))

    async def _read_relay(self, priority: int = URGENT) -> bool | None:
        o = self.options
        resp = await self._req(lambda c: c.read_coils(o.coil, count=1, device_id=o.unit), priority)
        return _bit(resp)

    async def is_open(self) -> bool | None:
        o = self.options
        if o.contact_input is None:
            return None
        try:
            resp = await self._req(
                lambda c: c.read_discrete_inputs(o.contact_input, count=1, device_id=o.unit)
            )
            return _bit(resp) == o.contact_open_is
        except (OSError, TimeoutError, ConnectionError):
            return None

    async def read_input(self, address: int) -> bool:
        """A discrete input of this door's board (a call button, a sensor); a background
        request, so door commands pass it on the line."""
        o = self.options
        resp = await self._req(
            lambda c: c.read_discrete_inputs(address, count=1, device_id=o.unit), BACKGROUND
        )
        return _bit(resp)

    async def start(self) -> None:
        self.line = acquire_line(self.options)
        if await self.force_closed():
            await self.set_health("online", "")
        else:
            await self.set_health("offline", f"no answer from unit {self.options.unit}")
        self._poller = asyncio.create_task(self._poll(), name=f"door-{self.id}-poll")

    async def _poll(self) -> None:
        """Health poll; a dead unit is polled with growing gaps so it rarely holds the line."""
        o = self.options
        delay = o.poll_s
        while True:
            await asyncio.sleep(delay * random.uniform(0.9, 1.1))
            try:
                await self._read_relay(priority=BACKGROUND)
            except (OSError, TimeoutError, ConnectionError) as e:
                await self.set_health("offline", f"unit {o.unit} coil {o.coil}: {e}")
                delay = min(max(delay, 1.0) * 2, o.backoff_max_s)
                continue
            if self.state != "online":
                # Back after an outage: make sure the relay is not left on.
                if self._pulse_until < time.monotonic():
                    await self.force_closed()
                await self.set_health("online", "")
            delay = o.poll_s

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.line is not None:
            await self.stop_pulses()
            await release_line(self.line)
            self.line = None
        await self.set_health("offline", "stopped")


async def _write_coil(client: Any, coil: int, on: bool, unit: int) -> None:
    _check(await client.write_coil(coil, on, device_id=unit))
