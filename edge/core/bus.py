"""The MQTT event bus: publishes the store's event journal, receives commands.

The store is the truth and MQTT only the notification: the publisher reads the journal from a
cursor kept in the store, so events written while the broker is down are published, in order,
once it is back. Delivery is at least once (QoS 1); the cursor advances after the broker acks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from common import protocol as p
from edge.core.box import Box
from edge.core.config import CoreConfig
from edge.core.feature import ServiceKey
from edge.core.service import Service, cancel
from edge.core.standard import (
    Alert,
    Command,
    CommandResult,
    StandardError,
    new_id,
    parse_payload,
    topic,
)
from edge.core.store import StoreError

log = logging.getLogger(__name__)
BATCH = 200
SIGNED = p.SCHEMA_SIGNED_COMMAND
KEY_FILE = "mqtt-command.key"
ALERT_EVERY_S = 60.0  # at most one alert per minute for refused MQTT commands
SIGNED_ACTOR = "mqtt:box-key"  # who a signed command acts as (the key, not the message)


# What an anonymous publisher may still send unsigned: commands that change nothing.
OPEN_COMMANDS = frozenset({("box", "ping")})


def privileged(kind: str, action: str) -> bool:
    """Commands that act on the physical world, run software or change what the box shows and
    stores (a door opening, a software update, an emergency broadcast to every screen and phone,
    screen content, tickets, the report model): never from an anonymous publisher. Only door.*
    and box.update used to be (security probe 4: a fake emergency took every screen)."""
    return (kind, action) not in OPEN_COMMANDS


def command_key_path(config: CoreConfig) -> Path:
    return config.box.data_dir / KEY_FILE


def command_key(config: CoreConfig, create: bool = False) -> str | None:
    """The box's MQTT command key (hex), made once (0600) when ``create``."""
    path = command_key_path(config)
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        if not create:
            return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key := secrets.token_hex(32))
    return key


def sign_command(key: str, topic_: str, command: dict[str, Any]) -> bytes:
    """The signed MQTT form of a command (what `qilu-edge mqtt sign` prints)."""
    text = json.dumps(command, ensure_ascii=False, separators=(",", ":"))
    sig = p.sign_message(key, topic_, text.encode())
    return json.dumps({"schema": SIGNED, "command": text, **sig}, ensure_ascii=False).encode()


class Bus(Service):
    name = "bus"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.mqtt
        self.connected = False
        self.published = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_prune = -3600.0
        self._key: str | None = None
        self._alert_at = -ALERT_EVERY_S
        self._nonces: dict[str, float] = {}  # nonce -> when seen (for p.WINDOW_S), no replay
        # The nonces live in memory: a command signed before this process started could be
        # one it has seen (a restart forgot it), so it is refused (security probe 4). The
        # start is kept on the monotonic clock: NTP setting the wall clock back by hours must
        # not make every command signed since look older than the process.
        self._start_mono = time.monotonic()
        loop = asyncio.get_running_loop()
        box.store.sync.on_commit(lambda: loop.call_soon_threadsafe(self._wake.set))

    def topic_for(self, device_kind: str, device_id: str, event: str) -> str:
        return topic(
            self.cfg.topic_prefix, self.box.config.box.community, device_kind, device_id, event
        )

    @property
    def status_topic(self) -> str:
        return self.topic_for("box", self.box.config.box.id, "status")

    async def start(self) -> None:
        if self.cfg.accept_door_commands:
            self._key = await asyncio.to_thread(command_key, self.box.config, True)
        if self.cfg.enabled:
            self._task = asyncio.create_task(self._run(), name="bus")

    async def stop(self) -> None:
        await cancel(self._task)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "connected": self.connected,
            "published": self.published,
            "last_error": self.last_error,
        }

    async def _run(self) -> None:
        delay = self.cfg.reconnect_min_s
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as e:
                self.last_error = str(e)
                if self.connected:
                    log.warning("MQTT broker connection lost: %s", e)
                else:
                    log.info("MQTT broker %s:%s not reachable: %s", self.cfg.host, self.cfg.port, e)
            except StoreError as e:  # e.g. a full disk: reconnect later, from the stored cursor
                self.last_error = f"store: {e}"
                log.error("MQTT bus: %s; reconnecting", e)
            self.connected = False
            # Full jitter so a fleet of boxes does not reconnect in lock-step.
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, self.cfg.reconnect_max_s)

    async def _session(self) -> None:
        will = aiomqtt.Will(self.status_topic, b"offline", qos=1, retain=True)
        async with aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            username=self.cfg.username,
            password=self.cfg.password,
            keepalive=self.cfg.keepalive_s,
            identifier=f"qilu-edge-{self.box.config.box.id}",
            will=will,
            timeout=10,
        ) as client:
            self.connected = True
            self.last_error = ""
            log.info("MQTT connected to %s:%s", self.cfg.host, self.cfg.port)
            await client.publish(self.status_topic, b"online", qos=1, retain=True)
            await client.subscribe(self.topic_for("+", "+", "cmd"), qos=1)
            tasks = [
                asyncio.create_task(self._publish_journal(client)),
                asyncio.create_task(self._receive_commands(client)),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for t in done:
                t.result()  # re-raise MqttError (reconnect) or a bug

    async def _publish_journal(self, client: aiomqtt.Client) -> None:
        store = self.box.store
        cursor = int(await store.get_meta("bus_cursor", "0") or 0)
        while True:
            # Clear before reading: a commit after the read sets it again, none is missed.
            self._wake.clear()
            events = await store.events_after(cursor, BATCH)
            if not events:
                await self._wake.wait()
                continue
            for ev in events:
                payload = json.dumps(ev.payload, ensure_ascii=False, separators=(",", ":"))
                await client.publish(
                    self.topic_for(ev.device_kind, ev.device_id, ev.event),
                    payload.encode(),
                    qos=1,
                    timeout=10,
                )
                cursor = ev.id
                self.published += 1
            await store.set_meta("bus_cursor", str(cursor))
            await self._prune_journal()

    async def _prune_journal(self) -> None:
        # Published events older than the retention leave the journal (at most once an hour).
        now = time.monotonic()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        keep = timedelta(days=self.box.config.store.event_retention_days)
        dropped = await self.box.store.prune_events((datetime.now(UTC) - keep).isoformat())
        if dropped:
            log.info("pruned %d published events older than %s", dropped, keep)

    async def _receive_commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            result = await self.handle_command(str(message.topic), message.payload)
            await self.box.store.record(result)  # published from the journal like any event

    async def handle_command(self, topic_: str, raw: Any) -> CommandResult:
        parts = topic_.split("/")
        kind, target = (parts[2], parts[3]) if len(parts) == 5 else ("box", "?")
        command_id = "invalid"
        try:
            data = json.loads(raw)
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                command_id = data["id"]
            signed = isinstance(data, dict) and data.get("schema") == SIGNED
            if signed:
                data = self._verified(topic_, data)
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    command_id = data["id"]
            cmd = parse_payload(data)
            if not isinstance(cmd, Command):
                raise StandardError(f"schema: expected {Command.schema_id()}, got {data['schema']}")
        except (ValueError, StandardError) as e:
            log.warning("refused command on %s: %s", topic_, e)
            return self._refused(command_id, kind, target, f"invalid command: {e}")
        if privileged(kind, cmd.action) and self.box.commands.known(kind, cmd.action):
            why = (
                "" if signed else
                f"{kind}.{cmd.action} over MQTT needs the signed form ({SIGNED}, signed with"
                " the box's MQTT command key: `qilu-edge mqtt sign`)"
            )
            if not self.cfg.accept_door_commands:
                why = (f"{kind}.{cmd.action} over MQTT is off on this box"
                       " ([mqtt] accept_door_commands = false)")
            if why:
                log.warning("refused command on %s: %s", topic_, why)
                if time.monotonic() - self._alert_at < ALERT_EVERY_S:
                    return self._refused(command_id, kind, target, why)  # a flood: one alert
                self._alert_at = time.monotonic()
                await self.box.store.record(Alert(
                    id=new_id("al"), level="warning", type="mqtt_command_refused",
                    message=f"refused {kind}.{cmd.action} on {topic_}: {why}",
                    evidence=[command_id]))
                return self._refused(command_id, kind, target, why)
        # The actor is who signed (the key), or an anonymous publisher: never the message's.
        cmd = cmd.model_copy(update={"actor": SIGNED_ACTOR if signed else "mqtt"})
        return await self.box.commands.dispatch(kind, target, cmd)

    @staticmethod
    def _refused(command_id: str, kind: str, target: str, detail: str) -> CommandResult:
        return CommandResult(id=new_id("cr"), command_id=command_id, target_kind=kind,
                             target_id=target, ok=False, detail=detail)  # fmt: skip

    def _verified(self, topic_: str, env: dict[str, Any]) -> Any:
        """The command inside a signed envelope, once its signature, time and nonce hold."""
        if self._key is None:
            raise StandardError("signed commands are off ([mqtt] accept_door_commands = false)")
        text, ts, nonce, sig = (env.get(k) for k in ("command", "ts", "nonce", "sig"))
        if not all(isinstance(v, str) for v in (text, ts, nonce, sig)) or not str(ts).isdigit():
            raise StandardError("signed command: command, ts, nonce and sig must be strings")
        assert isinstance(text, str) and isinstance(ts, str)
        assert isinstance(nonce, str) and isinstance(sig, str)
        if not p.check_message(self._key, topic_, text.encode(), ts, nonce, sig):
            raise StandardError("signed command: bad signature (for this topic and key)")
        now = time.time()
        since = int(now - (time.monotonic() - self._start_mono))  # the start, in today's clock
        if int(ts) < since:
            raise StandardError(f"signed command: signed at {ts}, before this box started"
                                f" ({since}): maybe a replay; sign it again")
        if abs(now - int(ts)) > p.WINDOW_S:
            raise StandardError(f"signed command: timestamp {ts} outside ±{p.WINDOW_S} s")
        self._nonces = {n: t for n, t in self._nonces.items() if now - t <= 2 * p.WINDOW_S}
        if nonce in self._nonces:
            raise StandardError("signed command: nonce already used (a replay)")
        self._nonces[nonce] = now
        return json.loads(text)


BUS: ServiceKey[Bus] = ServiceKey("bus")
