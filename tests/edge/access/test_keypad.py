"""The keypad lockout is per source (issue 13 hardening): a passer-by typing wrong PINs locks
only themselves, not the door for every visitor; many sources guessing together still lock
the door's keypad. Real pymodbus relay board."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from edge.access import store as db
from tests.conftest import api_url, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import ACCESS, door_toml
from tests.edge.access.test_pass_rights import until
from tests.edge.portal.helpers import STAFF, staff

COIL = 4


@pytest.fixture
def board():
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


async def test_a_passer_by_locks_only_themselves(make_config, run_box, board) -> None:
    from edge.core.standard import Resident
    from edge.core.store import Store
    from edge.faces import store as store_faces

    access = ACCESS.replace("[access]\n", "[access]\npin_door_max_failures = 12\n")
    config = make_config(extra=access + door_toml("d1", board.tcp_port, COIL, None))
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1"))
    store.close()
    box = await run_box(config)
    base = api_url(box)
    async with aiohttp.ClientSession(headers=STAFF) as s:
        vp = await staff(s, "POST", f"{base}/api/v1/passes",
                         json={"resident_id": "r1", "doors": ["d1"], "valid_to": until(),
                               "uses": 5})
        wrong = "0" * 6 if vp["pin"] != "0" * 6 else "1" * 6

        async def pin(p: str, source: str) -> str:
            async with s.post(f"{base}/api/v1/doors/d1/pin",
                              json={"pin": p, "source": source}) as r:
                return (await r.json())["reason"]

        # The passer-by: five wrong PINs in a minute, then even the right one is refused.
        assert [await pin(wrong, "kp-1/a") for _ in range(5)] == ["unknown_pin"] * 5
        assert await pin(vp["pin"], "kp-1/a") == "keypad_locked"
        # The visitor after them, in their own keypad session, gets in: the coil goes on.
        t0 = time.monotonic()
        assert await pin(vp["pin"], "kp-1/b") == "pass"
        await asyncio.to_thread(board.wait_for, 1, COIL, True, 3.0, t0)
        # Guessing from many sources at once still locks the door's keypad.
        for i in range(7):
            await pin(wrong, f"kp-1/g{i}")
        assert await pin(vp["pin"], "kp-1/c") == "keypad_locked"
        async with s.post(f"{base}/api/v1/doors/d1/pin", json={"pin": "12ab"}) as r:
            assert r.status == 400
    evs = await box.store.run(db.list_events, box.store.sync, "d1", 50)
    assert sum(e["reason"] == "keypad_locked" for e in evs) == 2
