"""The narrow interface of display-control drivers (power, brightness), and the daily power and
brightness schedule every display shares (pure, so it is tested without a display)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drivers.base import Driver

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class DisplayOptions(BaseModel):
    """Keys every display driver accepts: its daily power and brightness schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    power_on_at: time | None = None  # daily; with power_off_at unset the display stays on
    power_off_at: time | None = None  # before power_on_at: off over midnight (23:00 -> 06:30)
    # "HH:MM" -> percent, each applying from that time of day until the next one.
    brightness: dict[str, int] = Field(default_factory=dict)

    @field_validator("brightness")
    @classmethod
    def _check_brightness(cls, v: dict[str, int]) -> dict[str, int]:
        for k, pct in v.items():
            if not HHMM.match(k):
                raise ValueError(f"time {k!r} is not HH:MM")
            if not 0 <= pct <= 100:
                raise ValueError(f"{k}: brightness {pct} is not 0..100")
        return v


def display_target(opts: DisplayOptions, now: time) -> tuple[bool, int | None]:
    """(power on?, brightness percent or None) wanted at local time ``now``."""
    on = True
    if opts.power_on_at is not None and opts.power_off_at is not None:
        a, b = opts.power_on_at, opts.power_off_at
        on = (a <= now < b) if a < b else (now >= a or now < b)
    level = None
    if opts.brightness:
        marks = sorted((time.fromisoformat(k), v) for k, v in opts.brightness.items())
        level = marks[-1][1]  # before the first mark of the day: the last one of yesterday
        for at, pct in marks:
            if at <= now:
                level = pct
    return on, level


@dataclass(frozen=True)
class DisplayStatus:
    power: bool | None  # None: the display cannot tell
    brightness: int | None


class DisplayDriver(Driver):
    KIND = "screen"
    Options = DisplayOptions

    async def set_power(self, on: bool) -> None:
        raise NotImplementedError

    async def set_brightness(self, percent: int) -> None:
        raise NotImplementedError

    async def read_status(self) -> DisplayStatus:
        """Read back what the display reports; raises if it does not answer."""
        return DisplayStatus(None, None)
