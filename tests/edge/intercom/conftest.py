from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.drivers.doors.relay_peers import RelayBoard


@pytest.fixture
def board() -> Iterator[RelayBoard]:
    """A pymodbus TCP relay board: the door's coil and the call button's discrete input."""
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()
