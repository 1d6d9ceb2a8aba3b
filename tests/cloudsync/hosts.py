"""Cloud "hosts" for multi-host tests: worker groups bound to their own loopback addresses
(127.0.0.2, 127.0.0.3, ...) behind a real HAProxy doing plain round-robin."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.cloudsync.helpers import VENV_BIN
from tests.conftest import free_port, stop_process, wait_port

HAPROXY_CFG = """global
    maxconn {maxconn}
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    # a refused connection (a dead host) is retried on another server
    option redispatch
    retries 3
frontend cloud
    bind 127.0.0.1:{port}
    default_backend workers
backend workers
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 300ms fall 2 rise 1
{servers}
"""


@dataclass
class Host:
    """One ``qilu-cloudsync serve --workers N`` bound to its own loopback address."""

    addr: str
    port: int
    proc: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL the whole group (parent and workers), like a host losing power."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_host(addr: str, db: str, blobs: Path, workers: int = 2, *extra: str) -> Host:
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "qilu-cloudsync"), "--log-level", "WARNING", "serve", "--db", db,
         "--blobs", str(blobs), "--host", addr, "--port", str(port), "--workers", str(workers),
         "--relay-same-origin-unsafe", *extra],  # relayed pages on loopback, no wildcard DNS
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill() takes the workers too
    )  # fmt: skip
    wait_port_at(addr, port, 30)
    return Host(addr, port, proc)


def wait_port_at(addr: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {addr}:{port} after {timeout}s")


@dataclass
class HaProxy:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def start_haproxy(hosts: list[Host], tmp: Path, maxconn: int = 4000) -> HaProxy:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    servers = "\n".join(f"    server h{i} {h.addr}:{h.port} check" for i, h in enumerate(hosts))
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY_CFG.format(port=port, servers=servers, maxconn=maxconn))
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port, 15)
    return HaProxy(port, proc)
