"""A real pymodbus TCP server on loopback answering for a chosen set of unit ids."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator.simcore import SimCore

from tests.conftest import free_port


@contextlib.asynccontextmanager
async def modbus_server(units: tuple[int, ...]) -> AsyncIterator[tuple[int, ModbusServerContext]]:
    """Yields (port, context); each unit is an 8-coil relay board (addresses start at 1 = 0)."""
    devices = {
        u: ModbusDeviceContext(
            co=ModbusSequentialDataBlock(1, [False] * 16),
            di=ModbusSequentialDataBlock(1, [False] * 16),
            hr=ModbusSequentialDataBlock(1, [0] * 16),
            ir=ModbusSequentialDataBlock(1, [0] * 16),
        )
        for u in units
    }
    context = ModbusServerContext(devices=devices, single=False)
    port = free_port()
    # Missing ids stay silent, as on a real RS-485 bus.
    server = ModbusTcpServer(context, address=("127.0.0.1", port), ignore_missing_devices=True)
    # pymodbus 3.16 answers an unknown id with exception 4 (its lookup falls through to a
    # KeyError); a real bus is silent, which ignore_missing_devices gives once the lookup
    # raises the exception the server expects.
    server.context.__class__ = _StrictIds
    task = asyncio.create_task(server.serve_forever())
    for _ in range(100):  # bounded wait for the listener
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    try:
        yield port, context
    finally:
        await server.shutdown()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _StrictIds(SimCore):
    def _SimCore__get_device(self, device_id: int):  # type: ignore[no-untyped-def]
        if device_id not in self.devices:
            raise NoSuchIdException(f"no unit {device_id}")
        return self.devices[device_id]
