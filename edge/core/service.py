"""The narrow interface of the daemon's services (bus, devices, screens, sync, ...)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.core.box import Box


class Service:
    """Started in the order their features' ``after`` keys give (edge/core/feature.py),
    stopped in reverse.

    ``__init__`` may add HTTP routes and command handlers (nothing is running yet);
    ``start`` must return promptly, leaving long work to tasks; ``stop`` must finish in
    well under the 5 s the daemon has to stop.
    """

    name = "service"

    def __init__(self, box: Box) -> None:
        self.box = box

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}


async def cancel(*tasks: asyncio.Task | None) -> None:
    """Cancel a service's tasks and wait until each has stopped. Their cancellation is
    expected; any other error a task ended with is raised, as awaiting it would."""
    live = [t for t in tasks if t is not None]
    for t in live:
        t.cancel()
    for t in live:
        with contextlib.suppress(asyncio.CancelledError):
            await t
