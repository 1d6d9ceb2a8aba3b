"""The daemon as a real process: readiness, health, auth, SIGTERM, corrupt database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import STAFF_TOKEN, box_toml, free_port, wait_port

EXE = [sys.executable, "-m", "edge.cli"]


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start(tmp_path: Path, env: dict | None = None, extra: str = "") -> tuple[subprocess.Popen, int]:
    port = free_port()
    cfg = tmp_path / "edge.toml"
    cfg.write_text(box_toml(tmp_path, api_port=port, extra=extra))
    proc = subprocess.Popen(
        [*EXE, "run", "-c", str(cfg)],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_port(port, 20)
    except TimeoutError:
        proc.kill()
        pytest.fail(proc.communicate()[0])
    return proc, port


def stop(proc: subprocess.Popen) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return proc.returncode, time.monotonic() - t0, out


def test_serves_health_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc, port = start(tmp_path, extra='[[doors]]\nid = "door-1"\ntype = "sim"\n')
    try:
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"ok": True})
        code, st = get(f"http://127.0.0.1:{port}/api/v1/status")
        assert code == 200
        assert st["versions"]["qilu_edge"] and st["store"]["schema"]
        assert st["services"]["devices"]["door/door-1"]["state"] == "online"
        assert st["store"]["size_bytes"] > 0
    finally:
        code, took, out = stop(proc)
    assert code == 0, out
    assert took < 5.0
    assert "stopping" in out


def test_staff_calls_need_the_token(tmp_path: Path, make_config) -> None:
    proc, port = start(tmp_path)
    try:
        code, body = get(f"http://127.0.0.1:{port}/api/v1/anything")
        assert code == 401 and "token" in body["error"]
        code, _ = get(f"http://127.0.0.1:{port}/api/v1/anything", token="wrong-token-0000000000")
        assert code == 401
        code, _ = get(f"http://127.0.0.1:{port}/api/v1/anything", token=STAFF_TOKEN)
        assert code == 404  # authenticated; the route just does not exist
    finally:
        stop(proc)


def test_corrupt_database_moved_aside_and_daemon_comes_up(tmp_path: Path) -> None:
    db = tmp_path / "data" / "qilu.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"\x00garbage" * 1000)
    proc, port = start(tmp_path)
    try:
        code, st = get(f"http://127.0.0.1:{port}/api/v1/status")
        assert code == 200 and st["store"]["recovered_from"]
        assert Path(st["store"]["recovered_from"]).read_bytes().startswith(b"\x00garbage")
    finally:
        _, _, out = stop(proc)
    assert "CORRUPT" in out
    # The recovery is itself an event: the box reports itself degraded.
    from edge.core.store import read_events

    kinds = [(e.kind, e.payload.get("state")) for e in read_events(db, 0, 10)]
    assert ("device_health", "degraded") in kinds


def test_systemd_readiness_and_watchdog(tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    proc, _ = start(tmp_path, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"})
    try:
        messages = {sock.recv(256).decode() for _ in range(3)}
        assert "READY=1" in messages and "WATCHDOG=1" in messages
    finally:
        stop(proc)
        sock.settimeout(0.5)
        rest = []
        for _ in range(50):  # whatever it sent until it exited, then the queue is empty
            try:
                rest.append(sock.recv(256).decode())
            except TimeoutError:
                break
        sock.close()
    assert "STOPPING=1" in rest


def test_bad_config_refuses_to_start_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text('[box]\nid = "b"\n[api]\nport = "eighty"\n')
    out = subprocess.run([*EXE, "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert f"{cfg}:4: api.port" in out.stderr
    assert not (tmp_path / "var").exists()  # nothing was created half-configured


async def test_a_stuck_service_does_not_keep_the_others_from_stopping(
    make_config, monkeypatch
) -> None:
    import asyncio

    from edge import daemon as daemon_mod
    from edge.core.feature import Feature, ServiceKey, ServiceSpec
    from edge.core.service import Service
    from edge.features import FEATURES

    class Stuck(Service):
        name = "stuck"

        async def stop(self) -> None:
            await asyncio.Event().wait()  # never returns

    monkeypatch.setattr(daemon_mod, "SERVICE_STOP_S", 0.2)
    stuck = Feature("stuck", services=(ServiceSpec(ServiceKey("stuck"), Stuck),))
    d = daemon_mod.Daemon(make_config(extra="[faces]\nenabled = false\n"), [stuck, *FEATURES])
    box = await d.start()
    store = box.store.sync
    async with asyncio.timeout(10):
        await d.stop()
    with pytest.raises(Exception, match="closed"):
        store.db.execute("SELECT 1")  # the store was closed after the stuck service
