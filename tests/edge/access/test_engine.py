"""The access engine end to end in a running box: file cameras showing faces and QR codes,
a pymodbus relay board as the doors, the real face pipeline, the API and commands."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import cv2
import pytest

from edge.access import store as db
from edge.access.passes import qr_frame
from edge.core.standard import Command
from edge.core.store import Store
from edge.faces import weights
from edge.faces.config import FacesConfig
from edge.faces.pipeline import FacePipeline
from tests.conftest import STAFF_TOKEN, api_url
from tests.edge.access.helpers import door_frame, enrol, head_turn, photo, write_folder

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}


@pytest.fixture(scope="module")
def pipeline():
    p = FacePipeline(FacesConfig(), weights.default_model_dir())
    yield p
    p.close()


def door_toml(door_id: str, port: int, coil: int, camera: str | None, building: str = "1") -> str:
    cam = f'camera = "{camera}"\n' if camera else ""
    return f"""
[[doors]]
id = "{door_id}"
type = "modbus"
building = "{building}"
{cam}port = {port}
coil = {coil}
pulse_ms = 300
"""


def cam_toml(cam_id: str, folder: Path) -> str:
    return f"""
[[cameras]]
id = "{cam_id}"
type = "file"
path = "{folder}"
fps = 15
"""


ACCESS = """
[access]
sample_fps = 15
cooldown_s = 30
denied_cooldown_s = 30
offline_ticket_after_s = 0.5
health_check_s = 0.2
"""


async def events(box, door_id: str, decision: str | None = None) -> list[dict]:
    return await box.store.run(db.list_events, box.store.sync, door_id, 50, decision)


async def wait_events(
    box, door_id: str, n: int, limit_s: float, decision: str | None = None
) -> list[dict]:
    async with asyncio.timeout(limit_s):
        while len(evs := await events(box, door_id, decision)) < n:  # noqa: ASYNC110 - store poll
            await asyncio.sleep(0.1)
    return evs


def obama_live_and_still(tmp_path: Path, make_config, board, pipeline, access: str,
                         more: str = ""):
    """The face doors' set-up: r-obama enrolled (building 1); door d-live (coil 0) sees him
    turn his head, d-still (coil 1) a still photo of him; ``more``: other doors' config."""
    known = door_frame(photo("obama.jpg"), pipeline)
    live = write_folder(tmp_path / "live", head_turn(known, pipeline))
    still = write_folder(tmp_path / "still", [known])
    p = board.tcp_port
    config = make_config(extra=(
        access
        + door_toml("d-live", p, 0, "c-live") + cam_toml("c-live", live)
        + door_toml("d-still", p, 1, "c-still") + cam_toml("c-still", still)
        + more
    ))  # fmt: skip
    store = Store(config.db_path, box_id=config.box.id)
    enrol(store, pipeline, "r-obama", door_frame(photo("obama2.jpg"), pipeline), building="1")
    store.close()
    return config


async def test_faces_at_the_doors(tmp_path: Path, make_config, run_box, board, pipeline) -> None:
    stranger = door_frame(photo("biden.jpg"), pipeline)
    unknown = write_folder(tmp_path / "unknown", head_turn(stranger, pipeline))
    more = door_toml("d-unknown", board.tcp_port, 2, "c-unknown") + cam_toml("c-unknown", unknown)
    config = obama_live_and_still(tmp_path, make_config, board, pipeline, ACCESS, more)

    t0 = time.monotonic()
    box = await run_box(config)
    # A known, live face opens its door: the coil goes on at the board.
    on = await asyncio.to_thread(board.wait_for, 1, 0, True, 40.0, t0)
    # (A "liveness" denial may come first while the turn has not shown enough yet.)
    granted = await wait_events(box, "d-live", 1, 10, decision="granted")
    ev = granted[0]
    assert (ev["decision"], ev["reason"], ev["resident_id"]) == ("granted", "match", "r-obama")
    assert ev["relay_changed"] is True and ev["similarity"] > 0.45 and ev["liveness"] >= 0.5
    assert ev["latency_ms"] < 2000  # bench/access.py measures it properly
    await asyncio.to_thread(board.wait_for, 1, 0, False, 3.0, on.t)
    # The same person, a still photo: refused for liveness, the relay never moves. (On a
    # loaded machine this once came out as `too_few_frames`: looks of a door more than the
    # tracker's 1 s apart started a new track each time, so the photo's track closed before
    # liveness had its frames. The tracker now ends a track only after a look that saw
    # nobody: test_faces_at_an_overloaded_box pins that at a starved box.)
    evs = await wait_events(box, "d-still", 1, 15)
    assert [(e["decision"], e["reason"]) for e in evs] == [("denied", "liveness")]
    assert evs[0]["resident_id"] == "r-obama"
    # A stranger: refused as unknown.
    evs = await wait_events(box, "d-unknown", 1, 15)
    assert [(e["decision"], e["reason"]) for e in evs] == [("denied", "unknown_face")]
    assert board.first_write(1, 1, True) is None and board.first_write(1, 2, True) is None
    # The cool-down: one grant for the person standing there, not one per frame.
    await asyncio.sleep(1.0)
    assert len([e for e in await events(box, "d-live") if e["decision"] == "granted"]) == 1


async def test_faces_at_an_overloaded_box(tmp_path: Path, make_config, run_box, board,
                                          pipeline) -> None:
    """A box that can look at each door only every ~1.7 s (face_capacity_per_s: an
    overloaded box, made deterministic) still decides on the looks it runs: the resident
    is let in, the still photo refused once for liveness. Before, a look more than the
    tracker's 1 s after the last one started a new track each time: the resident never
    gathered k frames and the photo left a ``too_few_frames`` refusal per look (the load
    sensitivity of test_faces_at_the_doors)."""
    access = ACCESS + "face_capacity_per_s = 1.2\n"  # two doors: ~0.6 looks a second each
    config = obama_live_and_still(tmp_path, make_config, board, pipeline, access)
    t0 = time.monotonic()
    box = await run_box(config)
    on = await asyncio.to_thread(board.wait_for, 1, 0, True, 40.0, t0)
    granted = await wait_events(box, "d-live", 1, 10, decision="granted")
    assert (granted[0]["reason"], granted[0]["resident_id"]) == ("match", "r-obama")
    assert granted[0]["frames_used"] >= 3
    await asyncio.to_thread(board.wait_for, 1, 0, False, 3.0, on.t)
    evs = await wait_events(box, "d-still", 1, 30)
    await asyncio.sleep(3.0)  # a few more looks: nothing more to say about the same face
    evs = await events(box, "d-still")
    assert [(e["decision"], e["reason"]) for e in evs] == [("denied", "liveness")]
    assert board.first_write(1, 1, True) is None
    load = box.service("access").status()["face_load"]
    assert load["capacity_per_s"] == 1.2 and load["overloaded"], load  # really starved
    looks = {d: v["looks"] for d, v in load["doors"].items()}
    elapsed = time.monotonic() - t0
    assert all(elapsed / n > 1.0 for n in looks.values()), (looks, elapsed)


async def test_qr_pass_on_camera_opens_once(tmp_path: Path, make_config, run_box, board) -> None:
    qr_dir = tmp_path / "qr"
    qr_dir.mkdir()
    cv2.imwrite(str(qr_dir / "0.png"), qr_frame("nothing") * 0 + 90)  # an empty hallway
    extra = ACCESS.replace("cooldown_s = 30\n", "cooldown_s = 1\n", 1) + door_toml(
        "d-qr", board.tcp_port, 3, "c-qr") + cam_toml("c-qr", qr_dir)
    config = make_config(extra=extra)
    store = Store(config.db_path, box_id=config.box.id)
    from edge.core.standard import Resident
    from edge.faces import store as store_faces

    store_faces.add_resident(store, Resident(id="r-host", name="host", building="1"))
    db.set_rights(store, "r-host", [], [], [], "test", all_doors=True)  # rights are explicit
    store.close()
    box = await run_box(config)
    url = api_url(box)
    async with aiohttp.ClientSession(headers=H) as s:
        until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        async with s.post(f"{url}/api/v1/passes", json={
            "resident_id": "r-host", "doors": ["d-qr"], "valid_to": until, "uses": 1,
        }) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
    # The visitor holds the QR up to the camera: frames go through the driver's own
    # publish path, exactly as its reader thread delivers them. Held up for a while it is one
    # showing (one event); taken away and shown again, the used-up pass is refused.
    img = qr_frame(created["qr_text"])
    empty = qr_frame("nothing") * 0 + 90
    cam = box.service("devices").get("camera", "c-qr")
    t0 = time.monotonic()
    async with asyncio.timeout(15):
        while not await events(box, "d-qr"):
            cam._publish(img.copy())
            await asyncio.sleep(1 / 15)
    for _ in range(30):  # 2 s more (twice cooldown_s) in view: still one showing
        cam._publish(img.copy())
        await asyncio.sleep(1 / 15)
    assert len(await events(box, "d-qr")) == 1
    for _ in range(25):  # gone for longer than cooldown_s
        cam._publish(empty.copy())
        await asyncio.sleep(1 / 15)
    async with asyncio.timeout(15):
        while len(await events(box, "d-qr")) < 2:
            cam._publish(img.copy())
            await asyncio.sleep(1 / 15)
    await asyncio.to_thread(board.wait_for, 1, 3, True, 5.0, t0)
    evs = sorted(await events(box, "d-qr"), key=lambda e: e["ts"])
    assert [(e["decision"], e["reason"], e["method"]) for e in evs[:2]] == [
        ("granted", "pass", "qr"), ("denied", "used_up", "qr")]
    assert evs[0]["pass_id"] == created["id"]


async def test_api_remote_open_pin_expiry_rights(
    tmp_path: Path, make_config, run_box, board
) -> None:
    config = make_config(extra=ACCESS + door_toml("d1", board.tcp_port, 5, None)
                         + door_toml("d2", board.tcp_port, 6, None, building="2"))
    store = Store(config.db_path, box_id=config.box.id)
    from edge.core.standard import Resident
    from edge.faces import store as store_faces

    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1"))
    db.set_rights(store, "r1", [], [], [], "test", all_doors=True)  # rights are explicit
    store.close()
    box = await run_box(config)
    url = api_url(box)
    async with aiohttp.ClientSession(headers=H) as s:
        # Remote open by staff: the coil goes on at the board, the actor is logged.
        t0 = time.monotonic()
        async with s.post(f"{url}/api/v1/doors/d1/open") as r:
            assert r.status == 200
            out = await r.json()
        assert out["granted"] and out["relay_changed"] is True
        await asyncio.to_thread(board.wait_for, 1, 5, True, 3.0, t0)
        evs = await events(box, "d1")
        assert evs[0]["actor"] == "test-staff" and evs[0]["method"] == "remote"
        async with s.post(f"{url}/api/v1/doors/nope/open") as r:
            assert r.status == 404
        # The cloud's door.open command goes the same way.
        res = await box.commands.dispatch("door", "d2", Command(id="c1", action="open",
                                                                 actor="ops-center"))
        assert res.ok, res.detail
        assert (await events(box, "d2"))[0]["actor"] == "ops-center"
        # A pass by PIN: two uses, then refused; a wrong PIN is refused.
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        async with s.post(f"{url}/api/v1/passes", json={
            "resident_id": "r1", "doors": ["d1"], "valid_to": until, "uses": 2,
            "visitor": "快递",
        }) as r:
            assert r.status == 201
            p = await r.json()
        assert len(p["pin"]) == 6 and p["qr_png_base64"]
        results = []
        for _ in range(3):
            async with s.post(f"{url}/api/v1/doors/d1/pin", json={"pin": p["pin"]}) as r:
                results.append((r.status, (await r.json())["reason"]))
        assert results == [(200, "pass"), (200, "pass"), (403, "used_up")]
        wrong = "0" * 6 if p["pin"] != "0" * 6 else "1" * 6
        async with s.post(f"{url}/api/v1/doors/d1/pin", json={"pin": wrong}) as r:
            assert r.status == 403 and (await r.json())["reason"] == "unknown_pin"
        async with s.post(f"{url}/api/v1/doors/d1/pin", json={"pin": "12ab"}) as r:
            assert r.status == 400 and (await r.json())["field"] == "pin"
        # A pass at the wrong door, and an expired pass.
        async with s.post(f"{url}/api/v1/doors/d2/qr", json={"text": p["qr_text"]}) as r:
            assert (await r.json())["reason"] == "wrong_door"
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        async with s.post(f"{url}/api/v1/passes", json={
            "resident_id": "r1", "doors": ["d1"], "valid_to": soon}) as r:
            short = await r.json()
        await asyncio.sleep(1.2)
        async with s.post(f"{url}/api/v1/doors/d1/qr", json={"text": short["qr_text"]}) as r:
            assert r.status == 403 and (await r.json())["reason"] == "expired"
        forged = short["qr_text"][:-3] + "AAA"
        async with s.post(f"{url}/api/v1/doors/d1/qr", json={"text": forged}) as r:
            assert (await r.json())["reason"] == "bad_signature"
        # A signature with letters outside ASCII is a bad one too, not a 500 (security probe 4).
        async with s.post(f"{url}/api/v1/doors/d1/qr",
                          json={"text": short["qr_text"][:-3] + "签名码"}) as r:
            assert r.status == 403 and (await r.json())["reason"] == "bad_signature"
        # Bad input names the field and stores nothing.
        async with s.post(f"{url}/api/v1/passes", json={
            "resident_id": "r1", "doors": ["zz"], "valid_to": until}) as r:
            assert r.status == 400 and (await r.json())["field"] == "doors"
        assert len(await box.store.run(db.list_passes, box.store.sync, "r1")) == 2
        # Rights, windows and blocks change what the policy says.
        async with s.put(f"{url}/api/v1/residents/r1/access", json={
            "buildings": ["2"], "windows": [{"days": "1-7", "start": "00:00", "end": "24:00"}],
        }) as r:
            assert r.status == 200, await r.text()
        svc = box.service("access")
        assert await svc.check_policy("r1", "d2") is None
        assert await svc.check_policy("r1", "d1") == "not_allowed_here"
        async with s.put(f"{url}/api/v1/residents/r1/access", json={
            "windows": [{"start": "25:00", "end": "08:00"}]}) as r:
            assert r.status == 400 and (await r.json())["field"] == "windows.0.start"
        async with s.post(f"{url}/api/v1/access/blocks", json={
            "resident_id": "r1", "reason": "欠费"}) as r:
            blk = await r.json()
        assert await svc.check_policy("r1", "d2") == "blocked"
        async with s.delete(f"{url}/api/v1/access/blocks/{blk['id']}") as r:
            assert r.status == 200
        assert await svc.check_policy("r1", "d2") is None
