"""The narrow interface of the daemon's services (bus, devices, screens, sync, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.daemon import Box


class Service:
    """Started in the order the daemon lists them, stopped in reverse.

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
