"""The narrow interface every door driver implements."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import Driver


@dataclass(frozen=True)
class UnlockResult:
    ok: bool  # the pulse was sent and the relay closed again
    changed: bool  # the relay read back as switched on during the pulse
    detail: str = ""


class DoorDriver(Driver):
    KIND = "door"

    async def unlock(self, pulse_ms: int) -> UnlockResult:
        """Energise the relay for ``pulse_ms`` then close it; report what was read back."""
        raise NotImplementedError

    async def is_open(self) -> bool | None:
        """Door-contact sensor: True open, False closed, None if the door has no sensor."""
        return None
