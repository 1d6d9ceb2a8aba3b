"""An in-process door for the demo only: a relay that exists in memory."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from drivers.doors.base import DoorDriver, UnlockResult
from drivers.registry import register


class SimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pulse_ms: int = Field(3000, ge=50, le=30000)


@register("doors", "sim")
class SimDoor(DoorDriver):
    Options = SimOptions

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.relay = False
        self.pulses = 0

    async def start(self) -> None:
        self.relay = False  # forced closed at start-up, as real boards are
        await self.set_health("online", "simulated")

    async def unlock(self, pulse_ms: int) -> UnlockResult:
        self.relay = True
        self.pulses += 1
        changed = self.relay
        await asyncio.sleep(pulse_ms / 1000)
        self.relay = False
        return UnlockResult(ok=True, changed=changed)

    async def stop(self) -> None:
        self.relay = False
        await self.set_health("offline", "stopped")
