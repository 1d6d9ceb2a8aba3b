"""Scale-out: two stateless worker processes on one PostgreSQL database serve the same boxes.
A box's batches land on either worker (even the same batch on both at once) and are stored
once; a command queued on one worker reaches a box long-polling the other within ~1 s."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp

from cloudsync.storage import open_storage
from edge.sync.client import CloudClient
from edge.sync.identity import Identity
from tests.cloudsync.helpers import Cloud, PgCluster, start_cloud
from tests.cloudsync.test_box_api import rows
from tests.conftest import free_port, wait_port


async def test_two_workers_one_database(pg_cluster: PgCluster, tmp_path: Path) -> None:
    db = await pg_cluster.new_database()
    w1 = await start_cloud(db, tmp_path, subprocess_=True)
    port = free_port()
    w2 = Cloud(
        url=f"http://127.0.0.1:{port}", db=db, admin=w1.admin, port=port, blobs=tmp_path / "blobs"
    )
    await asyncio.to_thread(w2.start_proc)
    try:
        ident = await w1.new_box()
        via = [CloudClient(ident), CloudClient(Identity(w2.url, ident.box_id, ident.secret))]
        try:
            # 40 batches of 50, each sent to both workers at the same time.
            for b in range(40):
                batch = rows(list(range(b * 50 + 1, b * 50 + 51)))
                r1, r2 = await asyncio.gather(via[0].upload(batch, 1), via[1].upload(batch, 1))
                assert r1.stored + r2.stored == 50  # one of them stored it, the other deduped
                assert max(r1.acked_through, r2.acked_through) == b * 50 + 50
            _, box = await w2.call("GET", f"/api/v1/ops/boxes/{ident.box_id}")
            assert box["acked_seq"] == 2000
            # Long-poll on worker 2, command through worker 1: woken by NOTIFY.
            poll = asyncio.create_task(via[1].feed(0, 10))
            await asyncio.sleep(0.3)
            t0 = time.monotonic()
            status, _ = await w1.call(
                "POST",
                f"/api/v1/ops/boxes/{ident.box_id}/commands",
                json={"target_kind": "door", "target_id": "door-1", "action": "open"},
            )
            assert status == 201
            page = await asyncio.wait_for(poll, 5)
            assert time.monotonic() - t0 < 1.0
            assert [i["action"] for i in page["items"]] == ["open"]
        finally:
            for c in via:
                await c.close()
        storage = await open_storage(db, migrate=False)
        try:
            seqs = [r["seq"] for r in await storage.box_records(ident.box_id)]
        finally:
            await storage.close()
        assert seqs == list(range(1, 2001))
    finally:
        await w1.stop()
        await w2.stop()


async def test_serve_workers_share_one_port(pg_cluster: PgCluster, tmp_path: Path) -> None:
    db = await pg_cluster.new_database()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "qilu-cloudsync"),
        "--log-level",
        "WARNING",
        "serve",
        "--db",
        db,
        "--blobs",
        str(tmp_path / "blobs"),
        "--port",
        str(port),
        "--workers",
        "2",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_port, port, 30)
        pids = set()
        for _ in range(60):  # a fresh connection each time: the kernel spreads them
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                pids.add((await r.json())["worker"])
            if len(pids) == 2:
                break
            await asyncio.sleep(0.05)  # the second worker may still be starting
        assert len(pids) == 2
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
