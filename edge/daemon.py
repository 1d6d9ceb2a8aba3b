"""The box daemon: one asyncio application owning the store, the bus, the HTTP API and the
services that later capabilities add, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from edge import openapi
from edge.core import systemd
from edge.core.box import Box
from edge.core.bus import BUS, Bus
from edge.core.config import CoreConfig
from edge.core.feature import Feature, ServiceSpec, all_services, resolve, start_order
from edge.core.http import API, ApiServer
from edge.core.memory import trim_heap
from edge.core.service import Service
from edge.core.standard import DeviceHealth, new_id
from edge.core.store import AsyncStore, Store
from edge.features import FEATURES

log = logging.getLogger(__name__)
STOP_BUDGET_S = 4.5  # SIGTERM must end the process within 5 s
SERVICE_STOP_S = 2.0


def service_specs(features: list[Feature]) -> list[ServiceSpec]:
    """The services in start order: the bus first, the capabilities' services in the order
    their ``after``/``before`` keys give, the HTTP server last (the port opens only when
    everything behind it runs)."""
    return [
        ServiceSpec(BUS, Bus),
        *start_order(all_services(features)),
        ServiceSpec(API, ApiServer),
    ]


def service_classes(features: list[Feature]) -> list[type[Service]]:
    return [resolve(spec.factory) for spec in service_specs(features)]


class Daemon:
    def __init__(self, config: CoreConfig, features: list[Feature] | None = None) -> None:
        self.config = config
        self.features = FEATURES if features is None else features
        self.box: Box | None = None
        self._started: list[Service] = []
        self._stop = asyncio.Event()

    async def start(self) -> Box:
        cfg = self.config
        store = await asyncio.to_thread(Store, cfg.db_path, box_id=cfg.box.id)
        astore = AsyncStore(store)
        box = self.box = Box(cfg, astore)
        # The OpenAPI document knows every capability's routes: the composition root adds it.
        box.http.router.add_get("/api/v1/openapi.json", openapi.serve)
        box.commands.register("box", "ping", _ping)
        if store.recovered_from:
            await astore.record(
                DeviceHealth(
                    id=new_id("dh"),
                    device_kind="box",
                    device_id=cfg.box.id,
                    state="degraded",
                    reason=f"database was corrupt; moved aside to {store.recovered_from.name} "
                    "and started on a fresh one",
                )
            )
        try:
            for spec in service_specs(self.features):
                # one at a time: a service may look up those made before it (box.get)
                svc = resolve(spec.factory)(box)
                box.services.append(svc)
                if spec.routes:
                    resolve(spec.routes)(box.http, svc)
            for svc in box.services:
                await svc.start()
                self._started.append(svc)
        except BaseException:
            log.exception("start-up failed; stopping what already runs")
            await self.stop()
            raise
        await asyncio.to_thread(trim_heap)  # what the services' start-up freed (RSS, ~3 MB)
        return box

    async def stop(self) -> None:
        for svc in reversed(self._started):
            # Bounded per service: one stuck service must not keep the others (and the
            # store) from closing.
            try:
                await asyncio.wait_for(svc.stop(), SERVICE_STOP_S)
            except TimeoutError:
                log.error("service %s did not stop within %.1f s", svc.name, SERVICE_STOP_S)
            except Exception:
                log.exception("service %s did not stop cleanly", svc.name)
        self._started.clear()
        if self.box is not None:
            await asyncio.to_thread(self.box.store.close)
            self.box = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        systemd.notify("READY=1")
        log.info("qilu-edge box %s ready", self.config.box.id)
        watchdog = None
        if (interval := systemd.watchdog_interval_s()) is not None:
            watchdog = asyncio.create_task(_watchdog(interval))
        await self._stop.wait()
        log.info("stopping")
        systemd.notify("STOPPING=1")
        if watchdog:
            watchdog.cancel()
        try:
            await asyncio.wait_for(self.stop(), STOP_BUDGET_S)
        except TimeoutError:
            log.error("services did not stop within %.1f s; exiting anyway", STOP_BUDGET_S)


async def _watchdog(interval: float) -> None:
    # Pinging from the event loop proves the loop is not blocked, which is the point.
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def _ping(target_id: str, cmd: Any) -> str:
    return "pong"
