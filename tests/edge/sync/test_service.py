"""The sync service in a real box daemon against a real cloud (SQLite backend) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edge.core.standard import AccessEvent, Command, DeviceHealth, Report, new_id
from edge.features import load_config
from edge.installer.cloud_checks import read_identity
from edge.sync import store as ob
from tests.cloudsync.helpers import Cloud, cli_provision, serve_tls, start_cloud, wait_for
from tests.conftest import (
    STAFF_TOKEN,
    api_url,
    box_toml,
    daemon_user_folder,
    fill,
    needs_daemon_user,
    small_fs_at,
    start_daemon_as_user,
    stop_process,
)

FAST = """
[sync]
backoff_min_s = 0.05
backoff_max_s = 0.5
feed_wait_s = 5
heartbeat_s = 0.5
request_timeout_s = 5
"""


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    c = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    yield c
    await c.stop()


async def provision_cli(config_path: Path, cloud: Cloud) -> str:
    return await cli_provision(config_path, cloud.url, await cloud.claim())


async def test_provision_upload_feed_and_status(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    assert stat.S_IMODE(ident_file.stat().st_mode) == 0o600
    ident = json.loads(ident_file.read_text())
    assert ident["cloud"] == cloud.url and len(ident["secret"]) > 30

    box = await run_box(config)
    opened: list[tuple[str, Command]] = []

    async def door_open(target_id: str, cmd: Command) -> str:
        opened.append((target_id, cmd))
        return "opened"

    box.commands.register("door", "open", door_open)
    for i in range(50):
        await box.store.record(
            AccessEvent(id=f"ae-{i}", door_id="door-1", method="qr", decision="granted")
        )
    await box.store.record(Report(id="rp-1", text="楼道灯坏了", category="facilities_repair"))

    async def arrived() -> bool:
        return len(await cloud.storage.box_records(ident["box_id"])) == 51

    await wait_for(arrived, 10)
    got = await cloud.storage.box_records(ident["box_id"])
    assert [r["seq"] for r in got] == sorted(r["seq"] for r in got)
    assert await box.store.outbox_stats() == {"rows": 0, "bytes": 0}

    # A remote door open from ops reaches the handler through the feed within ~1 s.
    t0 = time.monotonic()
    status, _ = await cloud.call(
        "POST",
        f"/api/v1/ops/boxes/{ident['box_id']}/commands",
        json={"target_kind": "door", "target_id": "door-1", "action": "open"},
    )
    assert status == 201

    async def done() -> bool:
        return bool(opened)

    await wait_for(done, 3, 0.02)
    assert time.monotonic() - t0 < 1.5
    target, cmd = opened[0]
    assert target == "door-1" and cmd.actor == "cloud:root"
    log = await box.store.run(ob.feed_log, box.store.sync)
    assert log[0]["ok"] == 1 and log[0]["detail"] == "opened"

    # Unknown actions are logged as failed and do not stop the feed.
    await cloud.call(
        "POST",
        f"/api/v1/ops/boxes/{ident['box_id']}/commands",
        json={"target_kind": "box", "target_id": "x", "action": "no_such"},
    )
    await cloud.call(
        "POST",
        f"/api/v1/ops/boxes/{ident['box_id']}/commands",
        json={"target_kind": "door", "target_id": "door-2", "action": "open"},
    )
    await wait_for(lambda: _len_at_least(opened, 2), 3, 0.02)
    log = await box.store.run(ob.feed_log, box.store.sync)
    assert [x["ok"] for x in log[:3]] == [1, 0, 1]

    # Heartbeat: the fleet view shows version and backlog; the box API shows sync status.
    async def seen() -> bool:
        _, b = await cloud.call("GET", f"/api/v1/ops/boxes/{ident['box_id']}")
        return bool(b.get("software_version")) and b["feed_cursor"] >= 3

    await wait_for(seen, 5)
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{api_url(box)}/api/v1/sync/status", headers={"Authorization": f"Bearer {STAFF_TOKEN}"}
        ) as r,
    ):
        st = await r.json()
    assert st["provisioned"] and st["uploaded"] == 51 and st["feed_applied"] == 3

    # Rotation through the box API: the new secret is saved and used.
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{api_url(box)}/api/v1/sync/rotate", headers={"Authorization": f"Bearer {STAFF_TOKEN}"}
        ) as r,
    ):
        assert r.status == 200
    assert json.loads(ident_file.read_text())["secret"] != ident["secret"]
    assert stat.S_IMODE(ident_file.stat().st_mode) == 0o600
    await box.store.record(
        AccessEvent(id="ae-after", door_id="door-1", method="qr", decision="granted")
    )

    async def all_52() -> bool:
        return len(await cloud.storage.box_records(ident["box_id"])) == 52

    await wait_for(all_52, 5)


async def _len_at_least(xs: list, n: int) -> bool:
    return len(xs) >= n


@needs_daemon_user
async def test_a_box_provisioned_by_root_syncs_as_the_daemon_user(cloud: Cloud) -> None:
    """On an installed box the daemon runs as its own user (systemd User=qilu-edge, data dir
    owned by it, 0750) and the installer provisions with `sudo qilu-edge provision` (the
    config and data are not theirs). The identity file came out root:root 0600: the daemon
    could not read it, never synced (the one-time claim code spent), and the doctor, run as
    root too, said provisioned and cloud reachable."""
    await cloud.community()
    base = daemon_user_folder("qilu-provision-")
    proc: subprocess.Popen | None = None
    try:
        data = base / "data"
        config = base / "edge.toml"
        config.write_text(box_toml(base, extra=FAST + "\n[faces]\nenabled = false\n"))
        config.chmod(0o644)
        await provision_cli(config, cloud)  # as root, the way the installer runs it
        ident_file = data / "cloud-identity.json"
        assert stat.S_IMODE(ident_file.stat().st_mode) == 0o600
        box_id = json.loads(ident_file.read_text())["box_id"]
        proc = await asyncio.to_thread(start_daemon_as_user, config)

        async def seen() -> bool:
            assert proc is not None and proc.poll() is None, "the daemon exited"
            _, b = await cloud.call("GET", f"/api/v1/ops/boxes/{box_id}")
            return bool(b.get("last_seen_at"))  # a heartbeat (provisioning does not set it)

        try:
            await wait_for(seen, 30, 0.2)
        except TimeoutError:
            stop_process(proc)
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the box never reached the cloud: {err[-1500:]}") from None
        # A box provisioned so before: the doctor, run as root, says what the daemon meets.
        os.chown(ident_file, 0, 0)
        _, out = read_identity(load_config(config))
        assert out.status == "fail" and "cannot read" in out.detail.en, out.detail.en
        assert out.hint is not None and f"chown nobody {ident_file}" in out.hint.en
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


async def test_a_relative_ca_file_is_the_config_folders_for_the_daemon_too(
    cloud: Cloud, run_box, tmp_path: Path
) -> None:
    """`ca_file = "cloud-ca.pem"` beside edge.toml (the example config: relative paths are
    relative to the file's folder) worked for `provision` and the doctor run in /etc/qilu-edge,
    but the daemon (systemd: working directory /) looked for it in its own working directory:
    its sync task died on FileNotFoundError and the box never synced."""
    await cloud.community()
    https, _ = await serve_tls(cloud, tmp_path)  # tmp_path/cloud-ca.pem, beside the config
    config_path = tmp_path / "edge.toml"
    config_path.write_text(box_toml(tmp_path, extra=FAST + 'ca_file = "cloud-ca.pem"\n'))
    code, out = await run_cli("provision", "-c", str(config_path), "--cloud", https,
                              "--claim", await cloud.claim(), cwd=Path("/"))  # fmt: skip
    assert code == 0, out
    box_id = json.loads((tmp_path / "data" / "cloud-identity.json").read_text())["box_id"]
    await run_box(load_config(config_path))  # this process's working directory: not tmp_path

    async def seen() -> bool:
        _, b = await cloud.call("GET", f"/api/v1/ops/boxes/{box_id}")
        return bool(b.get("last_seen_at"))

    await wait_for(seen, 15, 0.2)


async def test_a_running_box_provisioned_again_syncs_as_its_new_identity(
    cloud: Cloud, make_config, run_box
) -> None:
    """The way back for a revoked box (docs/security.md: revoke and re-provision; the doctor's
    hint: a new claim code, then `qilu-edge provision --force`) left the running daemon on
    the revoked identity until someone restarted it, which nothing said: the doctor, reading
    the new file, passed while the box sent nothing."""
    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    old = json.loads(ident_file.read_text())["box_id"]
    await run_box(config)

    def heard_from(box_id: str) -> Callable[[], Awaitable[bool]]:
        async def seen() -> bool:
            _, b = await cloud.call("GET", f"/api/v1/ops/boxes/{box_id}")
            return bool(b.get("last_seen_at"))

        return seen

    await wait_for(heard_from(old), 10, 0.1)
    status, body = await cloud.call("POST", f"/api/v1/ops/boxes/{old}/revoke")
    assert status == 200, body
    code, out = await run_cli("provision", "-c", str(config.source), "--cloud", cloud.url,
                              "--claim", await cloud.claim(), "--force", cwd=Path("/"))
    assert code == 0, out
    new = json.loads(ident_file.read_text())["box_id"]
    assert new != old
    await wait_for(heard_from(new), 15, 0.2)


async def test_a_box_provisioned_to_another_cloud_gets_that_clouds_commands(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    """Commissioned against one cloud (a test or staging cloud), then provisioned to the city's
    new cloud: the box kept the first cloud's feed cursor (and its applied ids), and the new
    cloud's feed starts at 1, so every command it sent (remote opening, content, emergency
    broadcasts) was skipped as already seen until its ids passed the old cursor."""
    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    first = json.loads(ident_file.read_text())["box_id"]
    box = await run_box(config)
    opened: list[str] = []

    async def door_open(target_id: str, cmd: Command) -> str:
        opened.append(target_id)
        return "opened"

    box.commands.register("door", "open", door_open)
    for i in range(3):  # the commissioning cloud's door tests
        status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{first}/commands", json={
            "target_kind": "door", "target_id": f"door-t{i}", "action": "open"})
        assert status == 201
    await wait_for(lambda: _len_at_least(opened, 3), 10, 0.05)

    city = await start_cloud(str(tmp_path / "city.db"), tmp_path / "city")
    try:
        await city.community()
        code, out = await run_cli("provision", "-c", str(config.source), "--cloud", city.url,
                                  "--claim", await city.claim(), "--force", cwd=Path("/"))
        assert code == 0, out
        second = json.loads(ident_file.read_text())["box_id"]
        status, _ = await city.call("POST", f"/api/v1/ops/boxes/{second}/commands", json={
            "target_kind": "door", "target_id": "door-1", "action": "open"})
        assert status == 201
        await wait_for(lambda: _len_at_least(opened, 4), 15, 0.1)
        assert opened[-1] == "door-1"
    finally:
        await city.stop()


async def run_cli(*args: str, cwd: Path) -> tuple[int | None, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from edge.cli import main; main()", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode()


async def test_disk_budget_warns_then_drops_only_telemetry(make_config, run_box) -> None:
    # Not provisioned: the box is offline, the outbox only grows.
    config = make_config(extra="[sync]\noutbox_budget_mb = 0.02\n")  # ~20 KB
    box = await run_box(config)
    svc = box.service("sync")
    for i in range(40):
        await box.store.record(
            AccessEvent(id=f"ae-{i}", door_id="d", method="qr", decision="granted")
        )
    for _ in range(100):
        await box.store.record(
            DeviceHealth(
                id=new_id("dh"), device_kind="door", device_id="d", state="online", reason="r" * 100
            )
        )
    await svc.check_budget()
    rows = await box.store.run(ob.outbox_rows, box.store.sync, 10_000)
    alerts = [r for r in rows if r.kind == "alert"]
    assert len(alerts) == 1 and '"type":"disk"' in alerts[0].payload
    assert sum(1 for r in rows if r.kind == "access_event") == 40  # never dropped
    assert svc.dropped_rows > 0
    assert (await box.store.outbox_stats())["bytes"] <= 0.02 * 1024 * 1024
    await svc.check_budget()  # no second warning while it stays high
    rows = await box.store.run(ob.outbox_rows, box.store.sync, 10_000)
    assert sum(1 for r in rows if r.kind == "alert") == 1


async def test_feed_comes_back_within_its_own_backoff_cap(
    make_config, run_box, tmp_path: Path
) -> None:
    """The cloud is down for 5 s: uploads may back off up to a minute, but the feed retries
    within feed_backoff_max_s, so a command published when the cloud is back arrives at once
    (with the 60 s cap it waited up to ~6 s here, up to a minute in the field)."""
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path, subprocess_=True)
    try:
        await cloud.community()
        config = make_config(
            extra="[sync]\nbackoff_min_s = 0.05\nbackoff_max_s = 60\nfeed_backoff_max_s = 0.3\n"
            "feed_wait_s = 5\nrequest_timeout_s = 5\n"
        )
        await provision_cli(config.source, cloud)
        box_id = json.loads((config.box.data_dir / "cloud-identity.json").read_text())["box_id"]
        box = await run_box(config)
        opened: list[float] = []

        async def door_open(target_id: str, cmd: Command) -> str:
            opened.append(time.monotonic())
            return "opened"

        box.commands.register("door", "open", door_open)
        await asyncio.sleep(1.0)  # the feed long-poll is waiting
        cloud.kill()
        await asyncio.sleep(5.0)  # connection refused, again and again: the back-off grows
        await asyncio.to_thread(cloud.start_proc)
        t0 = time.monotonic()
        status, _ = await cloud.call(
            "POST",
            f"/api/v1/ops/boxes/{box_id}/commands",
            json={"target_kind": "door", "target_id": "door-1", "action": "open"},
        )
        assert status == 201

        async def done() -> bool:
            return bool(opened)

        await wait_for(done, 10, 0.02)
        assert opened[0] - t0 < 1.5, opened[0] - t0
    finally:
        await cloud.stop()


async def test_feed_answers_not_signed_by_the_cloud_are_refused(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    """The probe's finding D: someone on the path (here a real HTTP proxy between box and
    cloud) injects a door.open into the feed answer. The box refuses the whole answer, opens
    nothing, logs it and stores an alert; the real cloud's own commands still arrive."""
    from aiohttp import web

    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    ident = json.loads(ident_file.read_text())
    injected = {"id": 999, "target_kind": "door", "target_id": "door-1", "action": "open",
                "args": {"actor": "mallory"}, "created_at": "2026-11-30T00:00:00+00:00",
                "expires_at": None, "expired": False}
    tamper = {"on": True}

    async def proxy(request: web.Request) -> web.StreamResponse:
        async with aiohttp.ClientSession() as s, s.request(
            request.method, cloud.url + request.raw_path, data=await request.read(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as r:
            body = await r.read()
            headers = {k: v for k, v in r.headers.items()
                       if k.lower() in ("content-type", "x-qilu-reply-signature",
                                        "x-qilu-server-time")}
        if request.path == "/api/v1/box/feed" and r.status == 200 and tamper["on"]:
            body = json.dumps({"items": [injected], "cursor": 999}).encode()  # sig kept
        return web.Response(status=r.status, body=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ident_file.write_text(json.dumps({**ident, "cloud": f"http://127.0.0.1:{port}"}))
    try:
        box = await run_box(config)
        opened: list[Command] = []

        async def door_open(target_id: str, cmd: Command) -> str:
            opened.append(cmd)
            return "opened"

        box.commands.register("door", "open", door_open)

        async def alerted() -> bool:
            rows = await box.store.run(
                lambda st: st.db.execute(
                    "SELECT type FROM alerts WHERE type = 'cloud_unsigned_command'").fetchall(),
                box.store.sync)
            return bool(rows)

        await wait_for(alerted, 10, 0.05)
        assert opened == [] and await box.store.run(ob.feed_log, box.store.sync) == []
        assert "signature" in box.service("sync").last_error

        # The path is clean again: the cloud's own (signed) command is applied.
        tamper["on"] = False
        status, _ = await cloud.call(
            "POST", f"/api/v1/ops/boxes/{ident['box_id']}/commands",
            json={"target_kind": "door", "target_id": "door-1", "action": "open"},
        )
        assert status == 201
        await wait_for(lambda: _len_at_least(opened, 1), 10, 0.05)
        assert [c.actor for c in opened] == ["cloud:root"]
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def cloud_proxy(
    cloud: Cloud, ident_file: Path, before: Callable[[web.Request], Awaitable[web.Response | None]]
) -> AsyncIterator[list[str]]:
    """A real HTTP proxy between the box and the cloud (the identity file points the box at
    it); ``before(request)`` may answer in the cloud's place. Yields the paths it passed on."""
    passed: list[str] = []

    async def proxy(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if (answer := await before(request)) is not None:
            return answer
        async with aiohttp.ClientSession() as s, s.request(
            request.method, cloud.url + request.raw_path, data=body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        ) as r:
            out = await r.read()
            headers = {k: v for k, v in r.headers.items()
                       if k.lower() in ("content-type", "x-qilu-reply-signature",
                                        "x-qilu-server-time")}
        passed.append(request.path)
        return web.Response(status=r.status, body=out, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, auto_decompress=False)  # forward gzip'd uploads as signed
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await asyncio.to_thread(_point_at, ident_file, f"http://127.0.0.1:{port}")
    try:
        yield passed
    finally:
        await runner.cleanup()


def _point_at(ident_file: Path, url: str) -> None:
    ident_file.write_text(json.dumps({**json.loads(ident_file.read_text()), "cloud": url}))


async def test_cloud_answering_200_garbage_does_not_stop_uploads_or_heartbeats(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    """A reverse proxy or captive portal in front of the cloud answers 200 with an HTML page
    (maintenance, Wi-Fi login) or a JSON of the wrong shape for a while. The box must treat it
    like any failed request and retry: before, the ValueError killed the upload task (and the
    heartbeat task) for good, so records piled up in the outbox until the daemon restarted."""
    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    box_id = json.loads(ident_file.read_text())["box_id"]
    garbage = {"n": 4}  # the next garbage answers to uploads and heartbeats

    async def maintenance(request: web.Request) -> web.Response | None:
        if request.path in ("/api/v1/box/upload", "/api/v1/box/heartbeat") and garbage["n"] > 0:
            garbage["n"] -= 1
            if garbage["n"] % 2:
                return web.Response(status=200, text="<html>系统维护中</html>",
                                    content_type="text/html")
            return web.json_response({"ok": True})  # JSON, but no upload result
        return None

    async with cloud_proxy(cloud, ident_file, maintenance) as passed:
        box = await run_box(config)
        for i in range(30):
            await box.store.record(
                AccessEvent(id=f"ae-{i}", door_id="door-1", method="qr", decision="granted")
            )

        async def arrived() -> bool:
            return len(await cloud.storage.box_records(box_id)) == 30

        await wait_for(arrived, 15)
        assert garbage["n"] == 0  # the garbage was served
        assert await box.store.outbox_stats() == {"rows": 0, "bytes": 0}

        # Heartbeats go on after the garbage too (the fleet view's "last seen").
        def heartbeats() -> int:
            return passed.count("/api/v1/box/heartbeat")

        n = heartbeats()

        async def more() -> bool:
            return heartbeats() >= n + 2

        await wait_for(more, 5, 0.05)


async def test_records_after_a_corrupt_database_reach_the_cloud(
    cloud: Cloud, make_config, tmp_path: Path
) -> None:
    """Power loss corrupts the box's database; the box moves it aside and starts on a fresh
    one. Its outbox seqs must not start again at 1: the cloud stores each (box, seq) once, so
    it took the new alerts, access events and reports for resends of the old ones and dropped
    them (counted as duplicates, deleted from the box's outbox: lost)."""
    import sqlite3

    from edge.daemon import Daemon

    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    box_id = json.loads((config.box.data_dir / "cloud-identity.json").read_text())["box_id"]

    async def in_cloud() -> set[str]:
        return {r["record_id"] for r in await cloud.storage.box_records(box_id)}

    first = Daemon(config)
    box = await first.start()
    try:
        for i in range(30):
            await box.store.record(
                AccessEvent(id=f"ae-old-{i}", door_id="door-1", method="qr", decision="granted")
            )
        await wait_for(lambda: _has(in_cloud, {f"ae-old-{i}" for i in range(30)}), 10)
    finally:
        await first.stop()

    def tear() -> None:  # a torn write: garbage over one page of the event journal
        db = sqlite3.connect(config.db_path)
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'").fetchone()
        (page,) = db.execute("PRAGMA page_size").fetchone()
        db.close()
        with open(config.db_path, "r+b") as f:
            f.seek((root - 1) * page)
            f.write(b"\xa5" * 1000)

    await asyncio.to_thread(tear)

    second = Daemon(config)
    box = await second.start()
    try:
        assert box.store.sync.recovered_from is not None  # it did start on a fresh file
        new = {f"ae-new-{i}" for i in range(5)}
        for rid in sorted(new):
            await box.store.record(
                AccessEvent(id=rid, door_id="door-1", method="qr", decision="granted")
            )
        await wait_for(lambda: _has(in_cloud, new), 10)
    finally:
        await second.stop()


async def _has(get: Any, want: set[str]) -> bool:
    return want <= await get()


async def test_uploads_go_on_after_the_disk_was_full(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    """The box's disk fills while the cloud is away. The cloud comes back and stores the
    waiting batch, but the box cannot delete the acked rows (SQLite's write-ahead log cannot
    grow): before, that StoreFullError killed the upload task for good, and nothing recorded
    after the disk was freed ever reached the cloud. Now the rows stay (the cloud counts their
    resend as duplicates) and uploading goes on with back-off."""
    data = small_fs_at(tmp_path / "data", 16)
    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    box_id = json.loads(ident_file.read_text())["box_id"]
    away = {"on": True}

    async def unavailable(request: web.Request) -> web.Response | None:
        return web.Response(status=503, text="down") if away["on"] else None

    async def in_cloud() -> set[str]:
        return {r["record_id"] for r in await cloud.storage.box_records(box_id)}

    async with cloud_proxy(cloud, ident_file, unavailable) as passed:
        box = await run_box(config)
        old = {f"ae-old-{i}" for i in range(50)}
        for rid in sorted(old):
            await box.store.record(
                AccessEvent(id=rid, door_id="door-1", method="qr", decision="granted")
            )
        await asyncio.to_thread(fill, data / "filler")
        away["on"] = False
        await wait_for(lambda: _has(in_cloud, old), 10)

        async def uploads() -> bool:  # the box sent (and failed to delete) again
            return passed.count("/api/v1/box/upload") >= 2

        await wait_for(uploads, 10, 0.05)
        (data / "filler").unlink()
        new = {f"ae-new-{i}" for i in range(5)}
        for rid in sorted(new):
            await box.store.record(
                AccessEvent(id=rid, door_id="door-1", method="qr", decision="granted")
            )
        await wait_for(lambda: _has(in_cloud, new), 10)

        async def drained() -> bool:
            return (await box.store.outbox_stats())["rows"] == 0

        await wait_for(drained, 10)


async def doors_recorded(cloud: Cloud, config, run_box) -> tuple:
    """The box provisioned to the cloud and running, its door.open command recording the
    doors it was told to open (no relay); returns the box, its cloud id and that list."""
    await provision_cli(config.source, cloud)
    box_id = json.loads((config.box.data_dir / "cloud-identity.json").read_text())["box_id"]
    box = await run_box(config)
    opened: list[str] = []

    async def door_open(target_id: str, cmd: Command) -> str:
        opened.append(target_id)
        return "opened"

    box.commands.register("door", "open", door_open)
    return box, box_id, opened


async def test_feed_goes_on_after_the_disk_was_full_and_applies_a_command_once(
    cloud: Cloud, make_config, run_box, tmp_path: Path
) -> None:
    """Ops open a door remotely while the box's disk is full: the door opens, but the box
    cannot log the feed item. That StoreFullError ended the feed task for good (no remote
    door open, emergency broadcast or content reached the box until a restart). Now the
    item counts as applied in memory (it is not applied again while the disk stays full),
    and the feed goes on."""
    data = small_fs_at(tmp_path / "data", 16)
    await cloud.community()
    config = make_config(extra=FAST)
    _, box_id, opened = await doors_recorded(cloud, config, run_box)
    await asyncio.sleep(1.0)  # the feed long-poll is waiting
    await asyncio.to_thread(fill, data / "filler")

    async def open_door(door: str) -> None:
        status, _ = await cloud.call(
            "POST", f"/api/v1/ops/boxes/{box_id}/commands",
            json={"target_kind": "door", "target_id": door, "action": "open"},
        )
        assert status == 201

    await open_door("door-1")
    await wait_for(lambda: _len_at_least(opened, 1), 5, 0.05)
    await asyncio.sleep(1.5)  # several feed back-offs: the door must not open again
    assert opened == ["door-1"]
    (data / "filler").unlink()
    await open_door("door-2")
    await wait_for(lambda: _len_at_least(opened, 2), 10, 0.05)
    assert opened == ["door-1", "door-2"]


async def test_a_malformed_feed_item_is_logged_and_the_feed_goes_on(
    cloud: Cloud, make_config, run_box
) -> None:
    """A cloud bug (or a cloud newer than the box) puts an item the box's FeedItem model
    refuses into the feed (here args null). The ValidationError ended the feed task, and
    since the cursor stayed before the item, every restart died on it again: the box never
    got a command again. Now the item is logged as failed and the feed goes on."""
    await cloud.community()
    config = make_config(extra=FAST)
    box, box_id, opened = await doors_recorded(cloud, config, run_box)
    await cloud.storage.feed_add([box_id], "box", "-", "ping", None, "bug", None)  # type: ignore[arg-type]
    status, _ = await cloud.call(
        "POST", f"/api/v1/ops/boxes/{box_id}/commands",
        json={"target_kind": "door", "target_id": "door-1", "action": "open"},
    )
    assert status == 201
    await wait_for(lambda: _len_at_least(opened, 1), 10, 0.05)
    log = await box.store.run(ob.feed_log, box.store.sync)
    assert [(x["action"], x["ok"]) for x in reversed(log)] == [("ping", 0), ("open", 1)]
    assert "bad feed item" in log[1]["detail"]


async def test_a_proxy_body_limit_shrinks_batches_instead_of_stalling(
    cloud: Cloud, make_config, run_box
) -> None:
    """A reverse proxy in front of the cloud (nginx: client_max_body_size, 1 MB by default)
    refuses a backlog batch with 413. The box resent the same batch forever: the outbox never
    drained (the batch only shrank for link failures). Now a 413 halves the batch (down to
    one record; a single record still too large is quarantined like a 400)."""
    import os

    await cloud.community()
    config = make_config(extra=FAST)
    await provision_cli(config.source, cloud)
    ident_file = config.box.data_dir / "cloud-identity.json"
    box_id = json.loads(ident_file.read_text())["box_id"]
    limit = 16 * 1024  # bytes on the wire, like client_max_body_size 16k
    offline = {"on": True}  # while the backlog builds up

    async def body_limit(request: web.Request) -> web.Response | None:
        if offline["on"]:
            return web.Response(status=503, text="offline")
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, content_type="text/html",
                                text="<html><h1>413 Request Entity Too Large</h1></html>")
        return None

    async with cloud_proxy(cloud, ident_file, body_limit):
        box = await run_box(config)
        for i in range(600):  # a backlog, hard to compress (random ids as reasons)
            await box.store.record(AccessEvent(id=f"ae-{i}", door_id="door-1", method="qr",
                                               decision="denied", reason=os.urandom(60).hex()))
        offline["on"] = False

        async def arrived() -> bool:
            return len(await cloud.storage.box_records(box_id)) == 600

        await wait_for(arrived, 20)
        assert await box.store.outbox_stats() == {"rows": 0, "bytes": 0}


async def test_a_feed_task_that_hits_an_unexpected_error_is_restarted(
    cloud: Cloud, make_config, run_box
) -> None:
    """A sync task that met an error its loop does not expect (here: the database locked by
    another writer for longer than the store's busy timeout while the feed starts) ended,
    silently, and nothing restarted it: the box never heard a command again until rebooted."""
    import sqlite3

    await cloud.community()
    config = make_config(extra=FAST)
    box = await run_box(config)
    sync = box.service("sync")
    opened: list[str] = []

    async def door_open(target_id: str, cmd: Command) -> str:
        opened.append(target_id)
        return "opened"

    box.commands.register("door", "open", door_open)
    other = sqlite3.connect(config.db_path, isolation_level=None)  # e.g. a backup tool
    try:
        other.execute("BEGIN IMMEDIATE")
        await provision_cli(config.source, cloud)
        sync.identity_changed()

        async def feed_failed() -> bool:
            return sync.status().get("task_restarts") or any(
                t.get_name() == "sync-feed" and t.done() for t in sync.tasks
            )

        await wait_for(feed_failed, 15, 0.1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    box_id = json.loads((config.box.data_dir / "cloud-identity.json").read_text())["box_id"]
    status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{box_id}/commands", json={
        "target_kind": "door", "target_id": "door-1", "action": "open"})
    assert status == 201
    await wait_for(lambda: _len_at_least(opened, 1), 10, 0.1)
    assert sync.status()["task_restarts"] >= 1
    assert "locked" in sync.status()["task_last_error"]
    from edge.installer.doctor import Doctor  # the installer page's doctor says so

    res = await Doctor(config=box.config, box=box).check_sync_tasks()
    assert res.status == "warn" and "locked" in res.detail.en, res
