"""Faults with real processes on loopback, on both backends: the box killed mid-upload, the
cloud killed mid-batch, a proxy that cuts connections at random points, a skewed box clock.
Afterwards the cloud holds every record exactly once and in per-box order, and the box's
outbox is empty."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiohttp
import pytest

from cloudsync.storage import open_storage
from tests.cloudsync.faults import FAKETIME_LIB, BoxProc, CuttingProxy, Writer, make_box
from tests.cloudsync.helpers import Cloud, start_cloud, wait_for
from tests.conftest import STAFF_TOKEN

TOTAL = 2000


async def check_exactly_once_in_order(db_url: str, box_id: str, writer: Writer) -> None:
    storage = await open_storage(db_url, migrate=False)
    try:
        rows = await storage.box_records(box_id)
    finally:
        await storage.close()
    ids = [r["record_id"] for r in rows]  # ordered by seq
    assert len(ids) == len(set(ids)), "a record is stored twice"
    ours = set(writer.ids)
    assert [i for i in ids if i in ours] == writer.ids  # all of them, in the box's order
    assert writer.backlog() == 0


async def drained(cloud: Cloud, box_id: str, writer: Writer, total: int) -> None:
    async def done() -> bool:
        if len(writer.ids) < total or await asyncio.to_thread(writer.backlog):
            return False
        return True

    await wait_for(done, 60, 0.2)


async def acked(cloud: Cloud, box_id: str) -> int:
    _, b = await cloud.call("GET", f"/api/v1/ops/boxes/{box_id}")
    return b.get("acked_seq", 0) if isinstance(b, dict) else 0


@pytest.fixture
async def proc_cloud(db_url: str, tmp_path: Path):
    cloud = await start_cloud(db_url, tmp_path, subprocess_=True)
    yield cloud
    await cloud.stop()


async def test_box_killed_mid_upload(proc_cloud: Cloud, db_url: str, tmp_path: Path) -> None:
    cloud = proc_cloud
    ident = await cloud.new_box()
    box = make_box(tmp_path, ident, cloud.url, batch=50)
    writer = Writer(box.db)
    writer.write(1500)  # a backlog from an offline night
    try:
        await asyncio.to_thread(box.start)
        feeding = asyncio.create_task(writer.run(TOTAL, 60, 0.05))
        rng = random.Random(3)
        for _ in range(2):
            before = await acked(cloud, ident.box_id)
            await wait_for(lambda b=before: _moved(cloud, ident.box_id, b), 20, 0.02)
            await asyncio.sleep(rng.uniform(0, 0.15))
            box.kill9()  # wherever it is: reading, sending, or acking a batch
            await asyncio.to_thread(box.start)
        await feeding
        await drained(cloud, ident.box_id, writer, TOTAL)
        await check_exactly_once_in_order(db_url, ident.box_id, writer)
    finally:
        box.stop()
        writer.close()


async def _moved(cloud: Cloud, box_id: str, before: int) -> bool:
    return await acked(cloud, box_id) > before


async def test_cloud_killed_mid_batch(proc_cloud: Cloud, db_url: str, tmp_path: Path) -> None:
    cloud = proc_cloud
    ident = await cloud.new_box()
    box = make_box(tmp_path, ident, cloud.url, batch=100)
    writer = Writer(box.db)
    writer.write(1000)
    try:
        await asyncio.to_thread(box.start)
        feeding = asyncio.create_task(writer.run(TOTAL, 100, 0.05))
        for _ in range(2):
            before = await acked(cloud, ident.box_id)
            await wait_for(lambda b=before: _moved(cloud, ident.box_id, b), 20, 0.02)
            cloud.kill()  # kill -9 of the service while the box is sending
            await asyncio.sleep(0.3)
            await asyncio.to_thread(cloud.start_proc)
        await feeding
        await drained(cloud, ident.box_id, writer, TOTAL)
        await check_exactly_once_in_order(db_url, ident.box_id, writer)
    finally:
        box.stop()
        writer.close()


async def test_cutting_proxy(proc_cloud: Cloud, db_url: str, tmp_path: Path) -> None:
    cloud = proc_cloud
    ident = await cloud.new_box()
    proxy = CuttingProxy(cloud.port, p_cut=1.0, max_bytes=12_000, seed=11)
    await proxy.start()
    box = make_box(tmp_path, ident, f"http://127.0.0.1:{proxy.port}", batch=100)
    writer = Writer(box.db)
    writer.write(1000)
    try:
        await asyncio.to_thread(box.start)
        await writer.run(TOTAL, 100, 0.03)
        await drained(cloud, ident.box_id, writer, TOTAL)
        await check_exactly_once_in_order(db_url, ident.box_id, writer)
        assert proxy.cuts >= 3, f"the proxy cut only {proxy.cuts} connections"
    finally:
        box.stop()
        writer.close()
        await proxy.stop()


async def test_skewed_box_clock(proc_cloud: Cloud, db_url: str, tmp_path: Path) -> None:
    cloud = proc_cloud
    ident = await cloud.new_box()
    # The box's clock runs two hours fast (libfaketime, a real process clock): it learns the
    # cloud's time from the refusal and signs with it.
    env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "+2h", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    box: BoxProc = make_box(tmp_path, ident, cloud.url, batch=100, env=env)
    writer = Writer(box.db)
    writer.write(300)
    try:
        await asyncio.to_thread(box.start)
        await drained(cloud, ident.box_id, writer, 300)
        await check_exactly_once_in_order(db_url, ident.box_id, writer)
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"http://127.0.0.1:{box.api_port}/api/v1/sync/status",
                headers={"Authorization": f"Bearer {STAFF_TOKEN}"},
            ) as r,
        ):
            st = await r.json()
        assert abs(st["clock_offset_s"] + 7200) < 60, st
    finally:
        box.stop()
        writer.close()
