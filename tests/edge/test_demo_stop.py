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


@pytest.mark.timeout(150)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_stopping_the_demo_stops_its_cloud(tmp_path: Path, mosquitto, sig: int) -> None:
    mark = f"QILU_DEMO_STOP_{uuid.uuid4().hex}"  # children inherit the environment
    env = {**os.environ, "PYTHONUNBUFFERED": "1", mark: "1"}
    cmd = [sys.executable, "-m", "edge", "demo", "--dir", str(tmp_path / "demo"),
           "--mqtt-port", str(mosquitto.port), "--port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        # Wait until the local cloud answered (the step prints its areas after /healthz).
        deadline = time.monotonic() + 100
        while not any("areas 济南市" in line for line in lines):
            assert proc.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.1)
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
