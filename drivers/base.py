"""What every driver shares: typed options, start/stop, and health reported as data."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

State = Literal["online", "offline", "degraded"]
HealthCallback = Callable[[State, str], Awaitable[None]]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Driver:
    """Base of door, camera and screen drivers.

    A driver never writes to the store itself: it calls ``await self.set_health(state, reason)``
    and the device manager turns a change into a standard device-health record.
    """

    TYPE: ClassVar[str] = ""
    KIND: ClassVar[str] = ""  # "door", "camera", "screen"
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, config: Any, on_health: HealthCallback | None = None) -> None:
        self.config = config  # edge.core.config.DoorConfig / CameraConfig / ScreenConfig
        self.options = config.options
        self.id: str = config.id
        self.log = logging.getLogger(f"drivers.{self.KIND}.{self.id}")
        self._on_health = on_health
        self.state: State = "offline"
        self.reason = "not started"

    async def set_health(self, state: State, reason: str = "") -> None:
        if (state, reason) == (self.state, self.reason):
            return
        self.state, self.reason = state, reason
        if self._on_health is not None:
            await self._on_health(state, reason)

    async def start(self) -> None:
        """Connect and bring the device to a safe state; must not raise for a dead device."""

    async def stop(self) -> None:
        """Release the device, leaving it safe (a door relay closed)."""
