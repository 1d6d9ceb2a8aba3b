"""Box-facing API on both backends: provisioning, signed upload, dedup, feed, rotation."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time

import aiohttp
import pytest

from common import protocol as p
from edge.sync.client import CloudClient, CloudError, Revoked, provision
from edge.sync.identity import Identity
from edge.sync.store import OutboxRow
from tests.cloudsync.helpers import Cloud


def rows(seqs: list[int], priority: int = 1) -> list[OutboxRow]:
    out = []
    for s in seqs:
        payload = json.dumps({"schema": "qilu.v1.access_event", "id": f"ae-{s}", "n": s})
        out.append(
            OutboxRow(
                s,
                priority,
                "access_event",
                f"ae-{s}",
                f"2026-01-01T00:00:{s % 60:02d}",
                payload,
                len(payload),
            )
        )
    return out


async def stored_seqs(cloud: Cloud, box_id: str) -> list[int]:
    return [r["seq"] for r in await cloud.storage.box_records(box_id)]


async def test_claim_code_is_single_use(cloud: Cloud) -> None:
    await cloud.community()
    code = await cloud.claim()
    first = await provision(cloud.url, code, "a")
    with pytest.raises(CloudError) as e:
        await provision(cloud.url, code, "b")
    assert e.value.status == 409
    _, body = await cloud.call("GET", "/api/v1/ops/boxes")
    assert [b["id"] for b in body["items"]] == [first.box_id]


async def test_upload_dedup_and_watermark(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    client = CloudClient(ident)
    try:
        r1 = await client.upload(rows([1, 2, 3]), floor=1)
        assert (r1.stored, r1.duplicates, r1.acked_through) == (3, 0, 3)
        again = await client.upload(rows([1, 2, 3]), floor=1)  # a replayed batch is a no-op
        assert (again.stored, again.duplicates, again.acked_through) == (0, 3, 3)
        # An alert class drained ahead: 7 and 8 are stored, the watermark waits for 4..6.
        ahead = await client.upload(rows([7, 8], priority=0), floor=4)
        assert (ahead.stored, ahead.acked_through) == (2, 3)
        fill = await client.upload(rows([4, 5, 6]), floor=4)
        assert fill.acked_through == 8
        # The box dropped telemetry 9..10 (declared policy): its floor lets the mark pass.
        gap = await client.upload(rows([11]), floor=11)
        assert gap.acked_through == 11
    finally:
        await client.close()
    assert await stored_seqs(cloud, ident.box_id) == [1, 2, 3, 4, 5, 6, 7, 8, 11]


async def test_bad_and_unauthenticated_uploads_store_nothing(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    good = json.dumps(
        {
            "floor": 1,
            "records": [
                {"seq": 1, "priority": 1, "kind": "k", "record_id": "r", "ts": "t", "payload": "{}"}
            ],
        }
    )
    async with aiohttp.ClientSession() as s:
        url = cloud.url + "/api/v1/box/upload"
        async with s.post(url, data=good) as r:  # no signature at all
            assert r.status == 401
        wrong = Identity(ident.cloud, ident.box_id, "not-the-secret")
        async with s.post(
            url, data=good, headers=CloudClient(wrong).auth_headers("POST", url, good.encode())
        ) as r:
            assert r.status == 401
        # Signed, but the body was changed after signing.
        h = CloudClient(ident).auth_headers("POST", url, good.encode())
        async with s.post(url, data=good.replace('"seq": 1', '"seq": 2'), headers=h) as r:
            assert r.status == 401
        # Signed and valid but a replay of the very same request (same nonce).
        h = CloudClient(ident).auth_headers("POST", url, good.encode())
        async with s.post(url, data=good, headers=h) as r:
            assert r.status == 200
        async with s.post(url, data=good, headers=h) as r:
            assert r.status == 401
            assert "nonce" in (await r.json())["error"]
        # Bad input names the field; the batch stores nothing (one transaction).
        bad = {
            "floor": 1,
            "records": [
                {
                    "seq": 5,
                    "priority": 1,
                    "kind": "k",
                    "record_id": "r",
                    "ts": "t",
                    "payload": "{}",
                },
                {
                    "seq": 0,
                    "priority": 1,
                    "kind": "k",
                    "record_id": "r",
                    "ts": "t",
                    "payload": "{}",
                },
            ],
        }
        raw = json.dumps(bad).encode()
        async with s.post(
            url, data=raw, headers=CloudClient(ident).auth_headers("POST", url, raw)
        ) as r:
            assert r.status == 400
            assert "records.1.seq" in (await r.json())["error"]
        bad["records"][1] = {**bad["records"][0], "seq": 6, "payload": "{not json"}
        raw = json.dumps(bad).encode()
        async with s.post(
            url, data=raw, headers=CloudClient(ident).auth_headers("POST", url, raw)
        ) as r:
            assert r.status == 400, await r.text()
    assert await stored_seqs(cloud, ident.box_id) == [1]


async def test_gzip_upload_and_clock_skew(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    client = CloudClient(ident)
    url = cloud.url + "/api/v1/box/upload"
    body = json.dumps(
        {
            "floor": 1,
            "records": [
                {"seq": 1, "priority": 1, "kind": "k", "record_id": "r", "ts": "t", "payload": "{}"}
            ],
        }
    ).encode()
    # A box whose clock is an hour fast is refused with the server time...
    h = p.sign(ident.secret, ident.box_id, "POST", "/api/v1/box/upload", body, offset_s=3600)
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=gzip.compress(body), headers={**h, "Content-Encoding": "gzip"}) as r,
    ):
        assert r.status == 401
        assert abs(int(r.headers[p.H_SERVER_TIME]) - time.time()) < 5
    # ...and the client corrects itself from that answer.
    client.offset_s = 3600
    try:
        res = await client.upload(rows([1]), floor=1)
        assert res.stored == 1 and abs(client.offset_s) < 5
    finally:
        await client.close()


async def test_revoked_box_is_refused(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    client = CloudClient(ident)
    try:
        await client.upload(rows([1]), floor=1)
        status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{ident.box_id}/revoke")
        assert status == 200
        with pytest.raises(Revoked):
            await client.upload(rows([2]), floor=2)
    finally:
        await client.close()
    assert await stored_seqs(cloud, ident.box_id) == [1]


async def test_secret_rotation(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    client = CloudClient(ident)
    try:
        new = await client.rotate()
        # Until the box signs with the new secret, the old one still works (lost answer).
        await client.upload(rows([1]), floor=1)
        client.ident = Identity(ident.cloud, ident.box_id, new)
        await client.upload(rows([2]), floor=2)
        old = CloudClient(ident)
        with pytest.raises(CloudError) as e:
            await old.upload(rows([3]), floor=3)
        assert e.value.status == 401
        await old.close()
    finally:
        await client.close()


async def test_feed_long_poll_delivers_a_command_within_a_second(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    client = CloudClient(ident)
    try:
        assert (await client.feed(0, 0))["items"] == []
        poll = asyncio.create_task(client.feed(0, 10))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        status, body = await cloud.call(
            "POST",
            f"/api/v1/ops/boxes/{ident.box_id}/commands",
            json={"target_kind": "door", "target_id": "door-1", "action": "open"},
        )
        assert status == 201, body
        page = await asyncio.wait_for(poll, 5)
        assert time.monotonic() - t0 < 1.0
        [item] = page["items"]
        assert (item["target_kind"], item["target_id"], item["action"]) == (
            "door",
            "door-1",
            "open",
        )
        assert item["args"]["actor"] == "root" and not item["expired"]
        assert (await client.feed(page["cursor"], 0))["items"] == []
    finally:
        await client.close()


async def test_blob_range_download_by_box(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    data = bytes(range(256)) * 40
    status, body = await cloud.call(
        "POST",
        "/api/v1/ops/content?title=clip",
        data=data,
    )
    assert status == 201, body
    sha = body["sha256"]
    assert sha == hashlib.sha256(data).hexdigest()
    client = CloudClient(ident)
    url = f"{cloud.url}/api/v1/blobs/{sha}"
    try:
        s = await client.session()
        async with s.get(
            url, headers={**client.auth_headers("GET", url), "Range": "bytes=100-199"}
        ) as r:
            assert r.status == 206
            assert await r.read() == data[100:200]
        async with s.get(url) as r:
            assert r.status == 401
    finally:
        await client.close()


async def test_feed_items_committed_out_of_id_order_all_reach_the_box(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two feed writes for one box overlap: a slow one (a city-wide emergency broadcast,
    thousands of rows) has taken its feed id, a quick door open takes a higher id and
    commits first. The box's long-poll answered the door open and moved its cursor past the
    broadcast's id, so the broadcast, committed a moment later, never reached that box.
    (PostgreSQL hands out ids before commit; SQLite has one writer.) The slow write is held
    between its INSERT and its COMMIT here; feed writes now commit in id order."""
    ident = await cloud.new_box()
    client = CloudClient(ident)
    storage = cloud.storage
    real_notify = storage.notify_feed
    inserted, release = asyncio.Event(), asyncio.Event()

    async def slow_first(*args, **kwargs):  # the broadcast's transaction, before COMMIT
        if not inserted.is_set():
            inserted.set()
            await release.wait()
        return await real_notify(*args, **kwargs)

    monkeypatch.setattr(storage, "notify_feed", slow_first)
    try:
        broadcast = asyncio.create_task(storage.feed_add(
            [ident.box_id], "box", "-", "emergency", {"id": "em-1", "title": "停水通知"},
            "ops", None))
        await asyncio.wait_for(inserted.wait(), 5)
        door = asyncio.create_task(storage.feed_add(
            [ident.box_id], "door", "door-1", "open", {}, "ops", None))
        await asyncio.sleep(0.5)  # the door open commits (before the fix) ...
        first = asyncio.create_task(client.feed(0, 0))  # ... and the box polls meanwhile
        await asyncio.wait({first}, timeout=1.0)  # (SQLite: waits for its one writer)
        release.set()
        await asyncio.wait_for(asyncio.gather(broadcast, door), 5)
        page = await asyncio.wait_for(first, 5)
        seen = [i["action"] for i in page["items"]]
        for _ in range(3):  # bounded: the box polls on from its cursor
            page = await client.feed(page["cursor"], 0)
            seen += [i["action"] for i in page["items"]]
        assert seen == ["emergency", "open"]
    finally:
        release.set()
        await client.close()
