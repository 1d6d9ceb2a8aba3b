"""Cloud helpers shared by tests/cloudsync and tests/edge/sync: a throw-away PostgreSQL
cluster, an in-process or subprocess cloud, and a provisioned box identity."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from cloudsync.app import build, token_hash
from cloudsync.context import CLOUD
from edge.sync.client import provision
from edge.sync.identity import Identity
from tests.conftest import free_port, wait_port

VENV_BIN = Path(sys.executable).parent


def pg_bindir() -> Path:
    for cand in (shutil.which("initdb"), "/usr/lib/postgresql/15/bin/initdb"):
        if cand and Path(cand).exists():  # resolved: /usr/local/bin may hold only a symlink
            return Path(cand).resolve().parent
    raise RuntimeError("PostgreSQL is not installed (scripts/setup.sh test installs it)")


@dataclass
class PgCluster:
    base: Path
    port: int
    proc_user: list[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, db: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    async def new_database(self, template: str | None = None) -> str:
        """An empty database, or a copy of ``template`` (a file copy on the server: a
        migrated template is cloned in a fraction of the time migrating anew takes)."""
        name = f"t_{secrets.token_hex(6)}"
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"CREATE DATABASE {name}"
                               + (f" TEMPLATE {template}" if template else ""))
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [
                *self.proc_user,
                str(pg_bindir() / "pg_ctl"),
                "-D",
                str(self.base / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=30,
        )
        shutil.rmtree(self.base, ignore_errors=True)


def start_pg(fsync: bool = False, in_memory: bool = False) -> PgCluster:
    """initdb + pg_ctl start as user postgres (initdb refuses root), loopback only.
    ``in_memory``: the data folder on /dev/shm when it has room (the session's cluster: its
    ~100 databases are ~1.7 GB, 77k files, whose writes and final removal took up to 100 s
    on a busy disk); else under /tmp like the others."""
    bindir = pg_bindir()
    where = None
    if in_memory and os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 6 << 30:
        where = "/dev/shm"
    # under /tmp or /dev/shm (both 1777): postgres can traverse it
    base = Path(tempfile.mkdtemp(prefix="qilu-pg-", dir=where))
    user: list[str] = []
    if os.geteuid() == 0:
        user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    os.chmod(base, 0o755)
    port = free_port()
    subprocess.run(
        [
            *user,
            str(bindir / "initdb"),
            "-D",
            str(base / "data"),
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
        f" -c max_connections=200" + ("" if fsync else " -c fsync=off")
    )
    subprocess.run(
        [
            *user,
            str(bindir / "pg_ctl"),
            "-D",
            str(base / "data"),
            "-o",
            opts,
            "-l",
            str(base / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    return PgCluster(base, port, user)


@dataclass
class Cloud:
    url: str
    db: str
    admin: str  # network-wide admin bearer token
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    proc: subprocess.Popen | None = None
    port: int = 0
    blobs: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def storage(self) -> Any:
        assert self.app is not None
        return self.app[CLOUD].storage

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin}"}

    async def call(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, self.url + path, headers=self.headers(token), **kw) as r,
        ):
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, await r.text()

    async def community(
        self,
        city: str = "jinan",
        district: str = "lixia",
        street: str = "quancheng",
        community: str = "c1",
    ) -> None:
        """Create the chain of areas down to a community (existing ones are kept)."""
        for aid, level, parent in (
            (city, "city", None),
            (district, "district", city),
            (street, "street", district),
            (community, "community", street),
        ):
            status, body = await self.call(
                "POST",
                "/api/v1/ops/areas",
                json={"id": aid, "level": level, "name": aid.upper(), "parent_id": parent},
            )
            assert status in (201, 409), body

    async def claim(self, community: str = "c1") -> str:
        status, body = await self.call(
            "POST", f"/api/v1/ops/communities/{community}/claim-codes", json={}
        )
        assert status == 201, body
        return body["code"]

    async def new_box(self, community: str = "c1", **areas: str) -> Identity:
        await self.community(community=community, **areas)
        return await provision(self.url, await self.claim(community), f"box in {community}")

    async def ops_user(self, name: str, role: str, area: str | None) -> str:
        token = secrets.token_urlsafe(18)
        if self.app is not None:
            await self.storage.ops_user_add(name, token_hash(token), role, area)
        else:
            out = await asyncio.to_thread(
                subprocess.run,
                [
                    str(VENV_BIN / "qilu-cloudsync"),
                    "ops-user",
                    "--db",
                    self.db,
                    "--name",
                    name,
                    "--role",
                    role,
                ]
                + (["--area", area] if area else []),
                check=True,
                capture_output=True,
                text=True,
                timeout=30,
            )
            token = out.stdout.strip().splitlines()[-1]
        return token

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.proc is not None:
            self.kill()

    # --- subprocess cloud ---------------------------------------------------------------

    def start_proc(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "qilu-cloudsync"),
                "--log-level",
                "WARNING",
                "serve",
                "--db",
                self.db,
                "--blobs",
                str(self.blobs),
                "--port",
                str(self.port),
                "--feed-poll",
                "0.2",
                "--relay-same-origin-unsafe",  # relayed pages on 127.0.0.1 (no wildcard DNS)
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, 30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


async def start_cloud(
    db: str, tmp: Path, *, subprocess_: bool = False, port: int = 0, **app_kw: Any
) -> Cloud:
    token = secrets.token_urlsafe(18)
    port = port or free_port()
    cloud = Cloud(
        url=f"http://127.0.0.1:{port}", db=db, admin=token, port=port, blobs=tmp / "blobs"
    )
    if subprocess_:
        await asyncio.to_thread(
            subprocess.run,
            [str(VENV_BIN / "qilu-cloudsync"), "migrate", "--db", db],
            check=True,
            capture_output=True,
            timeout=60,
        )
        out = await asyncio.to_thread(
            subprocess.run,
            [str(VENV_BIN / "qilu-cloudsync"), "ops-user", "--db", db, "--name", "root"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        cloud.admin = out.stdout.strip().splitlines()[-1]
        await asyncio.to_thread(cloud.start_proc)
        return cloud
    app = await build(db, tmp / "blobs", feed_poll_s=0.2, **app_kw)
    cloud.app = app
    # As `serve --relay-same-origin-unsafe`: the relay tests use the cloud's own origin on
    # loopback; test_relay.py checks the default (refused without a relay domain).
    app[CLOUD].relays.same_origin_unsafe = True
    cloud.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await cloud.runner.setup()
    await web.TCPSite(cloud.runner, "127.0.0.1", port).start()
    await app[CLOUD].storage.ops_user_add("root", token_hash(token), "admin", None)
    return cloud


async def serve_tls(cloud: Cloud, folder: Path) -> tuple[str, Path]:
    """The same in-process cloud also served over TLS on another loopback port, with a fresh
    self-signed certificate for 127.0.0.1 (the box trusts it as ``[sync] ca_file``).
    Returns the https URL and the certificate's path (``folder/cloud-ca.pem``)."""
    assert cloud.runner is not None, "an in-process cloud (start_cloud without subprocess_)"
    cert, key = folder / "cloud-ca.pem", folder / "cloud-key.pem"
    proc = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-out", str(cert), "-days", "30", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    port = free_port()
    await web.TCPSite(cloud.runner, "127.0.0.1", port, ssl_context=ctx).start()
    return f"https://127.0.0.1:{port}", cert


async def wait_for(pred: Any, seconds: float, interval: float = 0.1) -> Any:
    """Poll an async predicate until truthy, bounded in time."""
    deadline = time.monotonic() + seconds
    while True:
        value = await pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {seconds}s (last: {value!r})")
        await asyncio.sleep(interval)


FAST_SYNC = """
[sync]
backoff_min_s = 0.05
backoff_max_s = 0.5
feed_wait_s = 2
heartbeat_s = 0.5
request_timeout_s = 5
"""  # a box config that retries and long-polls quickly, for tests against a real cloud


async def qilu_edge(*args: str, timeout_s: float = 30) -> str:
    """Run the real ``qilu-edge`` CLI; its output (it must succeed)."""
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "qilu-edge"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(timeout_s):
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def cli_provision(config_path: Path, cloud_url: str, code: str) -> str:
    """``qilu-edge provision`` with a claim code, as an installer runs it."""
    return await qilu_edge("provision", "-c", str(config_path), "--cloud", cloud_url,
                           "--claim", code)  # fmt: skip


def start_replica(primary: PgCluster) -> PgCluster:
    """A streaming replica of ``primary``: ``pg_basebackup -R`` as user postgres (it writes
    standby.signal and primary_conninfo), started hot-standby on its own loopback port."""
    bindir = pg_bindir()
    base = Path(tempfile.mkdtemp(prefix="qilu-pg-replica-"))
    if primary.proc_user:
        shutil.chown(base, "postgres", "postgres")
    os.chmod(base, 0o755)
    subprocess.run(
        [*primary.proc_user, str(bindir / "pg_basebackup"), "-D", str(base / "data"), "-R",
         "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-X", "stream",
         "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    port = free_port()
    opts = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={base}"
        " -c max_connections=200 -c hot_standby=on -c fsync=off"
    )
    subprocess.run(
        [*primary.proc_user, str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o", opts,
         "-l", str(base / "log"), "-w", "-t", "60", "start"],
        check=True, capture_output=True, timeout=90,
    )  # fmt: skip
    return PgCluster(base, port, primary.proc_user)
