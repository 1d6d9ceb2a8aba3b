"""Device manager: builds every configured door, camera and screen from its driver and turns
driver health changes into standard device-health records."""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from drivers import registry
from drivers.base import Driver
from edge.core.box import Box
from edge.core.service import Service
from edge.core.standard import DeviceHealth, new_id

log = logging.getLogger(__name__)
START_TIMEOUT_S = 10.0
SINGULAR = {"doors": "door", "cameras": "camera", "screens": "screen"}


class DeviceManager(Service):
    name = "devices"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.drivers: dict[tuple[str, str], Driver] = {}
        for kind, dev in box.config.devices():
            if not dev.enabled:
                continue
            cls = registry.get(kind, dev.type)
            k = SINGULAR[kind]
            self.drivers[(k, dev.id)] = cls(dev, on_health=partial(self._health, k, dev.id))

    def get(self, kind: str, device_id: str) -> Driver:
        return self.drivers[(kind, device_id)]

    def of_kind(self, kind: str) -> dict[str, Driver]:
        return {i: d for (k, i), d in self.drivers.items() if k == kind}

    async def start(self) -> None:
        for (kind, dev_id), drv in self.drivers.items():
            await self.box.store.upsert_device(kind, dev_id, drv.TYPE, drv.config.name)
        # Start all at once, each bounded: one dead device must not hold up the others.
        await asyncio.gather(*(self._start_one(k, d) for k, d in self.drivers.items()))

    async def _start_one(self, key: tuple[str, str], drv: Driver) -> None:
        try:
            await asyncio.wait_for(drv.start(), START_TIMEOUT_S)
        except Exception as e:
            log.error("%s %s did not start: %s", key[0], key[1], e)
            await drv.set_health("offline", f"start failed: {e}")

    async def stop(self) -> None:
        results = await asyncio.gather(
            *(asyncio.wait_for(d.stop(), 2.0) for d in self.drivers.values()),
            return_exceptions=True,
        )
        for key, r in zip(self.drivers, results, strict=True):
            if isinstance(r, BaseException):
                log.warning("%s %s did not stop cleanly: %r", key[0], key[1], r)

    async def _health(self, kind: str, device_id: str, state: str, reason: str) -> None:
        rows = await self.box.store.device_states()
        previous = next(
            (r["state"] for r in rows if r["kind"] == kind and r["id"] == device_id), None
        )
        rec = DeviceHealth(
            id=new_id("dh"),
            device_kind=kind,
            device_id=device_id,
            state=state,
            previous=previous,
            reason=reason,
        )
        await self.box.store.set_device_state(rec, kind, device_id, state, reason)
        log.info("%s %s is %s (%s)", kind, device_id, state, reason)

    def status(self) -> dict[str, Any]:
        return {
            f"{k}/{i}": {"type": d.TYPE, "state": d.state, "reason": d.reason}
            for (k, i), d in self.drivers.items()
        }
