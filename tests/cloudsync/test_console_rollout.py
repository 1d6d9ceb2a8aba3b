"""Update roll-outs in waves (issue 17 #7) against a real cloud on SQLite and PostgreSQL, with
boxes speaking the real signed HTTP API (CloudClient: heartbeat, feed): a wave goes out only
when every box of the one before reports the version; a silent wave pauses; pause, resume,
abort; a district admin neither sees nor acts on another district's roll-out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloudsync.console.rollout import plan_waves
from common import protocol as p
from edge.sync.client import CloudClient
from edge.sync.identity import Identity
from tests.cloudsync.console_helpers import console_cloud
from tests.cloudsync.helpers import Cloud, wait_for


@pytest.fixture
async def fast_cloud(db_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await console_cloud(db_url, tmp_path, rollout_poll_s=0.1)
    yield c
    await c.stop()


async def beat(ident: Identity, version: str) -> None:
    client = CloudClient(ident)
    try:
        await client.heartbeat(p.Heartbeat(software_version=version, devices=[]))
    finally:
        await client.close()


async def updates(ident: Identity) -> list[dict]:
    """The update commands waiting in a box's feed, as the box downloads them."""
    client = CloudClient(ident)
    try:
        page = await client.feed(0, 0)
    finally:
        await client.close()
    return [i for i in page["items"] if i["action"] == "update"]


def test_wave_sizes() -> None:
    assert plan_waves(["1", "10%", "100%"], 50) == [1, 5, 50]
    assert plan_waves(["1", "10%", "100%"], 3) == [1, 3]
    assert plan_waves(["1"], 4) == [1, 4]
    assert plan_waves(["50%"], 1) == [1]


async def test_waves_advance_only_when_the_boxes_report_the_version(fast_cloud: Cloud) -> None:
    cloud = fast_cloud
    boxes = [await cloud.new_box(f"c{i}", district="lixia", street="s1") for i in range(1, 4)]
    other = await cloud.new_box("z1", district="shizhong", street="s2")
    for b in [*boxes, other]:
        await beat(b, "1.0.0")
    await beat(boxes[1], "1.0.0")  # heard from last: the canary
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    lixia_viewer = await cloud.ops_user("lixia-viewer", "viewer", "lixia")
    shizhong = await cloud.ops_user("sz-admin", "admin", "shizhong")

    status, ro = await cloud.call(
        "POST",
        "/api/v1/ops/rollouts",
        lixia,
        json={"version": "2.0.0", "targets": {"areas": ["lixia"]}, "waves": ["1", "100%"],
              "wave_timeout_s": 60},
    )  # fmt: skip
    assert status == 201, ro
    rid = ro["id"]
    assert (ro["state"], ro["wave"], ro["waves"], ro["boxes"], ro["sent"]) == (
        "running",
        1,
        [1, 3],
        3,
        1,
    )
    assert ro["area_path"] == "/jinan/lixia/"
    # Wave 1 is the canary only, down the feed as the box's update command.
    canary = await updates(boxes[1])
    assert [(u["target_kind"], u["args"]["version"], u["args"]["rollout"]) for u in canary] == [
        ("box", "2.0.0", rid)
    ]
    for b in (boxes[0], boxes[2], other):
        assert await updates(b) == []

    # The canary applies the command but still reports the old version: nothing moves on,
    # over many polls of the stepper (0.1 s).
    await beat(boxes[1], "1.0.0")
    for _ in range(10):
        _, now = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}", lixia)
        assert (now["wave"], now["sent"], now["done"]) == (1, 1, 0)
    assert await updates(boxes[0]) == [] and await updates(boxes[2]) == []

    # Another district: neither in the list nor by id, nor can it act on it.
    _, listed = await cloud.call("GET", "/api/v1/ops/rollouts", shizhong)
    assert listed["items"] == []
    status, _ = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}", shizhong)
    assert status == 404
    status, _ = await cloud.call(
        "POST", f"/api/v1/ops/rollouts/{rid}/state", shizhong, json={"action": "abort"}
    )
    assert status == 404
    status, _ = await cloud.call(
        "POST",
        "/api/v1/ops/rollouts",
        shizhong,
        json={"version": "2.0.0", "targets": {"boxes": [boxes[0].box_id]}},
    )
    assert status == 403
    status, _ = await cloud.call(
        "POST", f"/api/v1/ops/rollouts/{rid}/state", lixia_viewer, json={"action": "pause"}
    )
    assert status == 403
    _, still = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}", lixia)
    assert still["state"] == "running"

    # The canary now runs 2.0.0: the stepper sends the rest without anyone asking.
    await beat(boxes[1], "2.0.0")

    async def second_wave() -> bool:
        return bool(await updates(boxes[0])) and bool(await updates(boxes[2]))

    await wait_for(second_wave, 10)
    assert await updates(other) == []
    for b in (boxes[0], boxes[2]):
        await beat(b, "2.0.0")

    async def finished() -> dict | None:
        _, r = await cloud.call("GET", "/api/v1/ops/rollouts", lixia)
        return r["items"][0] if r["items"][0]["state"] == "done" else None

    done = await wait_for(finished, 10)
    assert (done["wave"], done["sent"], done["done"]) == (2, 3, 3)
    _, detail = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}", lixia)
    assert next((b["box_id"], b["wave"]) for b in detail["box_list"]) == (boxes[1].box_id, 1)
    assert all(b["done_at"] for b in detail["box_list"])
    # Audit-logged: the creation (HTTP) and each wave the stepper sent.
    _, audit = await cloud.call("GET", "/api/v1/ops/audit", lixia)
    actions = [a["action"] for a in audit["items"]]
    for want in ("POST /api/v1/ops/rollouts", "rollout wave 1", "rollout wave 2", "rollout done"):
        assert want in actions, actions
    assert all(a["area_path"].startswith("/jinan/lixia/") for a in audit["items"])


async def test_a_silent_wave_pauses_resume_resends_abort_stops(fast_cloud: Cloud) -> None:
    cloud = fast_cloud
    a = await cloud.new_box("c1", district="lixia", street="s1")
    b = await cloud.new_box("c2", district="lixia", street="s1")
    await beat(b, "1.0.0")
    await beat(a, "1.0.0")  # the canary
    status, ro = await cloud.call(
        "POST",
        "/api/v1/ops/rollouts",
        json={"version": "3.1.0", "targets": {"boxes": [a.box_id, b.box_id]}, "waves": ["1"],
              "wave_timeout_s": 1},
    )  # fmt: skip
    assert status == 201, ro
    rid = ro["id"]

    async def paused() -> dict | None:
        _, r = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}")
        return r if r["state"] == "paused" else None

    r = await wait_for(paused, 10)
    assert "wave 1" in r["note"] and a.box_id in r["note"]
    assert len(await updates(a)) == 1 and await updates(b) == []
    # Resume re-sends to the waiting canary (the box answers a repeat it already runs).
    status, r = await cloud.call(
        "POST", f"/api/v1/ops/rollouts/{rid}/state", json={"action": "resume"}
    )
    assert status == 200 and r["state"] == "running", r
    assert len(await updates(a)) == 2
    status, r = await cloud.call(
        "POST", f"/api/v1/ops/rollouts/{rid}/state", json={"action": "abort"}
    )
    assert status == 200 and r["state"] == "aborted"
    await beat(a, "3.1.0")  # too late: an aborted roll-out sends nothing more
    for _ in range(5):
        _, r = await cloud.call("GET", f"/api/v1/ops/rollouts/{rid}")
        assert r["state"] == "aborted" and r["wave"] == 1
    assert await updates(b) == []
    status, r = await cloud.call(
        "POST", f"/api/v1/ops/rollouts/{rid}/state", json={"action": "resume"}
    )
    assert status == 409, r
    status, r = await cloud.call(
        "POST",
        "/api/v1/ops/rollouts",
        json={"version": "3.1.0", "targets": {"areas": ["c1"]}, "waves": ["0%"]},
    )
    assert status == 400 and "waves" in r["error"], r
