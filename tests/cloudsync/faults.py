"""Fault-test harness: a box daemon as a real process, a TCP proxy that cuts connections at
random points, and a writer that keeps adding records while faults happen."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.standard import AccessEvent, Alert, DeviceHealth, Report
from edge.core.store import Store
from edge.sync.identity import Identity, save
from tests.conftest import box_toml, free_port, wait_port

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
SYNC = """
[sync]
backoff_min_s = 0.05
backoff_max_s = 0.4
feed_wait_s = 2
heartbeat_s = 1
request_timeout_s = 3
batch_max_records = {batch}
"""


@dataclass
class BoxProc:
    dir: Path
    api_port: int
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def config(self) -> Path:
        return self.dir / "edge.toml"

    @property
    def db(self) -> Path:
        return self.dir / "data" / "qilu.db"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "qilu-edge"), "run", "-c", str(self.config)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "box.log", "ab"),
        )
        wait_port(self.api_port, 30)

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()


def make_box(
    tmp: Path,
    ident: Identity,
    cloud_url: str,
    *,
    batch: int = 100,
    env: dict[str, str] | None = None,
) -> BoxProc:
    d = tmp / "box"
    d.mkdir(exist_ok=True)
    port = free_port()
    box = BoxProc(d, port, env or {})
    text = box_toml(d, 1, port, SYNC.format(batch=batch))
    box.config.write_text(text)
    save(
        d / "data" / "cloud-identity.json",
        Identity(cloud_url, ident.box_id, ident.secret, ident.community_id, ident.area_path),
    )
    return box


class Writer:
    """Writes a mix of records into the box's store from this (another) process, in order."""

    def __init__(self, db: Path) -> None:
        self.store = Store(db, box_id="box-test")
        self.ids: list[str] = []

    def write(self, n: int) -> None:
        # Two processes write this database: a deferred transaction that read first can meet
        # SQLITE_BUSY at once (WAL snapshot), so retry the chunk; ids count after commit only.
        for attempt in range(50):
            try:
                self._write(n)
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 49:
                    raise
                time.sleep(0.02)

    def _write(self, n: int) -> None:
        new: list[str] = []
        with self.store.transaction():
            for _ in range(n):
                i = len(self.ids) + len(new)
                k = i % 10
                if k == 0:
                    rec = Alert(id=f"al-{i}", level="warning", type="t", message=str(i))
                elif k < 5:
                    rec = AccessEvent(id=f"ae-{i}", door_id="d1", method="qr", decision="granted")
                elif k < 7:
                    rec = Report(id=f"rp-{i}", text=f"报修 {i}", category="facilities_repair")
                else:
                    rec = DeviceHealth(
                        id=f"dh-{i}", device_kind="door", device_id="d1", state="online"
                    )
                self.store.record(rec)
                new.append(rec.id)
        self.ids.extend(new)

    async def run(self, total: int, chunk: int, pause_s: float) -> None:
        while len(self.ids) < total:
            await asyncio.to_thread(self.write, min(chunk, total - len(self.ids)))
            await asyncio.sleep(pause_s)

    def backlog(self) -> int:
        return self.store.outbox_stats()["rows"]

    def close(self) -> None:
        self.store.close()


class CuttingProxy:
    """Forwards TCP to a target; a connection is cut (both ways) after a random number of
    bytes with probability ``p_cut``: requests and answers break at arbitrary points (the
    client keeps connections alive, so one cut may fall many requests in)."""

    def __init__(
        self, target_port: int, p_cut: float = 0.3, max_bytes: int = 40_000, seed: int = 1
    ) -> None:
        self.target_port = target_port
        self.p_cut = p_cut
        self.max_bytes = max_bytes
        self.rng = random.Random(seed)
        self.cuts = 0
        self.connections = 0
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        budget = [self.rng.randint(0, self.max_bytes) if self.rng.random() < self.p_cut else None]
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(4096):
                    if budget[0] is not None:
                        if len(data) >= budget[0]:
                            w.write(data[: budget[0]])
                            self.cuts += 1
                            raise ConnectionAbortedError
                        budget[0] -= len(data)
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for wr in (cw, uw):
                    with contextlib.suppress(Exception):
                        wr.transport.abort()

        await asyncio.gather(pump(cr, uw), pump(ur, cw))
