"""The LCUS door driver against an LCUS module emulated on a socat pty (exact frames)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from drivers.doors.lcus import LcusDoor, LcusOptions, frame
from edge.core.config import DoorConfig
from tests.drivers.doors.relay_peers import LcusEmulator, SocatPair


def make_door(door_id: str = "l1", **keys: object) -> LcusDoor:
    opts = LcusOptions.model_validate(keys)
    return LcusDoor(DoorConfig(id=door_id, type="lcus", options=opts))


def test_frames_follow_the_protocol() -> None:
    assert frame(1, True) == bytes.fromhex("A00101A2")
    assert frame(1, False) == bytes.fromhex("A00100A1")
    assert frame(4, True) == bytes.fromhex("A00401A5")
    assert frame(255, True)[3] == (0xA0 + 0xFF + 1) & 0xFF  # low byte of the sum
    with pytest.raises(ValueError):
        frame(0, True)


async def wait_until(cond, limit_s: float = 3.0) -> None:
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110 - polling a peer thread's state
            await asyncio.sleep(0.01)


async def test_unlock_sends_exact_frames(tmp_path: Path) -> None:
    pair = SocatPair(tmp_path)
    module = LcusEmulator(pair.b, channels=4)
    a = make_door("l1", serial=pair.a, channel=1)
    b = make_door("l2", serial=pair.a, channel=3)  # two doors on one module
    try:
        await a.start()
        await b.start()
        assert a.state == b.state == "online"
        await wait_until(lambda: len(module.frames) >= 2)
        # Forced closed at start-up.
        assert module.frames[:2] == [frame(1, False), frame(3, False)]
        t0 = time.monotonic()
        res = await a.unlock(250)
        assert res.ok and res.changed is None  # the module cannot be read back
        await wait_until(lambda: len(module.frames) >= 4)
        assert module.frames[2:4] == [bytes.fromhex("A00101A2"), bytes.fromhex("A00100A1")]
        on = next(c for c in module.changes if c[1:] == (1, True))
        off = next(c for c in module.changes if c[1:] == (1, False) and c[0] > on[0])
        assert 0.2 <= off[0] - on[0] <= 0.6
        assert on[0] - t0 < 0.1
        assert module.relays[1] is False and module.relays[3] is False
        assert module.bad == []
    finally:
        await a.stop()
        await b.stop()
        module.close()
        pair.close()


async def test_missing_port_is_offline(tmp_path: Path) -> None:
    door = make_door(serial=str(tmp_path / "nope"), reopen_s=0.1)
    await door.start()
    try:
        assert door.state == "offline" and "nope" in door.reason
        res = await door.open(100)
        assert not res.ok
    finally:
        await door.stop()


async def test_two_doors_on_one_module_come_back_after_a_replug(tmp_path: Path) -> None:
    """The USB module with two doors on it drops off the bus and comes back (a loose plug, a
    USB reset). The port the doors shared stayed open in the shared table while the other
    door held it, so the door whose write failed reopened the same dead handle again and
    again: offline for good, until the other door happened to fail a write too. Now a
    failed write closes the shared port and the next write of either door reopens it."""
    pair = SocatPair(tmp_path)
    module = LcusEmulator(pair.b, channels=4)
    a = make_door("l1", serial=pair.a, channel=1, reopen_s=0.1)
    b = make_door("l2", serial=pair.a, channel=2, reopen_s=0.1)
    replugged = None
    try:
        await a.start()
        await b.start()
        assert a.state == b.state == "online"
        module.close()
        pair.close()  # unplugged: the pty is gone
        assert not (await a.open(100)).ok
        assert a.state == "offline"
        replugged = SocatPair(tmp_path)  # plugged in again, under the same name
        module = LcusEmulator(replugged.b, channels=4)
        # The pulse's watchdog closes channel 1 on the module as soon as the port opens again.
        await wait_until(lambda: frame(1, False) in module.frames)
        res = await a.unlock(150)
        assert res.ok, res.detail
        res = await b.unlock(150)
        assert res.ok, res.detail
        await wait_until(lambda: (1, True) in [c[1:] for c in module.changes]
                         and (2, True) in [c[1:] for c in module.changes])
        await wait_until(lambda: module.relays[1] is False and module.relays[2] is False)
    finally:
        await a.stop()
        await b.stop()
        module.close()
        pair.close()
        if replugged is not None:
            replugged.close()


async def test_an_unplugged_module_is_not_logged_every_reopen(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The module is unplugged and stays so (a door out of service for a week). The port
    watcher tried to reopen it every ``reopen_s`` and each try logged a warning: 1800 lines
    an hour per door (reopen_s = 2), for ever, burying everything else in the box's log.
    The state change is logged (and is a health record); the retries are not."""
    pair = SocatPair(tmp_path)
    module = LcusEmulator(pair.b, channels=4)
    door = make_door("l1", serial=pair.a, channel=1, reopen_s=0.1)
    try:
        await door.start()
        assert door.state == "online"
        module.close()
        pair.close()  # unplugged
        with caplog.at_level(logging.INFO, logger="drivers"):
            assert not (await door.open(100)).ok
            await asyncio.sleep(2.0)  # ~20 reopen attempts
        assert door.state == "offline"
    finally:
        await door.stop()
        module.close()
        pair.close()
    lines = [r for r in caplog.records if r.name.startswith("drivers.door.l1")
             and r.levelno >= logging.WARNING]
    assert len(lines) <= 5, [r.getMessage() for r in lines]
