"""The MQTT event bus: publishes the store's event journal, receives commands.

The store is the truth and MQTT only the notification: the publisher reads the journal from a
cursor kept in the store, so events written while the broker is down are published, in order,
once it is back. Delivery is at least once (QoS 1); the cursor advances after the broker acks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt

from edge.core.box import Box
from edge.core.feature import ServiceKey
from edge.core.service import Service, cancel
from edge.core.standard import Command, CommandResult, StandardError, new_id, parse_payload, topic

log = logging.getLogger(__name__)
BATCH = 200


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
            cmd = parse_payload(data)
            if not isinstance(cmd, Command):
                raise StandardError(f"schema: expected {Command.schema_id()}, got {data['schema']}")
        except (ValueError, StandardError) as e:
            log.warning("refused command on %s: %s", topic_, e)
            return CommandResult(
                id=new_id("cr"),
                command_id=command_id,
                target_kind=kind,
                target_id=target,
                ok=False,
                detail=f"invalid command: {e}",
            )
        return await self.box.commands.dispatch(kind, target, cmd)


BUS: ServiceKey[Bus] = ServiceKey("bus")
