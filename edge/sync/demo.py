"""Demo step: a local cloud for the city, the demo box provisioned into it, records arriving
and a remote command coming back down the feed."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import click

from edge.core.demo import say, spawn
from edge.core.standard import AccessEvent, new_id
from edge.sync import SYNC

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run(*args: str) -> str:
    proc = await spawn(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise click.ClickException(f"{' '.join(args[:2])} failed: {out.decode()[-500:]}")
    return out.decode().strip()


async def _poll(pred: Any, seconds: float, every: float = 0.05) -> bool:
    for _ in range(int(seconds / every)):
        if await pred():
            return True
        await asyncio.sleep(every)
    return False


async def _get(s: aiohttp.ClientSession, url: str, token: str) -> Any:
    async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
        return await r.json()


async def step_cloud_sync(d: Any) -> None:
    cloud_dir = d.work_dir.resolve() / "cloud"
    await asyncio.to_thread(shutil.rmtree, cloud_dir, True)
    await asyncio.to_thread(cloud_dir.mkdir, parents=True)
    db = str(cloud_dir / "cloud.db")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    token = (
        await _run(str(BIN / "qilu-cloudsync"), "ops-user", "--db", db, "--name", "demo-ops")
    ).splitlines()[-1]
    # A console sign-in for people: the city operations console at /console/ (docs/console.md).
    password = secrets.token_urlsafe(9)
    setpw = await spawn(
        str(BIN / "qilu-cloudsync"), "ops-password", "--db", db, "--name", "demo-ops",
        "--password-stdin", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    async with asyncio.timeout(60):
        await setpw.communicate(f"{password}\n".encode())
    # spawn: the cloud lives as long as the demo (run_demo stops it, the kernel if it dies)
    await spawn(
        str(BIN / "qilu-cloudsync"),
        "--log-level",
        "WARNING",
        "serve",
        "--db",
        db,
        "--blobs",
        str(cloud_dir / "blobs"),
        "--port",
        str(port),
        # The demo's relayed pages on 127.0.0.1: no wildcard DNS for --relay-domain here.
        "--relay-same-origin-unsafe",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    say(
        "Cloud sync: a local cloud service for the whole city",
        f"qilu-cloudsync serve --db {db} --port {port} --relay-same-origin-unsafe\n"
        "   (SQLite and one origin for the console and all boxes' pages: a demo only; in"
        " production PostgreSQL and --relay-domain)\n"
        f"ops token (network-wide admin): {token}\n"
        f"city operations console (城市运营中心): {url}/console/"
        f"   sign in as demo-ops / {password}",
    )
    h = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise click.ClickException("the demo cloud did not start")
            await asyncio.sleep(0.2)
        for aid, level, parent, name in (
            ("jinan", "city", None, "济南市"),
            ("lixia", "district", "jinan", "历下区"),
            ("quancheng", "street", "lixia", "泉城路街道"),
            ("demo-community", "community", "quancheng", "演示社区"),
        ):
            async with s.post(
                f"{url}/api/v1/ops/areas",
                headers=h,
                json={"id": aid, "level": level, "name": name, "parent_id": parent},
            ) as r:
                await r.read()
        async with s.post(
            f"{url}/api/v1/ops/communities/demo-community/claim-codes", headers=h, json={}
        ) as r:
            code = (await r.json())["code"]
        click.echo(f"  areas 济南市 → 历下区 → 泉城路街道 → 演示社区; one-time claim code {code}")
        config = d.work_dir.resolve() / "edge.toml"
        out = await _run(
            str(BIN / "qilu-edge"),
            "provision",
            "-c",
            str(config),
            "--cloud",
            url,
            "--claim",
            code,
            "--force",
        )
        click.echo(f"  $ qilu-edge provision --cloud {url} --claim {code}\n  {out}")
        svc = d.box.get(SYNC)
        svc.identity_changed()
        for i in range(5):
            await d.box.store.record(
                AccessEvent(
                    id=new_id("ae"),
                    door_id="door-1",
                    method="qr",
                    decision="granted" if i % 4 else "denied",
                    reason="demo",
                )
            )

        # Wait until the outbox is empty: everything the box recorded is in the cloud.
        async def drained() -> bool:
            return not (await d.box.store.outbox_stats())["rows"]

        await _poll(drained, 20)
        box_id = svc.status()["box_id"]
        box = await _get(s, f"{url}/api/v1/ops/boxes/{box_id}", token)
        stats = await _get(s, f"{url}/api/v1/ops/stats/access", token)
        click.echo(
            f"  fleet: {box_id} v{box['software_version'] or '?'} acked through seq "
            f"{box['acked_seq']}; box outbox now "
            f"{(await d.box.store.outbox_stats())['rows']} rows"
        )
        click.echo(f"  access counts in the cloud: {stats['items']}")
        t0 = time.monotonic()
        async with s.post(
            f"{url}/api/v1/ops/boxes/{box_id}/commands",
            headers=h,
            json={"target_kind": "box", "target_id": box_id, "action": "ping"},
        ) as r:
            await r.read()

        async def applied() -> bool:
            return svc.status()["feed_applied"] > 0

        await _poll(applied, 10)
        st = await _get(s, f"{d.api}/api/v1/sync/status", d.token)
        last = st["feed_log"][0] if st["feed_log"] else {}
        click.echo(
            f"  ops → box command over the long-poll feed: {last.get('action')} → "
            f"{last.get('detail')!r} in {time.monotonic() - t0:.2f} s"
        )
        d.links["cloud"] = f"{url}/api/v1/ops/boxes  (header Authorization: Bearer {token})"
        click.echo(
            f"  try: curl -H 'Authorization: Bearer {token}' {url}/api/v1/ops/boxes\n"
            f"       {url}/api/openapi.json (the whole ops API)"
        )
