"""The screens service in a real box daemon: staff API, player plan and WebSocket, proof of
play exactly once, cloud commands, downloads from a blob server, local alarm trigger, health."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import cv2
import numpy as np
from aiohttp import web

from edge.core.standard import SCHEMA_PREFIX, Alert, Command, new_id
from tests.conftest import STAFF_TOKEN, api_url, free_port
from tests.edge.screens.helpers import screen_key

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}
SCREENS = """
[player]
offline_after_s = 0.6
alert_emergency_types = ["fire"]

[[screens]]
id = "scr-1"
type = "sim"
name = "东门宣传屏"
tags = ["outdoor"]
brightness = { "00:00" = 70 }
"""


def current(plan: dict) -> dict:
    """The segment that plays now (plans start a few seconds in the past)."""
    now = plan["server_now"]
    return next(g for g in plan["segments"] if g["start"] <= now < g["end"])


async def player_watch_rows(db, limit_s: float = 5.0) -> list:
    """The player watch's health rows for scr-1, polled until one appears (up to limit_s)."""
    deadline = time.monotonic() + limit_s
    rows: list = []
    while time.monotonic() < deadline and not rows:
        await asyncio.sleep(0.1)
        rows = list(
            db.query(
                "SELECT state FROM device_health WHERE device_kind='screen' AND device_id='scr-1'"
                " AND reason LIKE 'player has not reported%'"
            )
        )
    return rows


def png(bgr: tuple[int, int, int]) -> bytes:
    img = np.zeros((90, 160, 3), np.uint8)
    img[:] = bgr
    return cv2.imencode(".png", img)[1].tobytes()


async def setup_schedule(s: aiohttp.ClientSession, base: str) -> None:
    r = await s.post(
        f"{base}/api/v1/screens/content",
        json={"id": "n1", "kind": "html", "title": "社区通知", "body": "周六义诊", "duration_s": 2},
        headers=H,
    )
    assert r.status == 201, await r.text()
    r = await s.put(
        f"{base}/api/v1/screens/content/img1/file?title=绿色&duration_s=2",
        data=png((0, 200, 0)),
        headers={**H, "Content-Type": "image/png"},
    )
    assert r.status == 201, await r.text()
    pl = {"id": "pl1", "name": "日常", "items": [{"content_id": "img1"}, {"content_id": "n1"}]}
    assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl, headers=H)).status == 201
    sch = {"id": "s1", "playlist_id": "pl1", "tags": ["outdoor"]}
    assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch, headers=H)).status == 201


async def test_plan_websocket_emergency_and_plays(make_config, run_box):
    box = await run_box(make_config(extra=SCREENS))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        assert (await s.get(f"{base}/api/v1/screens")).status == 401
        await setup_schedule(s, base)
        # A screen's routes need its device key.
        for path in ("plan", "ws"):
            r = await s.get(f"{base}/screen/scr-1/{path}")
            assert r.status == 401 and (await r.json())["field"] == "key"
        r = await s.post(f"{base}/screen/scr-1/plays", json={"records": []})
        assert r.status == 401
        key = (await screen_key(base, "scr-1"))["key"]
        K = {"X-Screen-Key": key}
        wrong = key[:-1] + ("y" if key.endswith("x") else "x")
        r = await s.get(f"{base}/screen/scr-1/plan", headers={"X-Screen-Key": wrong})
        assert r.status == 401
        plan = await (await s.get(f"{base}/screen/scr-1/plan", headers=K)).json()
        assert current(plan)["source"] == "schedule:s1"
        assert [i[0] for i in current(plan)["items"]] == ["img1", "n1"]
        src = plan["content"]["img1"]["src"]
        r = await s.get(base + src, headers={"Range": "bytes=0-7"})
        assert r.status == 206 and await r.read() == b"\x89PNG\r\n\x1a\n"
        page = await (await s.get(f"{base}/screen/scr-1")).text()
        assert "player.js" in page and 'data-screen="&quot;scr-1&quot;"' in page
        assert (await s.get(f"{base}/screen/nope")).status == 404

        async with s.ws_connect(f"{base}/screen/scr-1/ws?key={key}") as ws:
            first = json.loads((await ws.receive()).data)
            assert first["type"] == "plan"
            t0 = time.monotonic()
            r = await s.post(
                f"{base}/api/v1/screens/emergencies",
                json={"title": "燃气泄漏，请勿靠近", "body": "3号楼", "minutes": 5},
                headers=H,
            )
            em = await r.json()
            assert r.status == 201, em
            msg = json.loads((await asyncio.wait_for(ws.receive(), 2)).data)
            assert time.monotonic() - t0 < 0.5
            seg = current(msg["plan"])
            assert seg["source"] == f"emergency:{em['id']}"
            assert msg["plan"]["content"][em["id"]]["title"] == "燃气泄漏，请勿靠近"

            r = await s.post(f"{base}/api/v1/screens/emergencies/{em['id']}/cancel", headers=H)
            assert r.status == 200
            msg = json.loads((await asyncio.wait_for(ws.receive(), 2)).data)
            assert current(msg["plan"])["source"] == "schedule:s1"

            started = datetime.now(UTC) - timedelta(minutes=1)
            play = {
                "id": "pr-abc123",
                "content_id": "img1",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(seconds=2.5)).isoformat(),
            }
            for _ in range(2):  # the ack was "lost": the page sends it again
                await ws.send_str(json.dumps({"type": "plays", "records": [play, {"id": "bad"}]}))
                ack = json.loads((await asyncio.wait_for(ws.receive(), 2)).data)
                assert ack == {"type": "ack", "ack": ["pr-abc123"], "rejected": ["bad"]}

        plays = await (await s.get(f"{base}/api/v1/screens/scr-1/plays", headers=H)).json()
        assert [(p["id"], p["duration_ms"]) for p in plays["plays"]] == [("pr-abc123", 2500)]
    db = box.store.sync.db
    outbox = list(db.query("SELECT kind, record_id FROM outbox WHERE kind = 'play_record'"))
    assert outbox == [{"kind": "play_record", "record_id": "pr-abc123"}]

    # The socket closed; after offline_after_s the player is an offline health event.
    rows = await player_watch_rows(db)
    assert rows == [{"state": "offline"}]
    # The sim display got its brightness schedule.
    drv = box.service("devices").get("screen", "scr-1")
    assert drv.brightness == 70 and drv.power is True


async def test_cloud_commands_download_and_alarm_trigger(make_config, run_box):
    data = png((200, 0, 0))
    sha = hashlib.sha256(data).hexdigest()
    hits = []

    async def blob(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=data, content_type="image/png")

    app = web.Application()
    app.router.add_get("/blobs/{sha}", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        box = await run_box(make_config(extra=SCREENS))
        cmds = box.commands
        item = {
            "schema": SCHEMA_PREFIX + "content_item",
            "id": "blue",
            "kind": "image",
            "title": "蓝色",
            "sha256": sha,
            "size_bytes": len(data),
            "mime": "image/png",
            "url": f"http://127.0.0.1:{port}/blobs/{sha}",
        }

        async def run(action: str, args: dict) -> tuple[bool, str]:
            res = await cmds.dispatch(
                "box", box.config.box.id, Command(id=new_id("c"), action=action, args=args)
            )
            return res.ok, res.detail

        assert (await run("content", item))[0]
        bad = await run("schedule", {"id": "x", "playlist_id": "p", "weekdays": [8]})
        assert not bad[0] and "weekdays" in bad[1]
        ok, _ = await run("playlist", {"id": "pb", "name": "蓝", "items": [{"content_id": "blue"}]})
        assert ok
        assert (await run("schedule", {"id": "sb", "playlist_id": "pb", "screens": ["scr-1"]}))[0]
        svc = box.service("screens")
        deadline = time.monotonic() + 5
        plan: dict = {}
        while time.monotonic() < deadline:
            plan = await svc.plan_json("scr-1")
            if current(plan)["source"] == "schedule:sb":
                break
            await asyncio.sleep(0.05)
        assert current(plan)["source"] == "schedule:sb", "downloaded image never scheduled"
        assert hits == [f"/blobs/{sha}"]

        ok, detail = await run(
            "emergency",
            {
                "id": "em-cloud",
                "title": "台风预警",
                "expires_at": "2099-01-01T00:00:00Z",
                "source": "cloud",
            },
        )
        assert ok, detail
        assert current(await svc.plan_json("scr-1"))["source"] == "emergency:em-cloud"
        assert (await run("emergency_cancel", {"id": "em-cloud"}))[0]
        assert not (await run("emergency_cancel", {"id": "nope"}))[0]

        await box.store.record(
            Alert(id=new_id("al"), level="critical", type="fire", message="2号楼火警，请疏散")
        )
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            p = await svc.plan_json("scr-1")
            if current(p)["source"].startswith("emergency:"):
                break
            await asyncio.sleep(0.05)
        em_id = current(p)["source"].split(":", 1)[1]
        assert p["content"][em_id]["title"] == "2号楼火警，请疏散"
    finally:
        await runner.cleanup()


async def test_a_failed_health_write_does_not_end_the_player_watch(
    make_config, run_box, monkeypatch
):
    """A write that fails once (a locked or full disk) must not stop later offline events:
    the player watch runs for the box's lifetime, and a task that died would never report."""
    from edge.screens import store as screens_db

    real = screens_db.set_player_state
    calls = {"n": 0}

    def flaky(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args)

    monkeypatch.setattr(screens_db, "set_player_state", flaky)
    box = await run_box(make_config(extra=SCREENS))
    db = box.store.sync.db
    # No player ever connects: after offline_after_s (0.6 s) the watch writes "offline"; the
    # first write fails, the next pass (0.15 s later) must write it.
    rows = await player_watch_rows(db)
    assert rows == [{"state": "offline"}], calls
    assert calls["n"] >= 2


async def test_fire_alarm_without_a_message_still_takes_the_screens(make_config, run_box):
    """A fire alarm whose alert carries no message text (an alarm panel sends just the type)
    still takes over the screens, with a generic title, and the next alarm does too: one odd
    alert must not end the watch on alerts for the box's lifetime."""
    box = await run_box(make_config(extra=SCREENS))
    svc = box.service("screens")

    async def emergency_title() -> str | None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            p = await svc.plan_json("scr-1")
            src = current(p)["source"]
            if src.startswith("emergency:"):
                return p["content"][src.split(":", 1)[1]]["title"]
            await asyncio.sleep(0.05)
        return None

    await box.store.record(Alert(id=new_id("al"), level="critical", type="fire", message=""))
    assert await emergency_title() == "紧急通知"
    for em in await box.store.run(lambda s: [r[0] for r in s.db.execute(
            "SELECT id FROM screen_emergencies")], box.store.sync):
        await svc.cancel_emergency(em)
    await box.store.record(
        Alert(id=new_id("al"), level="critical", type="fire", message="2号楼火警，请疏散"))
    assert await emergency_title() == "2号楼火警，请疏散"


async def test_the_alarm_watch_outlives_a_failed_write(make_config, run_box):
    """A fire alarm comes while the database refuses the broadcast's write (a full disk, a
    corrupt page, a bug: here a real SQLite error raised by a trigger that another connection
    put on screen_emergencies). The watch on alarms died of it, so every later alarm, after
    the database was fine again, never reached the screens. Now it logs, backs off and keeps
    watching: the alarm is broadcast once the write works, and so is the next one."""
    box = await run_box(make_config(extra=SCREENS))
    svc = box.service("screens")

    def other(sql: str) -> None:  # a second connection to the box's real database file
        db = sqlite3.connect(box.config.db_path, timeout=5)
        try:
            db.execute(sql)
            db.commit()
        finally:
            db.close()

    async def on_screen(want: str | None, limit_s: float) -> str | None:
        """The title of the emergency scr-1 plays now, polled until it is ``want``."""
        deadline = time.monotonic() + limit_s
        title = None
        while time.monotonic() < deadline:
            p = await svc.plan_json("scr-1")
            src = current(p)["source"]
            title = p["content"][src.split(":", 1)[1]]["title"] if src.startswith(
                "emergency:") else None
            if title == want and want is not None:
                break
            await asyncio.sleep(0.05)
        return title

    async def stored() -> set[str]:
        return await box.store.run(lambda s: {json.loads(r[0])["title"] for r in s.db.execute(
            "SELECT payload FROM screen_emergencies")}, box.store.sync)

    other("CREATE TRIGGER broken BEFORE INSERT ON screen_emergencies"
          " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    await box.store.record(
        Alert(id=new_id("al"), level="critical", type="fire", message="1号楼火警"))
    assert await on_screen(None, 1.0) is None  # the write fails: nothing on the screens yet
    other("DROP TRIGGER broken")
    assert await on_screen("1号楼火警", 10.0) == "1号楼火警"  # tried again: it gets through
    await box.store.record(
        Alert(id=new_id("al"), level="critical", type="fire", message="2号楼火警，请疏散"))
    assert await on_screen("2号楼火警，请疏散", 10.0) == "2号楼火警，请疏散"
    assert await stored() == {"1号楼火警", "2号楼火警，请疏散"}  # each alarm once


async def test_retagging_a_configured_screen_is_refused_not_ignored(make_config, run_box):
    """scr-1 is declared in the config ([[screens]] tags = ["outdoor"]), which wins: a POST
    /api/v1/screens giving it other tags used to answer 201 and change nothing, so staff
    scheduled content for "indoor" that never reached it. Now a 409 says where to edit."""
    box = await run_box(make_config(extra=SCREENS))
    base = api_url(box)
    H = {"Authorization": "Bearer " + STAFF_TOKEN}
    async with aiohttp.ClientSession(headers=H) as s:
        async with s.post(f"{base}/api/v1/screens",
                          json={"id": "scr-1", "name": "东门", "tags": ["indoor"]}) as r:
            assert r.status == 409, await r.text()
            body = await r.json()
            assert body["field"] == "id" and "[[screens]]" in body["error"]
        async with s.get(f"{base}/api/v1/screens") as r:
            tags = {x["id"]: x["tags"] for x in (await r.json())["screens"]}
        assert tags["scr-1"] == ["outdoor"]
        # A screen not in the config is still added (and tagged) through the API.
        async with s.post(f"{base}/api/v1/screens",
                          json={"id": "scr-9", "tags": ["indoor"]}) as r:
            assert r.status == 201
        async with s.get(f"{base}/api/v1/screens") as r:
            tags = {x["id"]: x["tags"] for x in (await r.json())["screens"]}
        assert tags["scr-9"] == ["indoor"]


async def test_an_emergency_sent_again_after_it_was_ended_stays_ended(make_config, run_box):
    """Screens probe 8: an emergency sent again with the id of one already ended (a feed
    replayed after the box's database was rebuilt, a retried command, a staff script) came
    back on every screen, its end forgotten. Its end now holds: a new broadcast needs a new
    id."""
    from edge.core.standard import Emergency

    box = await run_box(make_config(extra=SCREENS))
    svc = box.service("screens")
    now = datetime.now(UTC)
    em = Emergency(id="em-gas", title="燃气泄漏，请绕行", body="", level="critical",
                   starts_at=now, expires_at=now + timedelta(hours=1), source="cloud")
    await svc.start_emergency(em)
    assert current(await svc.plan_json("scr-1"))["source"] == "emergency:em-gas"
    await svc.cancel_emergency("em-gas")
    assert current(await svc.plan_json("scr-1"))["source"] != "emergency:em-gas"
    await svc.start_emergency(em)  # the same broadcast, sent again
    assert current(await svc.plan_json("scr-1"))["source"] != "emergency:em-gas"
