"""Shared fixtures: real peers on random loopback ports, and a box daemon to test against.

Peers are started by the tests themselves (mosquitto, pymodbus servers, socat, Chromium,
PostgreSQL) and only ever bind 127.0.0.1. Every wait here is bounded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.daemon import Box, Daemon
from edge.features import Config, parse_config

STAFF_TOKEN = "test-staff-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``grace_s``; reaps it either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


# As root, mosquitto drops to the "mosquitto" user and then cannot write its persistence
# file under pytest's private tmp folders; stay root there (tests only).
MOSQUITTO_USER = "user root\n" if os.geteuid() == 0 else ""


@dataclass
class Mosquitto:
    port: int
    conf: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto 2 broker on a random loopback port (restartable: .stop()/.start())."""
    if shutil.which("mosquitto") is None:
        pytest.fail("mosquitto is not installed (scripts/setup.sh installs it)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    # mosquitto 2 needs an explicit listener; loopback only.
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{MOSQUITTO_USER}")
    broker = Mosquitto(port, conf)
    broker.start()
    yield broker
    broker.stop()


# The box's own user on an installed box (install.sh's qilu-edge, the unit's User=): "nobody".
DAEMON_UID = 65534
SYSTEM_PY = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
needs_daemon_user = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SYSTEM_PY),
    reason="needs root (the installer's sudo, a second user) and " + SYSTEM_PY,
)


def daemon_user_folder(prefix: str) -> Path:
    """A folder another user can reach (pytest's tmp folders are root-only 0700) holding
    ``data/``, owned by the daemon's user, 0750, as install.sh and systemd's StateDirectory=
    leave /var/lib/qilu-edge. The caller removes it."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    (base / "data").mkdir(mode=0o750)
    os.chown(base / "data", DAEMON_UID, DAEMON_UID)
    return base


def start_daemon_as_user(config: Path) -> subprocess.Popen:
    """``qilu-edge run -c config`` as the daemon's user (stderr piped). This venv's interpreter
    lives under /root (0700): the same Python from /usr/bin, with the venv's packages and the
    checkout on its path, runs it."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    repo = Path(__file__).resolve().parents[1]
    return subprocess.Popen(
        [SYSTEM_PY, "-c", "from edge.cli import main; main()", "run", "-c", str(config)],
        user=DAEMON_UID, group=DAEMON_UID, extra_groups=[], cwd=config.parent,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": f"{site}:{repo}"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def small_fs_at(path: Path, size_mb: int = 8) -> Path:
    """Mount a real small file system (tmpfs) at ``path`` for full-disk tests, unmounted (lazily)
    when the test ends. Skips the test where mounting needs root."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
        capture_output=True,
    ).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    _mounted.append(path)
    return path


_mounted: list[Path] = []


@pytest.fixture(autouse=True)
def _unmount_small_fs() -> Iterator[None]:
    yield
    while _mounted:
        subprocess.run(["umount", "-l", str(_mounted.pop())], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until its file system has no byte left (bounded)."""
    with open(path, "wb", buffering=0) as f:
        for _ in range(250_000):  # 1 GB, far beyond the small file systems of the tests
            try:
                f.write(b"\0" * 4096)
            except OSError:
                return
    raise AssertionError("the file system never filled")


def box_toml(tmp_path: Path, mqtt_port: int = 1, api_port: int = 0, extra: str = "") -> str:
    return f"""
[box]
id = "box-test"
community = "test-community"
data_dir = "{tmp_path / "data"}"

[mqtt]
port = {mqtt_port}
enabled = {"true" if mqtt_port > 1 else "false"}
reconnect_min_s = 0.05
reconnect_max_s = 0.5

[api]
port = {api_port}

[[api.tokens]]
name = "test-staff"
token = "{STAFF_TOKEN}"
{extra}
"""


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """make_config(mqtt_port=..., extra='[[doors]] ...') -> a validated Config under tmp_path."""

    def make(mqtt_port: int = 1, api_port: int = 0, extra: str = "") -> Config:
        text = box_toml(tmp_path, mqtt_port, api_port, extra)
        path = tmp_path / "edge.toml"
        path.write_text(text)
        return parse_config(text, source=path)

    return make


@pytest.fixture
async def run_box() -> AsyncIterator[Callable[[Config], asyncio.Future]]:
    """``box = await run_box(config)``: an in-process daemon, stopped at the end of the test."""
    daemons: list[Daemon] = []

    async def start(config: Config) -> Box:
        d = Daemon(config)
        daemons.append(d)
        return await d.start()

    yield start
    for d in daemons:
        await d.stop()


def db_count(box: Box, sql: str) -> int:
    """A count straight from the box's SQLite file (what is really stored)."""
    db = sqlite3.connect(box.config.db_path)
    try:
        return db.execute(sql).fetchone()[0]
    finally:
        db.close()


def api_url(box: Box) -> str:
    return f"http://127.0.0.1:{box.service('api').port}"


# Files whose tests must never overlap with each other's under pytest-xdist: both run
# scripts/demo.sh, which writes the repository's var/mosquitto-demo.conf.
SHARED_GROUPS = {"tests/scripts/test_demo.py": "demo.sh", "tests/edge/test_demo_stop.py": "demo.sh"}


# The slowest files (30-90 s each), handed out first so that no worker is left with one of
# them at the end while the other idles; every other file keeps its usual order.
SLOW_FIRST = ("tests/scripts/test_install.py", "tests/scripts/test_demo.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """For pytest-xdist's ``--dist loadgroup`` (scripts/test.sh runs two workers): the tests
    of one file stay together on one worker, in order, so a module's fixtures (a wheel
    build, an install, the face pipeline) are made once; a test may name its own group."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in SLOW_FIRST)  # stable
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            file = item.nodeid.split("::")[0]
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(file, file)))
