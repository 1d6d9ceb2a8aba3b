"""Door rights are explicit (security probe 2026-11, Medium A): a resident with no rights opens
no door; "all doors" is a right of its own; the community's defaults ([access] default_doors,
own_building) are the only rights nobody set; unticking every door removes access; the upgrade
migration keeps what existing residents could open. Real pymodbus relay board as the doors.
"""

from __future__ import annotations

import aiohttp
import pytest

from edge.access import store as db
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from tests.conftest import api_url, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import ACCESS, door_toml
from tests.edge.portal.helpers import FAST, STAFF, login, staff

COIL_B1, COIL_B2, COIL_GATE = 1, 2, 3


@pytest.fixture
def board():
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


async def start(make_config, run_box, board, access: str = ""):
    config = make_config(extra=FAST + ACCESS + access
                         + door_toml("d-b1", board.tcp_port, COIL_B1, None, "1")
                         + door_toml("d-b2", board.tcp_port, COIL_B2, None, "2")
                         + door_toml("d-gate", board.tcp_port, COIL_GATE, None, "gate"))
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="王阿姨", building="1"))
    store.close()
    return await run_box(config)


async def open_as(s: aiohttp.ClientSession, base: str, h: dict, door: str) -> int:
    async with s.post(f"{base}/api/v1/doors/{door}/open", headers=h) as r:
        return r.status


async def test_no_rights_no_door_and_unticking_everything_removes_access(
    make_config, run_box, board
) -> None:
    box = await start(make_config, run_box, board)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        h = await login(s, base, "r1")
        # A new resident with no rights: no door (it used to be every door of the community).
        assert await open_as(s, base, h, "d-b2") == 403
        assert await open_as(s, base, h, "d-b1") == 403
        shown = await staff(s, "GET", f"{base}/api/v1/residents/r1/access")
        assert (shown["all_doors"], shown["doors"], shown["buildings"]) == (False, [], [])
        # "All doors" is an explicit right, and the editor's API shows it.
        out = await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={"all_doors": True})
        assert out["all_doors"] is True
        assert await open_as(s, base, h, "d-b2") == 200
        assert board.first_write(1, COIL_B2, True) is not None
        # Staff untick everything: no door any more.
        out = await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={})
        assert (out["all_doors"], out["doors"], out["buildings"]) == (False, [], [])
        assert await open_as(s, base, h, "d-b1") == 403
        # An unknown door in the rights is refused, naming it; what was stored stays.
        await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={"doors": ["d-b1"]})
        async with s.put(f"{base}/api/v1/residents/r1/access", headers=STAFF,
                         json={"doors": ["d-nope"]}) as r:
            assert r.status == 400 and "d-nope" in (await r.json())["error"]
        assert (await staff(s, "GET", f"{base}/api/v1/residents/r1/access"))["doors"] == ["d-b1"]
    assert board.first_write(1, COIL_B1, True) is None


async def test_community_defaults_grant_the_gate_and_the_own_building(
    make_config, run_box, board
) -> None:
    access = 'default_doors = ["d-gate"]\nown_building = true\n'
    box = await start(make_config, run_box, board, access)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        h = await login(s, base, "r1")
        assert await open_as(s, base, h, "d-gate") == 200
        assert await open_as(s, base, h, "d-b1") == 200  # building 1 is hers
        assert await open_as(s, base, h, "d-b2") == 403  # building 2 is not
        shown = await staff(s, "GET", f"{base}/api/v1/residents/r1/access")
        assert shown["defaults"] == {"doors": ["d-gate"], "own_building": True}
    assert board.first_write(1, COIL_B2, True) is None
    # The face doors' per-door galleries read the same rights.
    svc = box.store.sync
    defaults = db.Defaults(frozenset({"d-gate"}), True)
    assert (await box.store.run(db.door_residents, svc, "d-gate", "gate", defaults))[0] == {"r1"}
    assert (await box.store.run(db.door_residents, svc, "d-b1", "1", defaults))[0] == {"r1"}
    assert (await box.store.run(db.door_residents, svc, "d-b2", "2", defaults))[0] == set()
    assert (await box.store.run(db.door_residents, svc, "d-b1", "1"))[0] == set()


async def test_an_unknown_default_door_is_a_config_error(make_config, run_box) -> None:
    from edge.core.config import ConfigError

    config = make_config(extra=ACCESS + 'default_doors = ["d-nope"]\n')
    with pytest.raises(ConfigError, match=r"access\.default_doors: no door 'd-nope'"):
        await run_box(config)


def test_the_upgrade_keeps_what_existing_residents_could_open(tmp_path) -> None:
    store = Store(tmp_path / "box.db", box_id="b-1")
    for rid, doors in (("r-none", []), ("r-listed", ["d-b1"]), ("r-right", [])):
        store_faces.add_resident(store, Resident(id=rid, name=rid, building="1", doors=doors))
    db.set_rights(store, "r-right", ["d-b2"], [], [], "staff")
    # As before the upgrade: migration 0207 not applied yet (it rebuilds the table, so
    # running it again on the new schema is the same as running it on the old one).
    with store.transaction():
        store.db.execute("DELETE FROM door_rights WHERE scope = 'all'")
        store.db.execute("DELETE FROM schema_migrations WHERE version = 207")
    assert store.migrate() == [207]
    rows = sorted(store.db.execute("SELECT resident_id, scope, target FROM door_rights"))
    # Only the resident who relied on "no rights = every door" gets an explicit all-doors row.
    assert rows == [("r-none", "all", "*"), ("r-right", "door", "d-b2")]
    f = db.facts(store, "r-none", db.iso())
    from edge.access import policy

    assert policy.allowed_door(f, "d-anything", "9")
    assert not policy.allowed_door(db.facts(store, "r-right", db.iso()), "d-b1", "1")
    store.close()
