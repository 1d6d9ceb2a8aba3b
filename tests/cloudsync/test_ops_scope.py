"""Ops users stay inside their area: the content library (issue 13 #7) and publishing or
broadcasting outside the area (issue 13 #12); ops tokens rotate and are removed with the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

from edge.sync.client import CloudClient
from tests.cloudsync.helpers import Cloud
from tests.cloudsync.test_ops_api import two_districts


async def upload(cloud: Cloud, token: str, data: bytes, title: str) -> str:
    status, body = await cloud.call("POST", f"/api/v1/ops/content?title={title}", token, data=data)
    assert status == 201, body
    return body["sha256"]


async def test_content_library_is_scoped_by_the_uploaders_area(cloud: Cloud) -> None:
    _, b = await two_districts(cloud)
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    shizhong = await cloud.ops_user("shizhong-admin", "admin", "shizhong")
    viewer_sz = await cloud.ops_user("shizhong-viewer", "viewer", "shizhong")
    mine = await upload(cloud, lixia, b"lixia poster", "lixia")
    theirs = await upload(cloud, shizhong, b"shizhong poster", "shizhong")
    city = await upload(cloud, cloud.admin, b"city-wide notice", "city")
    # The same file uploaded in both districts is in both libraries.
    both = await upload(cloud, lixia, b"same file", "a")
    assert await upload(cloud, shizhong, b"same file", "b") == both

    async def listed(token: str) -> set[str]:
        status, body = await cloud.call("GET", "/api/v1/ops/content", token)
        assert status == 200, body
        return {x["sha256"] for x in body["items"]}

    assert await listed(lixia) == {mine, city, both}
    assert await listed(viewer_sz) == {theirs, city, both}
    assert await listed(cloud.admin) == {mine, theirs, city, both}
    # Another district's file: not found, through the library or the blob route.
    for path in (f"/api/v1/ops/content/{mine}", f"/api/v1/blobs/{mine}"):
        status, _ = await cloud.call("GET", path, viewer_sz)
        assert status == 404, path
        status, _ = await cloud.call("GET", path, lixia)
        assert status == 200, path
    # A box still downloads any file it is sent (it names it by SHA-256).
    client = CloudClient(b)
    try:
        url = f"{cloud.url}/api/v1/blobs/{mine}"
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, headers=client.auth_headers("GET", url)) as r,
        ):
            assert r.status == 200 and await r.read() == b"lixia poster"
    finally:
        await client.close()


async def test_a_file_both_districts_uploaded_shows_each_its_own_title_and_uploader(
    cloud: Cloud,
) -> None:
    """Probe 12: the library listed a file's first upload's title, uploader and time to
    every area that uploaded the same bytes later: a sibling district saw the other's title
    and staff name, and its own title was lost."""
    await two_districts(cloud)
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    shizhong = await cloud.ops_user("shizhong-admin", "admin", "shizhong")
    sha = await upload(cloud, lixia, b"same poster", "lixia-internal-draft")
    assert await upload(cloud, shizhong, b"same poster", "shizhong-notice") == sha

    async def row(token: str) -> tuple[str, str]:
        _, body = await cloud.call("GET", "/api/v1/ops/content", token)
        (item,) = [x for x in body["items"] if x["sha256"] == sha]
        return item["title"], item["created_by"]

    assert await row(shizhong) == ("shizhong-notice", "shizhong-admin")
    assert await row(lixia) == ("lixia-internal-draft", "lixia-admin")
    assert (await row(cloud.admin))[1] in ("lixia-admin", "shizhong-admin")


async def test_publish_and_broadcast_outside_scope_are_refused(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    emergency = {"message": "停水通知", "level": "warning"}
    for path, extra in (
        ("/api/v1/ops/emergency", emergency),
        ("/api/v1/ops/publish", {"action": "content", "args": {"sha256": "0" * 64}}),
        ("/api/v1/ops/emergency/cancel", {"emergency_id": "em-1"}),
    ):
        for targets, status, words in (
            ({"areas": ["c2"]}, 403, "targets.areas: 'c2' is outside your scope /jinan/lixia/"),
            ({"areas": ["shizhong"]}, 403, "outside your scope"),
            ({"areas": ["jinan"]}, 403, "'jinan' is outside your scope"),  # wider than mine
            ({"boxes": [b.box_id]}, 403, f"targets.boxes: {b.box_id!r} is outside"),
            ({"areas": ["c1", "c2"]}, 403, "'c2'"),  # one bad target refuses the lot
            ({"areas": ["nowhere"]}, 404, "targets.areas: no area 'nowhere'"),
            ({"boxes": ["box-nope"]}, 404, "targets.boxes: no box 'box-nope'"),
        ):
            got, body = await cloud.call("POST", path, lixia, json={**extra, "targets": targets})
            assert got == status and words in body["error"], (path, targets, got, body)
        mine = {**extra, "targets": {"areas": ["c1"]}}
        got, body = await cloud.call("POST", path, lixia, json=mine)
        assert got in (200, 201) and body["boxes"] == 1, body
    # Nothing reached the other district's box from the refused calls.
    assert await cloud.storage.feed_after(b.box_id, 0, 100) == []
    assert len(await cloud.storage.feed_after(a.box_id, 0, 100)) == 3


async def test_ops_tokens_rotate_and_remove_with_the_cli(cloud: Cloud) -> None:
    cli = str(Path(sys.executable).parent / "qilu-cloudsync")
    old = await cloud.ops_user("alice", "viewer", None)
    assert (await cloud.call("GET", "/api/v1/ops/me", old))[0] == 200

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([cli, "ops-user", "--db", cloud.db, "--name", "alice", *args],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    out = await asyncio.to_thread(run, "--rotate")
    assert out.returncode == 0, out.stderr
    new = out.stdout.strip().splitlines()[-1]
    assert (await cloud.call("GET", "/api/v1/ops/me", old))[0] == 401
    status, me = await cloud.call("GET", "/api/v1/ops/me", new)
    assert status == 200 and me["name"] == "alice" and me["role"] == "viewer"
    out = await asyncio.to_thread(run, "--remove")
    assert out.returncode == 0, out.stderr
    assert (await cloud.call("GET", "/api/v1/ops/me", new))[0] == 401
    out = await asyncio.to_thread(run, "--rotate")
    assert out.returncode != 0 and "no ops user 'alice'" in out.stderr


async def test_only_the_senders_area_or_a_wider_one_ends_an_emergency(cloud: Cloud) -> None:
    """Security probe 5: a district admin could end the network's emergency broadcast on the
    district's boxes (the cancel named only the id and targets inside the caller's area)."""
    a, _ = await two_districts(cloud)
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    warn = {"message": "台风红色预警，请勿外出", "level": "critical", "targets": {"areas": ["c1"]}}
    status, sent = await cloud.call("POST", "/api/v1/ops/emergency", cloud.admin, json=warn)
    assert status == 201, sent
    cancel = {"emergency_id": sent["emergency_id"], "targets": {"areas": ["c1"]}}
    status, body = await cloud.call("POST", "/api/v1/ops/emergency/cancel", lixia, json=cancel)
    assert status == 403 and "only an admin of that area or a wider one" in body["error"], body
    assert [f["action"] for f in await cloud.storage.feed_after(a.box_id, 0, 100)] == [
        "emergency"]  # nothing ended it on the box
    # The district's own broadcast it ends; the network's admin ends the network's.
    status, own = await cloud.call("POST", "/api/v1/ops/emergency", lixia, json=warn)
    assert status == 201, own
    status, body = await cloud.call("POST", "/api/v1/ops/emergency/cancel", lixia, json={
        **cancel, "emergency_id": own["emergency_id"]})
    assert status == 200, body
    status, body = await cloud.call("POST", "/api/v1/ops/emergency/cancel", cloud.admin,
                                    json=cancel)
    assert status == 200, body
    assert [f["action"] for f in await cloud.storage.feed_after(a.box_id, 0, 100)] == [
        "emergency", "emergency", "emergency_cancel", "emergency_cancel"]


async def test_a_box_command_cannot_do_what_a_route_with_its_own_checks_refused(
    cloud: Cloud,
) -> None:
    """Probe 12: the generic box command route sent any action to a box in the caller's area,
    so a district admin refused ending the network's emergency (above) ended it with
    ``emergency_cancel`` as a box command, or replaced it with an ``emergency`` of the same id
    ending now; a ``text_model`` skipped the library check. Those actions go only through
    their own routes; door and box commands (ping, open) still go."""
    a, _ = await two_districts(cloud)
    lixia = await cloud.ops_user("lixia-admin", "admin", "lixia")
    warn = {"message": "台风红色预警，请勿外出", "level": "critical", "targets": {"areas": ["c1"]}}
    status, sent = await cloud.call("POST", "/api/v1/ops/emergency", cloud.admin, json=warn)
    assert status == 201, sent
    eid = sent["emergency_id"]
    for action, args in (
        ("emergency_cancel", {"id": eid}),
        ("emergency", {"id": eid, "title": "解除", "body": "解除", "level": "info",
                       "expires_at": "2020-01-01T00:00:00+00:00", "source": "cloud"}),
        ("text_model", {"sha256": "0" * 64}),
    ):
        status, body = await cloud.call(
            "POST", f"/api/v1/ops/boxes/{a.box_id}/commands", lixia,
            json={"target_kind": "box", "target_id": a.box_id, "action": action, "args": args},
        )  # fmt: skip
        assert status == 400 and body["field"] == "body.action", (action, body)
    assert [f["action"] for f in await cloud.storage.feed_after(a.box_id, 0, 100)] == [
        "emergency"]  # nothing ended or replaced it on the box
    for kind, action in (("box", "ping"), ("door", "open")):
        status, body = await cloud.call(
            "POST", f"/api/v1/ops/boxes/{a.box_id}/commands", lixia,
            json={"target_kind": kind, "target_id": "d1", "action": action},
        )  # fmt: skip
        assert status == 201, body
