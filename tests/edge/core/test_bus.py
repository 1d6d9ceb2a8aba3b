"""The MQTT bus against a real mosquitto: topics, payloads, broker restarts, commands."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import aiohttp
import aiomqtt

from edge.core.bus import command_key, command_key_path, sign_command
from edge.core.standard import AccessEvent, DeviceHealth, parse_payload
from tests.conftest import MOSQUITTO_USER, STAFF_TOKEN, Mosquitto, api_url, fill, small_fs_at

STAFF_H = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def access(i: int) -> AccessEvent:
    return AccessEvent(id=f"a{i:03d}", door_id="door-7", method="face", decision="granted")


async def until(condition, within_s: float) -> None:
    """Poll a condition, bounded in time (the bus exposes no event for these)."""
    for _ in range(int(within_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def collect(
    client: aiomqtt.Client, want: int, within_s: float = 10.0
) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(within_s):
        async for msg in client.messages:
            got.append(msg)
            if len(got) >= want:
                break
    return got


async def test_stored_events_arrive_on_their_topics_schema_valid(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    box = await run_box(make_config(mqtt_port=mosquitto.port))
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("qilu/test-community/+/+/+", qos=1)
        await box.store.record(access(1))
        await box.store.record(
            DeviceHealth(
                id="h1",
                device_kind="camera",
                device_id="cam-2",
                state="offline",
                reason="no frames for 10 s",
            )
        )
        msgs = [m for m in await collect(sub, 3) if not str(m.topic).endswith("/status")][:2]
    topics = [str(m.topic) for m in msgs]
    assert topics == [
        "qilu/test-community/door/door-7/access",
        "qilu/test-community/camera/cam-2/health",
    ]
    records = [parse_payload(json.loads(m.payload)) for m in msgs]  # schema-valid or raises
    assert (records[0].id, records[0].door_id, records[0].decision) == ("a001", "door-7", "granted")
    assert records[1].reason == "no frames for 10 s"


async def test_broker_restart_loses_nothing_and_keeps_order(
    tmp_path, mosquitto: Mosquitto, make_config, run_box
) -> None:
    # A persistent subscriber session survives the broker restart, so every message the box
    # publishes after the restart reaches it: what we check is the box, not the subscriber.
    mosquitto.stop()
    mosquitto.conf.write_text(
        f"listener {mosquitto.port} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {tmp_path}/\n{MOSQUITTO_USER}"
    )
    mosquitto.start()
    sub = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="checker", clean_session=False)
    async with sub:
        await sub.subscribe("qilu/test-community/door/+/access", qos=1)
    box = await run_box(make_config(mqtt_port=mosquitto.port))
    for i in range(5):
        await box.store.record(access(i))
    await asyncio.sleep(0.3)
    mosquitto.stop()  # broker gone; the box keeps storing
    for i in range(5, 12):
        await box.store.record(access(i))
    assert box.service("bus").connected is False
    mosquitto.start()
    for i in range(12, 15):
        await box.store.record(access(i))
    seen: list[str] = []
    async with aiomqtt.Client(
        "127.0.0.1", mosquitto.port, identifier="checker", clean_session=False
    ) as sub:
        await sub.subscribe("qilu/test-community/door/+/access", qos=1)
        async with asyncio.timeout(15):
            async for msg in sub.messages:
                rid = json.loads(msg.payload)["id"]
                if rid not in seen:
                    seen.append(rid)
                if len(seen) == 15:
                    break
    assert seen == [f"a{i:03d}" for i in range(15)], seen  # all of them, in order


async def test_broker_down_at_start_backlog_published_on_connect(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    mosquitto.stop()
    box = await run_box(make_config(mqtt_port=mosquitto.port))
    for i in range(3):
        await box.store.record(access(i))
    await until(lambda: box.service("bus").last_error != "", 5)
    mosquitto.start()
    await until(lambda: box.service("bus").published >= 3, 10)
    assert int(await box.store.get_meta("bus_cursor")) == await box.store.last_event_id()


async def command(port: int, device_topic: str, payload: bytes) -> dict:
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe(f"{device_topic}/cmd_result", qos=1)
        await c.publish(f"{device_topic}/cmd", payload, qos=1)
        msg = (await collect(c, 1))[0]
    return json.loads(msg.payload)


async def test_commands_are_validated_and_answered(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    await run_box(make_config(mqtt_port=mosquitto.port))
    await asyncio.sleep(0.3)
    base = "qilu/test-community/box/box-test"
    ok = await command(
        mosquitto.port, base, b'{"schema":"qilu.v1.command","id":"c1","action":"ping"}'
    )
    assert ok["schema"] == "qilu.v1.command_result"
    assert (ok["ok"], ok["detail"], ok["command_id"]) == (True, "pong", "c1")

    bad_json = await command(mosquitto.port, base, b"{not json")
    assert bad_json["ok"] is False and "invalid command" in bad_json["detail"]

    bad_field = await command(
        mosquitto.port, base, b'{"schema":"qilu.v1.command","id":"c2","action":"Open Now"}'
    )
    assert bad_field["ok"] is False and "action" in bad_field["detail"]
    assert bad_field["command_id"] == "c2"

    unknown = await command(
        mosquitto.port, base, b'{"schema":"qilu.v1.command","id":"c3","action":"explode"}'
    )
    assert unknown["ok"] is False and "unknown command box.explode" in unknown["detail"]


DOOR = '[[doors]]\nid = "door-1"\ntype = "sim"\npulse_ms = 200\n'
DOOR_TOPIC = "qilu/test-community/door/door-1"


def rows(box, sql: str) -> list[tuple]:
    con = sqlite3.connect(box.config.db_path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def door_rows(box) -> list[tuple]:
    return rows(box, "SELECT decision, actor FROM access_events")


def open_cmd(cid: str) -> dict:
    return {"schema": "qilu.v1.command", "id": cid, "action": "open", "actor": "mallory"}


async def test_unsigned_door_command_over_mqtt_is_refused_by_default(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    """The probe's finding C: anyone who can publish opened any door as staff, as 'mallory'."""
    box = await run_box(make_config(mqtt_port=mosquitto.port, extra=DOOR))
    await until(lambda: box.service("bus").connected, 5)
    res = await command(mosquitto.port, DOOR_TOPIC, json.dumps(open_cmd("m1")).encode())
    assert res["ok"] is False and "accept_door_commands" in res["detail"], res
    assert door_rows(box) == []  # the door did not open
    assert rows(box, "SELECT type FROM alerts") == [("mqtt_command_refused",)]
    # Off by default: not even a validly signed command opens it (no key exists).
    assert command_key(box.config) is None


async def test_door_command_over_mqtt_needs_the_box_key_and_is_used_once(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    cfg = make_config(mqtt_port=mosquitto.port, extra=DOOR)
    cfg = cfg.model_copy(
        update={"mqtt": cfg.mqtt.model_copy(update={"accept_door_commands": True})})
    box = await run_box(cfg)
    await until(lambda: box.service("bus").connected, 5)
    key = command_key(box.config)
    assert key and oct(command_key_path(box.config).stat().st_mode & 0o777) == "0o600"

    unsigned = await command(mosquitto.port, DOOR_TOPIC, json.dumps(open_cmd("u1")).encode())
    assert unsigned["ok"] is False and "signed form" in unsigned["detail"]
    forged = sign_command("0" * 64, f"{DOOR_TOPIC}/cmd", open_cmd("f1"))
    bad = await command(mosquitto.port, DOOR_TOPIC, forged)
    assert bad["ok"] is False and "bad signature" in bad["detail"]
    other_door = sign_command(key, "qilu/test-community/door/door-2/cmd", open_cmd("o1"))
    moved = await command(mosquitto.port, DOOR_TOPIC, other_door)  # signed for another topic
    assert moved["ok"] is False and "bad signature" in moved["detail"]
    assert door_rows(box) == []

    signed = sign_command(key, f"{DOOR_TOPIC}/cmd", open_cmd("s1"))
    ok = await command(mosquitto.port, DOOR_TOPIC, signed)
    assert ok["ok"] is True and ok["command_id"] == "s1", ok
    # The actor is the key, not the "mallory" the message claims.
    assert door_rows(box) == [("granted", "mqtt:box-key")]
    replay = await command(mosquitto.port, DOOR_TOPIC, signed)
    assert replay["ok"] is False and "replay" in replay["detail"]
    assert len(door_rows(box)) == 1


async def test_unsigned_state_changing_box_commands_over_mqtt_are_refused(
    mosquitto: Mosquitto, make_config, run_box
) -> None:
    """Security probe 4: the broker is anonymous (loopback by default), and only door.* and
    box.update needed the signed form. Any local process (or anyone, where the broker is opened
    to the LAN) could broadcast a fake emergency ("燃气泄漏，立即撤离") to every screen and every
    resident's phone pages, cancel a real one, or reassign repair tickets, as nobody. Every command
    that changes the box's state now needs the signed form like door commands; ping stays open."""
    box = await run_box(make_config(mqtt_port=mosquitto.port))
    await until(lambda: box.service("bus").connected, 5)
    base = "qilu/test-community/box/box-test"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url(box)}/api/v1/tickets", headers=STAFF_H,
                          json={"title": "3号楼电梯异响", "urgency": "high"}) as r:
            assert r.status == 201
            tid = (await r.json())["id"]
    fake = {"schema": "qilu.v1.command", "id": "e1", "action": "emergency", "args": {
        "id": "em-fake", "title": "燃气泄漏，立即撤离", "expires_at": "2099-01-01T00:00:00+00:00"}}
    res = await command(mosquitto.port, base, json.dumps(fake).encode())
    assert res["ok"] is False and "accept_door_commands" in res["detail"], res
    assert rows(box, "SELECT id FROM screen_emergencies") == []
    close = {"schema": "qilu.v1.command", "id": "t1", "action": "ticket_update",
             "args": {"ticket_id": tid, "action": "assign", "assignee": "mallory"}}
    res = await command(mosquitto.port, base, json.dumps(close).encode())
    assert res["ok"] is False, res
    assert rows(box, f"SELECT status FROM tickets WHERE id = '{tid}'") == [("open",)]
    ping = await command(mosquitto.port, base,
                         b'{"schema":"qilu.v1.command","id":"p1","action":"ping"}')
    assert ping["ok"] is True


async def test_a_signed_door_command_is_not_replayed_after_a_restart(
    mosquitto: Mosquitto, make_config
) -> None:
    """Security probe 4: the nonces of signed commands were kept in memory only, so a signed
    door.open that any subscriber of the (anonymous) broker had seen opened the door again if
    it was sent back within the 300 s signature window after the box restarted (an update, a
    crash, a power cut). A command signed before this box process started is refused now."""
    from edge.daemon import Daemon

    cfg = make_config(mqtt_port=mosquitto.port, extra=DOOR)
    cfg = cfg.model_copy(
        update={"mqtt": cfg.mqtt.model_copy(update={"accept_door_commands": True})})
    first = Daemon(cfg)
    box = await first.start()
    try:
        await until(lambda: box.service("bus").connected, 5)
        key = command_key(box.config)
        assert key
        signed = sign_command(key, f"{DOOR_TOPIC}/cmd", open_cmd("s1"))
        ok = await command(mosquitto.port, DOOR_TOPIC, signed)  # seen by every subscriber
        assert ok["ok"] is True, ok
    finally:
        await first.stop()
    await asyncio.sleep(1.1)  # the restart takes a moment; the signature is still fresh
    second = Daemon(cfg)
    box = await second.start()
    try:
        await until(lambda: box.service("bus").connected, 5)
        replay = await command(mosquitto.port, DOOR_TOPIC, signed)
        assert replay["ok"] is False, "the signed command opened the door again after a restart"
        assert len(door_rows(box)) == 1
        fresh = sign_command(command_key(box.config) or "", f"{DOOR_TOPIC}/cmd", open_cmd("s2"))
        assert (await command(mosquitto.port, DOOR_TOPIC, fresh))["ok"] is True
    finally:
        await second.stop()


async def test_bus_goes_on_after_a_write_failed_on_a_full_disk(
    mosquitto: Mosquitto, make_config, run_box, tmp_path
) -> None:
    """The disk is full when a command arrives over MQTT: its result cannot be stored. That
    StoreFullError ended the bus task for good: after the disk was freed no event reached
    MQTT again (and no command was heard) until the daemon restarted. Now the bus reconnects
    with back-off like after a broker error, and publishes from its stored cursor."""
    data = small_fs_at(tmp_path / "data", 16)
    box = await run_box(make_config(mqtt_port=mosquitto.port))
    await until(lambda: box.service("bus").connected, 5)
    await asyncio.to_thread(fill, data / "filler")
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
        ping = {"schema": "qilu.v1.command", "id": "c-full", "action": "ping"}
        await c.publish("qilu/test-community/box/box-test/cmd", json.dumps(ping), qos=1)
    await asyncio.sleep(1.0)  # the ping's result was refused by the full store
    (data / "filler").unlink()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("qilu/test-community/door/+/access", qos=1)
        await box.store.record(access(1))
        msgs = await collect(sub, 1)
    assert json.loads(msgs[0].payload)["id"] == "a001"
    assert box.service("bus").connected


async def test_signed_commands_work_after_ntp_sets_the_clock_back(
    mosquitto: Mosquitto, tmp_path
) -> None:
    """The box started with its clock two hours fast (a drifting RTC) and NTP then set it
    right. "Signed before this box started" was judged against the wall clock at start, so
    every correctly signed door command was refused for two hours. The start is now taken
    in the current clock (wall time minus the monotonic uptime). A real daemon process whose
    clock libfaketime moves back while it runs; monotonic time stays real."""
    from tests.cloudsync.faults import FAKETIME_LIB, BoxProc
    from tests.conftest import box_toml, free_port

    box = BoxProc(tmp_path, free_port())
    text = box_toml(tmp_path, mosquitto.port, box.api_port, DOOR)
    box.config.write_text(text.replace("[mqtt]\n", "[mqtt]\naccept_door_commands = true\n", 1))
    clock = tmp_path / "faketime"
    clock.write_text("+2h\n")
    box.env = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME_TIMESTAMP_FILE": str(clock),
               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    try:
        await asyncio.to_thread(box.start)
        key_file = tmp_path / "data" / "mqtt-command.key"
        await until(key_file.exists, 5)
        await asyncio.sleep(1.0)  # connected to the broker
        clock.write_text("+0s\n")  # NTP steps the clock back two hours
        signed = sign_command(key_file.read_text().strip(), f"{DOOR_TOPIC}/cmd", open_cmd("n1"))
        res = await command(mosquitto.port, DOOR_TOPIC, signed)
        assert res["ok"] is True, res["detail"]
    finally:
        await asyncio.to_thread(box.stop)
