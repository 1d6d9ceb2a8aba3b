"""scripts/demo.sh as a newcomer runs it, twice in a row: each run starts afresh, its own
doctor says READY, it ends with one block (what to open, which login), no library warning
comes first, and nothing it started (the box, the local cloud, the mosquitto the script
started) is left running afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def processes_with(mark: str) -> list[str]:
    """Live processes whose environment carries ``mark`` (children inherit it)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark.encode() in env.read_bytes():
                stat = (env.parent / "stat").read_text()
                if ") Z " not in stat:  # a zombie is gone, only not yet reaped
                    found.append(stat.split(")")[0] + ")")
        except OSError:
            continue  # ended meanwhile, or not ours to read
    return found


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.timeout(400)
def test_the_demo_runs_twice_and_leaves_nothing_behind(tmp_path: Path) -> None:
    mark = f"QILU_DEMO_TEST_{uuid.uuid4().hex}"
    broker = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", mark: "1", "QILU_DEMO_SKIP_SETUP": "1",
           "QILU_DEMO_MQTT_PORT": str(broker)}  # fmt: skip
    cmd = ["bash", str(REPO / "scripts/demo.sh"), "--dir", str(tmp_path / "demo"),
           "--seconds", "0.5", "--port", "0"]  # fmt: skip
    for run in (1, 2):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"run {run}:\n{out[-6000:]}"
        head = out.splitlines()[:6]
        assert not any("WARN" in line or "Warning" in line for line in head), head
        assert "started afresh" in out
        assert "READY: " in out and "NOT READY" not in out, out[-4000:]
        block = out[out.index("Demo box running: open these"):]
        assert "/r/login?code=" in block and "王阿姨" in block and "#key=" in block
        assert "already signed up" not in out  # nothing left from the first run
        # everything the run started has stopped: box, cloud, broker
        deadline = time.monotonic() + 10
        while processes_with(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_with(mark) == [], f"run {run} left processes behind"
        assert not port_open(broker), f"run {run} left the broker on {broker}"
