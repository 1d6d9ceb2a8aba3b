"""Stopping `qilu-edge demo` stops everything it started: SIGTERM (systemd, kill, a closed
terminal's SIGHUP alike) runs its cleanup, and even a SIGKILLed demo takes its local cloud
with it (the kernel's parent-death signal), so nobody has to hunt a qilu-cloudsync by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.scripts.test_demo import processes_with


def start_until_cloud(cmd: list[str], env: dict[str, str], mark: str, cwd: Path | None = None
                      ) -> tuple[subprocess.Popen, list[str], threading.Thread]:
    """Start a demo and wait until its local cloud answered (the step prints its areas
    after /healthz): the process, its output lines so far (still filling) and their reader.
    If it never gets there, everything carrying ``mark`` in its environment is killed."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 100
    try:
        while not any("areas 济南市" in line for line in lines):
            assert proc.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        proc.wait()
        for pid in (int(p.split()[0]) for p in processes_with(mark)):
            os.kill(pid, signal.SIGKILL)
        raise
    return proc, lines, reader


@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_stopping_the_demo_stops_its_cloud(tmp_path: Path, mosquitto, sig: int) -> None:
    mark = f"QILU_DEMO_STOP_{uuid.uuid4().hex}"  # children inherit the environment
    env = {**os.environ, "PYTHONUNBUFFERED": "1", mark: "1"}
    cmd = [sys.executable, "-m", "edge", "demo", "--dir", str(tmp_path / "demo"),
           "--mqtt-port", str(mosquitto.port), "--port", "0"]  # fmt: skip
    proc, lines, reader = start_until_cloud(cmd, env, mark)
    try:
        assert len(processes_with(mark)) >= 2  # the demo and its qilu-cloudsync serve
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    if sig == signal.SIGTERM:
        assert code == 0, "".join(lines)[-4000:]
        assert "demo stopped (SIGTERM)" in "".join(lines)
    deadline = time.monotonic() + 10
    while processes_with(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(mark) == [], "the demo left processes behind"


@pytest.mark.timeout(150)
def test_stopping_demo_sh_stops_all_it_started(tmp_path: Path) -> None:
    """scripts/demo.sh under SIGTERM: bash holds a trap until its foreground command ends, so
    the script must pass the signal on; the box, its cloud and the broker it started stop."""
    from tests.conftest import free_port
    from tests.scripts.test_demo import REPO, port_open

    mark = f"QILU_DEMO_STOP_{uuid.uuid4().hex}"
    broker = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", mark: "1", "QILU_DEMO_SKIP_SETUP": "1",
           "QILU_DEMO_MQTT_PORT": str(broker)}  # fmt: skip
    cmd = ["bash", str(REPO / "scripts/demo.sh"), "--dir", str(tmp_path / "demo"), "--port", "0"]
    proc, lines, _ = start_until_cloud(cmd, env, mark, REPO)
    try:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        deadline = time.monotonic() + 10
        while processes_with(mark) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = processes_with(mark)
        for pid in (int(p.split()[0]) for p in left):  # don't leave them to the next test
            os.kill(pid, signal.SIGKILL)
    assert left == [], "demo.sh left processes behind"
    assert code == 143, "".join(lines)[-3000:]
    assert not port_open(broker), "demo.sh left its broker running"
