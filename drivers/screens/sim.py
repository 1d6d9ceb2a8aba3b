"""A simulated display for the demo and tests: power and brightness held in memory."""

from __future__ import annotations

from drivers.registry import register
from drivers.screens.base import DisplayDriver, DisplayOptions, DisplayStatus


@register("screens", "sim")
class SimDisplay(DisplayDriver):
    Options = DisplayOptions

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.power = True
        self.brightness = 100
        self.history: list[tuple[str, object]] = []

    async def start(self) -> None:
        await self.set_health("online", "simulated")

    async def set_power(self, on: bool) -> None:
        self.power = on
        self.history.append(("power", on))

    async def set_brightness(self, percent: int) -> None:
        self.brightness = percent
        self.history.append(("brightness", percent))

    async def read_status(self) -> DisplayStatus:
        return DisplayStatus(self.power, self.brightness)

    async def stop(self) -> None:
        await self.set_health("offline", "stopped")
