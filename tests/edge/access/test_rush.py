"""Rush hour (issue 21): several face doors at once through the one face scheduler.

Real peers: ``file`` cameras playing mp4 recordings of people walking up (made from the test
photos, edge/access/synthetic.py ``approach``), a pymodbus relay board as the doors, the real
face pipeline. Four residents get in at four doors while a stranger at a fifth camera is
refused; a box whose face work cannot keep up says so (status, health event, doctor) and
opens nothing on partial evidence.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np

from edge.access import ACCESS as ACCESS_SERVICE
from edge.access import synthetic
from edge.core.store import Store
from edge.faces.config import FacesConfig
from edge.faces.pipeline import Look
from edge.faces.scheduler import FaceScheduler
from edge.installer.doctor import Doctor
from tests.conftest import db_count
from tests.edge.access.helpers import enrol, photo
from tests.edge.access.test_engine import (  # noqa: F401 - fixtures
    door_toml,
    events,
    pipeline,
    wait_events,
)

SIZE = (640, 480)
RESIDENTS = {  # resident -> (enrolment photo, the photo their approach is made from)
    "r-obama": ("obama2.jpg", "obama.jpg"),
    "r-a": ("person_a_1.jpg", "person_a_2.jpg"),
    "r-b": ("person_b_1.jpg", "person_b_2.jpg"),
    "r-biden": ("biden.jpg", "biden.jpg"),
}
STRANGER = "impostor_2.jpg"


def recording(path: Path, pipe, shown: str, visit: int = 45) -> Path:
    """An mp4 a file camera loops: 1 s of empty hallway, then the person walking up (3 s)."""
    img = photo(shown)
    face = pipe.detector.detect(img)[0]
    frames = [synthetic.hallway(SIZE)] * 15 + synthetic.approach(img, face, visit, SIZE,
                                                                 (110.0, 140.0))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 15, SIZE)
    assert w.isOpened()
    for f in frames:
        w.write(f)
    w.release()
    return path


def video_cam(cam_id: str, path: Path) -> str:
    return f'\n[[cameras]]\nid = "{cam_id}"\ntype = "file"\npath = "{path}"\nfps = 15\n'


def access(**over) -> str:
    keys = {"sample_fps": 15, "cooldown_s": 30, "denied_cooldown_s": 30, "qr": "false", **over}
    return "\n[access]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())


def enrol_all(config, pipe) -> None:
    store = Store(config.db_path, box_id=config.box.id)
    for rid, (enrol_photo, _) in RESIDENTS.items():
        img = photo(enrol_photo)
        face = pipe.detector.detect(img)[0]
        enrol(store, pipe, rid, synthetic.door_frame(img, face, 150), building="1")
    store.close()


async def test_four_residents_in_at_once_stranger_refused(
    tmp_path: Path, make_config, run_box, board, pipeline  # noqa: F811
) -> None:
    p = board.tcp_port
    extra = access()
    for i, (_rid, (_, shown)) in enumerate(RESIDENTS.items()):
        # face alone: with 4 residents the expected acceptance (dev fit) is below 98 %, where
        # "auto" would ask for a second factor (docs/faces.md)
        extra += door_toml(f"d-{i}", p, i, f"c-{i}") + 'second_factor = "never"\n'
        extra += video_cam(f"c-{i}", recording(tmp_path / f"r{i}.mp4", pipeline, shown))
    extra += door_toml("d-stranger", p, 4, "c-stranger")
    extra += video_cam("c-stranger", recording(tmp_path / "s.mp4", pipeline, STRANGER))
    config = make_config(extra=extra)
    enrol_all(config, pipeline)
    t0 = time.monotonic()
    box = await run_box(config)
    # All four doors open: the coils go on at the board (the budget on a quiet 2-core box is
    # 250 ms from the face appearing, bench/rush.py; here only "within one approach" of the
    # first, generous for a shared CI machine).
    ons = [await asyncio.to_thread(board.wait_for, 1, i, True, 90.0, t0) for i in range(4)]
    assert max(w.t for w in ons) - t0 < 90
    k = box.config.section(FacesConfig).visit_k
    for i, rid in enumerate(RESIDENTS):
        ev = (await wait_events(box, f"d-{i}", 1, 10, decision="granted"))[0]
        assert (ev["reason"], ev["resident_id"]) == ("match", rid)
        # The same evidence as before the scheduler: k frames of one track, live.
        assert ev["frames_used"] >= k and ev["liveness"] >= 0.5
    # The stranger at the fifth camera: refused, the coil never moves.
    denied = await wait_events(box, "d-stranger", 1, 30, decision="denied")
    assert denied[0]["reason"] == "unknown_face" and denied[0]["resident_id"] is None
    assert board.first_write(1, 4, True) is None
    assert await events(box, "d-stranger", "granted") == []
    st = box.get(ACCESS_SERVICE).status()
    load = st["face_load"]
    assert set(load["doors"]) == {"d-0", "d-1", "d-2", "d-3", "d-stranger"}
    assert all(d["looks"] > 0 for d in load["doors"].values())
    # Once a resident is in, their door only rechecks the face: fewer looks than frames
    # (given a few frames past the grant, which on a busy machine may come late in the clip).
    for _ in range(40):
        w = box.get(ACCESS_SERVICE).status()["watching"]["d-0"]
        if w["looks"] < w["examined"]:
            break
        await asyncio.sleep(0.25)
    assert w["looks"] < w["examined"], w


async def test_overloaded_box_says_so_and_opens_nothing_on_partial_evidence(
    tmp_path: Path, make_config, run_box, board, pipeline  # noqa: F811
) -> None:
    # A face thread that manages one look every 2 s for the whole box, and frames that must be
    # looked at within 100 ms: most frames are dropped, no door gets k frames of one approach.
    p = board.tcp_port
    extra = access(face_capacity_per_s=0.5, face_deadline_ms=100)
    for i, (_rid, (_, shown)) in enumerate(RESIDENTS.items()):
        extra += door_toml(f"d-{i}", p, i, f"c-{i}")
        extra += video_cam(f"c-{i}", recording(tmp_path / f"r{i}.mp4", pipeline, shown))
    config = make_config(extra=extra)
    enrol_all(config, pipeline)
    box = await run_box(config)
    svc = box.get(ACCESS_SERVICE)
    async with asyncio.timeout(30):
        while not (svc.scheduler is not None and svc.scheduler.overloaded):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    await asyncio.sleep(8)  # people keep coming: two more approaches at every door
    load = svc.status()["face_load"]
    assert load["overloaded"] is True and "dropped" in load["reason"]
    assert sum(d["dropped_stale"] for d in load["doors"].values()) > 0
    assert sum(d["looks"] for d in load["doors"].values()) > 0  # it did look, slowly
    # Nothing opened: no coil write at all, no granted event.
    assert [w for w in board.writes if w.on] == []
    for i in range(4):
        assert await events(box, f"d-{i}", "granted") == []
    # The health event and the doctor say so.
    n = db_count(box, "SELECT count(*) FROM device_health WHERE device_kind = 'box' "
                      "AND device_id = 'face-scheduler' AND state = 'degraded'")
    assert n >= 1
    res = await Doctor(config=box.config, box=box).check_face_load()
    assert res.status == "warn" and res.detail.key == "face_load.over"
    assert "dropped" in res.detail.en


async def test_longest_waiting_person_first_and_stale_frames_dropped(pipeline) -> None:  # noqa: F811
    frame = synthetic.door_frame(photo("obama.jpg"), pipeline.detector.detect(
        photo("obama.jpg"))[0], 150)
    sched = FaceScheduler(pipeline, deadline_s=30.0, batch_max=1)
    order: list[str] = []

    async def ask(door: str, waiting_since: float, t_frame: float) -> object:
        res = await sched.look(door, Look(frame), t_frame, waiting_since)
        order.append(door)
        return res

    now = time.monotonic()
    # The face thread is busy with a first look while three doors ask; the person who has
    # waited longest (door b, 3 s) is served before a (1 s) and c (just arrived).
    first = asyncio.create_task(ask("x", now, now))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(ask(d, now - w, now)) for d, w in (("a", 1), ("c", 0), ("b", 3))]
    await asyncio.gather(first, *rest)
    assert order == ["x", "b", "a", "c"]
    # A frame older than the deadline is dropped, never looked at late.
    stale = await sched.look("a", Look(frame), time.monotonic() - 60.0)
    assert stale is None and sched.status()["doors"]["a"]["dropped_stale"] == 1
    await sched.close()


async def test_a_look_that_finishes_a_decision_goes_first_and_two_lanes_agree(
        pipeline) -> None:  # noqa: F811
    frame = synthetic.door_frame(photo("obama.jpg"), pipeline.detector.detect(
        photo("obama.jpg"))[0], 150)
    sched = FaceScheduler(pipeline, deadline_s=30.0, batch_max=1)
    order: list[str] = []

    async def ask(door: str, waited: float, **kw) -> object:
        now = time.monotonic()
        res = await sched.look(door, Look(frame), now, now - waited, **kw)
        order.append(door)
        return res

    first = asyncio.create_task(ask("x", 0))
    await asyncio.sleep(0)
    # A recheck waits behind every undecided person, however old; a look that can finish a
    # decision (k-1 frames agree, live) goes before a person who has waited longer.
    rest = [asyncio.create_task(ask("recheck", 9, urgent=False)),
            asyncio.create_task(ask("a", 3)),
            asyncio.create_task(ask("b", 0.5, finishing=True))]
    await asyncio.gather(first, *rest)
    assert order == ["x", "b", "a", "recheck"]
    await sched.close()

    # Two lanes: two doors' looks run side by side, each lane on its own copy of the nets,
    # and the second lane's look gives the same face and embedding as the face thread's.
    await pipeline.run_lane(1, int)  # its nets loaded (the scheduler warms a lane first)
    sched = FaceScheduler(pipeline, deadline_s=30.0, workers=2)
    now = time.monotonic()
    got = await asyncio.gather(*[sched.look(d, Look(frame), now, now) for d in ("p", "q")])
    lanes = {r[0]: r[8] for r in sched.trace}
    assert sorted(lanes.values()) == [0, 1]
    (one, _), (two, _) = got
    assert one.face is not None and two.face is not None
    assert np.allclose(one.face.bbox, two.face.bbox, atol=0.5)
    assert float(one.embedding @ two.embedding) > 0.999
    assert sched.status()["workers"] == 2
    await sched.close()


def test_a_recheck_takes_the_scans_box_without_region_search(pipeline) -> None:  # noqa: F811
    frame = synthetic.door_frame(photo("obama.jpg"), pipeline.detector.detect(
        photo("obama.jpg"))[0], 150)
    where, full = pipeline.look_many_sync([Look(frame, None, live=False, embed=False),
                                           Look(frame, None, live=False)])
    assert where.face is not None and where.embedding is None
    assert "detect_region" not in where.decision.timings_ms  # no landmarks needed
    assert full.embedding is not None and "detect_region" in full.decision.timings_ms
    # The same face, found where the refined look found it.
    x, y, w, h = full.face.bbox
    wx, wy, ww, wh = where.face.bbox
    assert abs((wx + ww / 2) - (x + w / 2)) < 0.2 * w and abs(ww - w) < 0.3 * w
    assert abs((wy + wh / 2) - (y + h / 2)) < 0.2 * h


def test_sface_batch_gives_the_same_embeddings(pipeline) -> None:  # noqa: F811
    crops = []
    for name in ("obama.jpg", "biden.jpg", "person_a_1.jpg"):
        fr = pipeline.analyse_sync(photo(name), max_faces=1).faces[0]
        crops.append(fr.aligned)
    one = np.stack([pipeline.embedder.embed(c) for c in crops])
    batch = np.stack(pipeline.embedder.embed_batch(crops))
    assert batch.shape == (3, 128)
    assert np.abs(one - batch).max() < 1e-4
    assert float(batch[0] @ batch[1]) < 0.5  # different people stay apart (not one vector)
