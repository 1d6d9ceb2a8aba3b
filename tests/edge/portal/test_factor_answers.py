"""A phone's answer to a face door's second factor is for the wait its page showed: a tap on a
prompt that has meanwhile ended (timed out, or replaced because another face at the same door
was named as the same resident) must not open the door for the newer wait (outside probe:
the answer named only the door). Real pymodbus relay board."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from edge.access import ACCESS as ACCESS_SERVICE
from edge.access import store as access_db
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from tests.conftest import api_url, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import ACCESS, door_toml
from tests.edge.portal.helpers import login

COIL = 2


@pytest.fixture
def board():
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


async def test_an_answer_to_an_ended_prompt_does_not_open_for_a_newer_one(
    make_config, run_box, board
) -> None:
    config = make_config(extra=ACCESS + door_toml("d1", board.tcp_port, COIL, None)
                         + 'second_factor = "always"\n')  # fmt: skip
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1"))
    access_db.set_rights(store, "r1", [], [], [], "test", all_doors=True)  # rights are explicit
    store.close()
    box = await run_box(config)
    base = api_url(box)
    svc = box.get(ACCESS_SERVICE)
    t_start = time.monotonic()
    async with aiohttp.ClientSession() as s:
        me = await login(s, base, "r1")

        async def prompt() -> dict:
            async with s.get(f"{base}/r/api/factor", headers=me) as r:
                assert r.status == 200
                waiting = (await r.json())["waiting"]
                assert [w["door_id"] for w in waiting] == ["d1"]
                return waiting[0]

        async def answer(action: str, shown: dict) -> int:
            url = f"{base}/r/api/factor/d1/{action}?challenge={shown.get('id')}"
            async with s.post(url, headers=me) as r:
                return r.status

        # The resident's page shows a prompt; before they tap, that wait is replaced by a
        # newer one at the same door (another face named as them).
        await svc.factors.challenge("d1", "r1", "always", time.monotonic(), {"track": 1})
        old = await prompt()
        await svc.factors.challenge("d1", "r1", "always", time.monotonic(), {"track": 2})
        new = await prompt()
        assert await answer("confirm", old) == 409  # the prompt they saw has ended
        assert old.get("id") and new.get("id") and old["id"] != new["id"]
        assert await answer("refuse", old) == 409
        await asyncio.sleep(0.5)
        assert board.first_write(1, COIL, True, t_start) is None
        assert svc.factors.waiting("d1") is not None  # the newer wait is untouched
        t0 = time.monotonic()
        assert await answer("confirm", new) == 200  # the prompt now on the page opens
        await asyncio.to_thread(board.wait_for, 1, COIL, True, 3.0, t0)
