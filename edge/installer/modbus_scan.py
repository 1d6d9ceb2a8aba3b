"""``qilu-edge modbus scan``: which Modbus unit ids answer on a bus (TCP gateway or RS-485).

A unit "answers" when it sends any reply to a read of coil 0, a Modbus exception included
(an exception is still a device saying "I am here"). Silence until the timeout means nobody
has that id. A serial bus is half-duplex, so ids are asked one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

log = logging.getLogger(__name__)
# Modbus exceptions 0x0A/0x0B: "gateway path unavailable" / "target device failed to respond".
GATEWAY_NO_TARGET = {0x0A, 0x0B}


@dataclass(frozen=True)
class Unit:
    unit: int
    coils: int | None  # how many of the first 8 coils read back, None if coils are refused
    detail: str


class ScanError(RuntimeError):
    """The bus itself could not be opened (no gateway at that address, no serial port)."""


def make_client(
    *, host: str | None, port: int, serial: str | None, baud: int, timeout: float
) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
    if serial:
        return AsyncModbusSerialClient(serial, baudrate=baud, timeout=timeout, retries=0)
    if not host:
        raise ScanError("give --host (Modbus TCP) or --serial (RS-485 port)")
    return AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0)


async def probe(client: AsyncModbusTcpClient | AsyncModbusSerialClient, unit: int) -> Unit | None:
    try:
        rr = await client.read_coils(0, count=8, device_id=unit)
    except ModbusException as e:  # timeout: nobody answers to this id
        log.debug("unit %d: %s", unit, e)
        return None
    if rr.isError():
        code = getattr(rr, "exception_code", "?")
        if code in GATEWAY_NO_TARGET:  # the TCP gateway speaking for an absent unit
            return None
        return Unit(unit, None, f"answers (Modbus exception {code} on coils)")
    return Unit(unit, len(rr.bits[:8]), "answers, coils readable")


async def scan(
    units: Sequence[int],
    *,
    host: str | None = None,
    port: int = 502,
    serial: str | None = None,
    baud: int = 9600,
    per_unit_s: float = 0.3,
    progress: Callable[[int, int, list[Unit]], None] | None = None,
) -> list[Unit]:
    """Ask each unit id; ``progress(n, total, found so far)`` after each one. pymodbus logs
    every unit that does not answer as an error with a traceback: silent while scanning, as
    silence is the expected answer of an empty address."""
    quiet = logging.getLogger("pymodbus")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        client = make_client(host=host, port=port, serial=serial, baud=baud, timeout=per_unit_s)
        if not await client.connect():
            where = serial or f"{host}:{port}"
            raise ScanError(f"cannot open Modbus bus at {where}")
        found: list[Unit] = []
        try:
            for n, unit in enumerate(units, start=1):
                if (u := await probe(client, unit)) is not None:
                    found.append(u)
                if progress is not None:
                    progress(n, len(units), found)
                if not client.connected:  # a TCP gateway may drop us after a timeout
                    await client.connect()
        finally:
            client.close()
        return found
    finally:
        quiet.setLevel(level)


def snippet(u: Unit, *, host: str | None, port: int, serial: str | None, baud: int) -> str:
    """A ``[[doors]]`` block ready to paste into edge.toml for a relay board at this unit.

    The keys follow the modbus door driver's Options (issue 4) when it is installed; the
    block is a starting point the installer completes (name, building, coil).
    """
    lines = ["[[doors]]", f'id = "door-u{u.unit}"', 'type = "modbus"', 'name = ""']
    # Without the driver installed, guess the usual names; with it, use its own.
    fields = _modbus_door_fields() or {
        "host",
        "port",
        "serial",
        "baudrate",
        "unit",
        "coil",
        "transport",
    }
    want = {
        "transport": '"rtu"' if serial else '"tcp"',
        "host": f'"{host}"' if host else None,
        "port": str(port) if host else None,
        "serial": f'"{serial}"' if serial else None,
        "device": f'"{serial}"' if serial else None,
        "baudrate": str(baud) if serial else None,
        "baud": str(baud) if serial else None,
        "unit": str(u.unit),
        "unit_id": str(u.unit),
        "device_id": str(u.unit),
        "slave": str(u.unit),
        "coil": "0",
    }
    for key, value in want.items():
        if value is not None and key in fields:
            lines.append(f"{key} = {value}")
    return "\n".join(lines)


def _modbus_door_fields() -> set[str] | None:
    """Option names of the modbus door driver, or None when that driver is not built yet."""
    from drivers import registry

    try:
        cls = registry.get("doors", "modbus")
    except KeyError:
        return None
    return set(cls.Options.model_fields)  # type: ignore[attr-defined]  # every driver has one
