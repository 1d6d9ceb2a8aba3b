"""Fixtures shared by the access tests: a pymodbus TCP relay board as the doors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.drivers.doors.relay_peers import RelayBoard


@pytest.fixture
def board() -> Iterator[RelayBoard]:
    """A pymodbus TCP relay board (unit 1) on a free loopback port, stopped afterwards."""
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()
