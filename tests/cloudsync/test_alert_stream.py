"""The live alert stream (server-sent events) ends when its credential does: a console
session that expired, and a bearer token that was rotated or whose user was removed."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import aiohttp
import pytest

from cloudsync.app import token_hash
from tests.cloudsync.helpers import Cloud
from tests.cloudsync.test_ops_api import rec, two_districts, upload


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_rotated_token_stops_its_alert_stream(cloud: Cloud) -> None:
    a, _ = await two_districts(cloud)
    token = await cloud.ops_user("watcher", "viewer", "lixia")
    seen: list[str] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        async for line in resp.content:  # ends when the cloud ends the stream
            seen.append(line.decode())

    async with (
        aiohttp.ClientSession(headers=cloud.headers(token)) as s,
        s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=60") as resp,
    ):
        assert resp.status == 200
        reader = asyncio.create_task(read(resp))
        await upload(a, [rec(1, "alert", 1, "2026-01-01T10:00:00", level="critical",
                             type="fire", message="before")])  # fmt: skip
        for _ in range(50):  # bounded: 5 s
            if any("before" in x for x in seen):
                break
            await asyncio.sleep(0.1)
        assert any("before" in x for x in seen)
        # The token leaks; ops rotate it (`ops-user --rotate`): the old one is dead.
        await cloud.storage.ops_user_set_token("watcher", token_hash(secrets.token_urlsafe(18)))
        async with aiohttp.ClientSession(headers=cloud.headers(token)) as again:
            async with again.get(f"{cloud.url}/api/v1/ops/me") as r:
                assert r.status == 401
        await asyncio.sleep(16)  # the stream re-checks its credential every 10-15 s
        await upload(a, [rec(2, "alert", 1, "2026-01-01T10:01:00", level="critical",
                             type="fire", message="after")])  # fmt: skip
        await asyncio.sleep(3)
        reader.cancel()
    assert not any("after" in x for x in seen), seen[-3:]


@pytest.mark.parametrize("backend", ["postgres"])
async def test_head_needs_the_same_credential_as_get(cloud: Cloud) -> None:
    """aiohttp answers HEAD on a GET route (add_get); the authentication middleware looked
    the route up as ("HEAD", path), found no entry and let the request in as public: the
    stream's handler ran with no user at all."""
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            async with s.head(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=1",
                              headers=headers) as r:
                assert r.status == 401, (headers, r.status)


async def test_every_alert_of_a_large_batch_reaches_the_live_stream(cloud: Cloud) -> None:
    """A box back online uploads its backlog: 250 alerts in one batch, all stored with one
    arrival time. The live stream read 200 a look and resumed strictly after the arrival
    time of the last one it read, so the other 50 (a fire alarm among them) never showed on
    the console's live feed."""
    a, _ = await two_districts(cloud)
    seen: list[str] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        async for line in resp.content:
            if line.startswith(b"data: "):
                seen.append(line.decode())

    async with (
        aiohttp.ClientSession(headers=cloud.headers()) as s,
        s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=30") as resp,
    ):
        assert resp.status == 200
        reader = asyncio.create_task(read(resp))
        await asyncio.sleep(0.3)  # the stream is looking
        await upload(a, [rec(i, "alert", 0, "2026-01-01T10:00:00", level="warning",
                             type="door_forced", message=f"a{i}") for i in range(1, 251)])
        for _ in range(50):  # bounded: 5 s
            if len(seen) >= 250:
                break
            await asyncio.sleep(0.1)
        reader.cancel()
    assert len(seen) == 250


async def fire_held_up(other, a, ts: str) -> tuple:
    """Box A uploads a fire alarm while a second PostgreSQL session (``other``) holds A's box
    row: the upload is stamped with its arrival time and waits. Returns the holding
    transaction (roll it back to let A commit) and A's upload task."""
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT 1 FROM boxes WHERE id = $1 FOR UPDATE", a.box_id)
    up_a = asyncio.create_task(upload(a, [rec(1, "alert", 0, ts, level="critical",
                                              type="fire", message="A-fire")]))
    await asyncio.sleep(0.5)  # A's upload is stamped and waits for its row
    return tx, up_a


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite: one writer, commits in order
async def test_an_alert_committed_late_still_reaches_the_live_stream(cloud: Cloud) -> None:
    """Two boxes upload at once. Box A's upload is stamped with its arrival time first but
    commits later (its box row was locked by A's own heartbeat or a second worker); box B's
    alert, stamped later, commits first and is streamed, and the stream's cursor passes A's
    arrival time. A's alert (a fire alarm here) then never showed on the live feed. A real
    second PostgreSQL session holds A's row here."""
    import asyncpg

    a, b = await two_districts(cloud)
    seen: list[str] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async for line in resp.content:
                if line.startswith(b"data: "):
                    seen.append(line.decode())

    def messages() -> list[str]:
        return [m for m in ("A-fire", "B-door") if any(m in x for x in seen)]

    other = await asyncpg.connect(cloud.db)
    async with (
        aiohttp.ClientSession(headers=cloud.headers()) as s,
        s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=30") as resp,
    ):
        assert resp.status == 200
        reader = asyncio.create_task(read(resp))
        await asyncio.sleep(0.3)
        tx, up_a = await fire_held_up(other, a, "2026-01-01T10:00:00")
        await upload(b, [rec(1, "alert", 0, "2026-01-01T10:00:01", level="warning",
                             type="door_forced", message="B-door")])
        for _ in range(30):  # bounded: 3 s for B to be streamed
            if messages():
                break
            await asyncio.sleep(0.1)
        await tx.rollback()  # A's row is free: A's upload commits
        await asyncio.wait_for(up_a, 10)
        for _ in range(50):  # bounded: 5 s
            if len(messages()) == 2:
                break
            await asyncio.sleep(0.1)
        reader.cancel()
    await other.close()
    got = messages()
    assert sorted(got) == ["A-fire", "B-door"], got


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite: one writer, commits in order
async def test_an_alert_committed_late_reaches_the_stream_the_browser_reconnects_to(
    cloud: Cloud,
) -> None:
    """As above, but the console's stream ends between B being streamed and A committing (it
    ends every max_s, or the network blips) and the browser reconnects with Last-Event-ID =
    B's event. The new stream looked only strictly after B's arrival time, so A's fire
    alarm, stamped before B but committed after, was never streamed to anyone."""
    import asyncpg

    a, b = await two_districts(cloud)
    other = await asyncpg.connect(cloud.db)
    tx, up_a = await fire_held_up(other, a, "2026-01-01T10:00:00")
    last_id, seen = "", []
    async with aiohttp.ClientSession(headers=cloud.headers()) as s:
        # The first stream began before either upload: it streams B, then ends.
        async with s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=30",
                         headers={"Last-Event-ID": "2000-01-01T00:00:00+00:00"}) as resp:
            assert resp.status == 200
            await upload(b, [rec(1, "alert", 0, "2026-01-01T10:00:01", level="warning",
                                 type="door_forced", message="B-door")])
            async with asyncio.timeout(5):
                async for line in resp.content:
                    if line.startswith(b"id: "):
                        last_id = line.decode()[4:].strip()
                    if line.startswith(b"data: ") and "B-door" in line.decode():
                        break
        assert last_id.endswith(f"{b.box_id} 1")
        await tx.rollback()  # A's row is free: A's upload commits
        await asyncio.wait_for(up_a, 10)
        await other.close()
        async with s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=4",
                         headers={"Last-Event-ID": last_id}) as resp:
            assert resp.status == 200
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(6):  # bounded: the stream ends after 4 s
                    async for line in resp.content:
                        if line.startswith(b"data: "):
                            seen.append(line.decode())
    assert any("A-fire" in x for x in seen), seen


@pytest.mark.parametrize("backend", ["postgres"])  # SQLite: one writer, commits in order
async def test_a_late_alert_behind_a_flood_still_reaches_the_live_stream(cloud: Cloud) -> None:
    """A city-wide outage: box B's backlog of 500 alerts arrives, then box A's fire alarm is
    stamped but waits for its box row, then box C's alert commits and the stream's cursor
    passes A. The stream's look-back read only the first 500 alerts of its 30 s window - all
    B's, already sent - so A's fire alarm, the 501st, never reached the live feed."""
    import asyncpg

    a, b = await two_districts(cloud)
    c = await cloud.new_box("c3", district="lixia", street="s1")
    seen: list[str] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async for line in resp.content:
                if line.startswith(b"data: "):
                    seen.append(line.decode())

    other = await asyncpg.connect(cloud.db)
    async with (
        aiohttp.ClientSession(headers=cloud.headers()) as s,
        s.get(f"{cloud.url}/api/v1/ops/alerts/stream?max_s=30") as resp,
    ):
        assert resp.status == 200
        reader = asyncio.create_task(read(resp))
        await asyncio.sleep(0.3)
        await upload(b, [rec(i, "alert", 0, "2026-01-01T10:00:00", level="warning",
                             type="device_offline", message=f"B{i}") for i in range(1, 501)])
        tx, up_a = await fire_held_up(other, a, "2026-01-01T10:00:01")
        await upload(c, [rec(1, "alert", 0, "2026-01-01T10:00:02", level="warning",
                             type="door_forced", message="C-door")])
        for _ in range(50):  # bounded: 5 s for B's and C's to be streamed
            if any("C-door" in x for x in seen):
                break
            await asyncio.sleep(0.1)
        assert any("C-door" in x for x in seen)
        await tx.rollback()  # A's row is free: A's upload commits
        await asyncio.wait_for(up_a, 10)
        for _ in range(50):  # bounded: 5 s
            if any("A-fire" in x for x in seen):
                break
            await asyncio.sleep(0.1)
        reader.cancel()
    await other.close()
    assert any("A-fire" in x for x in seen), len(seen)
    assert len(seen) == 502


async def test_an_alert_between_the_list_and_the_stream_still_reaches_the_console(
    cloud: Cloud,
) -> None:
    """Probe 12: the alerts page reads the list, then opens the live stream, which started
    at the moment it connected: a fire alarm that arrived in between (a slow tablet on a
    mobile link takes seconds) was in neither, no beep, until the page was reloaded. The
    list now says as of when it is (``as_of``), and the stream starts there (``?since=``)."""
    a, _ = await two_districts(cloud)
    status, listed = await cloud.call("GET", "/api/v1/ops/alerts", params={"limit": 200})
    assert status == 200 and listed["items"] == [] and listed["as_of"], listed
    await upload(a, [rec(1, "alert", 1, "2026-01-01T10:00:00", level="critical",
                         type="fire", message="三号楼火警")])  # fmt: skip
    seen: list[str] = []

    async def read(resp: aiohttp.ClientResponse) -> None:
        async for line in resp.content:
            if line.startswith(b"data: "):
                seen.append(line.decode())

    async with (
        aiohttp.ClientSession(headers=cloud.headers()) as s,
        s.get(f"{cloud.url}/api/v1/ops/alerts/stream",
              params={"max_s": "3", "since": listed["as_of"]}) as resp,
    ):  # fmt: skip
        assert resp.status == 200
        await asyncio.wait_for(read(resp), 10)
    assert len([x for x in seen if "三号楼火警" in x]) == 1, seen
    # A since that is no time is refused by name.
    status, body = await cloud.call("GET", "/api/v1/ops/alerts/stream",
                                    params={"since": "yesterday"})  # fmt: skip
    assert status == 400 and body["field"] == "query.since", body
