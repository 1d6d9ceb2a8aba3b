"""The narrow interface of the daemon's services (bus, devices, screens, sync, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.core.box import Box

log = logging.getLogger(__name__)


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


class Supervisor:
    """Runs a service's background loops and restarts one that ends with an error it did not
    expect (logged with its traceback, full-jitter back-off doubling from ``min_s`` to
    ``max_s``, reset after a loop ran ``max_s`` without failing). Without it such a task died
    silently and the service stopped (the watchdog only sees the event loop). ``restarts`` and
    ``last_error`` are for the service's status."""

    def __init__(self, service: str, min_s: float = 0.5, max_s: float = 60.0) -> None:
        self.service, self.min_s, self.max_s = service, min_s, max_s
        self.tasks: list[asyncio.Task] = []
        self.restarts = 0
        self.last_error = ""

    def spawn(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> asyncio.Task:
        task = asyncio.create_task(self._run(fn, name), name=name)
        self.tasks.append(task)
        return task

    async def _run(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        loop = asyncio.get_running_loop()
        delay = self.min_s
        while True:
            started = loop.time()
            try:
                await fn()
                return  # the loop finished on purpose
            except Exception as e:
                if loop.time() - started >= self.max_s:
                    delay = self.min_s
                self.restarts += 1
                self.last_error = f"{name}: {type(e).__name__}: {e}"
                log.exception("%s: task %s failed; restarting it (restart %d)", self.service,
                              name, self.restarts)  # fmt: skip
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.max_s)

    async def stop(self) -> None:
        await cancel(*self.tasks)
        self.tasks.clear()

    def status(self) -> dict[str, Any]:
        return {"task_restarts": self.restarts, "task_last_error": self.last_error}
