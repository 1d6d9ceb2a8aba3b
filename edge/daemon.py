"""The box daemon: one asyncio application owning the store, the bus, the HTTP API and the
services that later capabilities add, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from aiohttp import web

from edge.access.service import AccessService
from edge.core import systemd
from edge.core.bus import Bus
from edge.core.commands import Commands
from edge.core.config import Config
from edge.core.http import ApiServer, make_app
from edge.core.service import Service
from edge.core.standard import DeviceHealth, new_id
from edge.core.store import AsyncStore, Store
from edge.devices.service import DeviceManager
from edge.faces.service import FacesService
from edge.installer.discovery import Advertiser
from edge.installer.service import InstallerWeb
from edge.portal.relay import PortalRelay
from edge.portal.service import PortalService
from edge.portal.site import ResidentSite
from edge.reports.service import ReportsService
from edge.screens.service import ScreensService
from edge.sync.service import SyncService
from edge.tickets.service import TicketsService

log = logging.getLogger(__name__)
STOP_BUDGET_S = 4.5  # SIGTERM must end the process within 5 s
SERVICE_STOP_S = 2.0

# The services, in start order. A capability adds its class here; ApiServer stays last so
# the HTTP port opens only when everything behind it runs.
SERVICES: list[type[Service]] = [
    Bus,
    DeviceManager,
    FacesService,  # before anything that identifies faces (access)
    InstallerWeb,
    Advertiser,
    ScreensService,  # after devices: it drives the displays
    ReportsService,  # residents' reports and early warning (before tickets: it analyses)
    TicketsService,  # repair tickets; box.service("tickets") for device-health tickets
    AccessService,  # face doors, passes, remote open (door.open); device-health tickets
    ResidentSite,  # the resident H5 page at /r/
    PortalService,  # resident portal: reading feed, services, logins (/r/read...)
    SyncService,  # after the services that register cloud-feed command handlers
    PortalRelay,  # residents away from home reach /r/ through the cloud (needs sync)
    ApiServer,
]


class Box:
    """What services share: config, store, commands, HTTP app, and each other by name."""

    def __init__(self, config: Config, store: AsyncStore) -> None:
        self.config = config
        self.store = store
        self.commands = Commands()
        self.http: web.Application = make_app(self)
        self.services: list[Service] = []
        self.started_monotonic = time.monotonic()

    def service(self, name: str) -> Any:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.box: Box | None = None
        self._started: list[Service] = []
        self._stop = asyncio.Event()

    async def start(self) -> Box:
        cfg = self.config
        store = await asyncio.to_thread(Store, cfg.db_path, box_id=cfg.box.id)
        astore = AsyncStore(store)
        box = self.box = Box(cfg, astore)
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
            box.services = [cls(box) for cls in SERVICES]
            for svc in box.services:
                await svc.start()
                self._started.append(svc)
        except BaseException:
            log.exception("start-up failed; stopping what already runs")
            await self.stop()
            raise
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
