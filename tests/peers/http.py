"""A small aiohttp server on a random loopback port, for tests whose peer speaks HTTP (an SMS
gateway, a Web Push service, ...): build an ``web.Application`` with the peer's routes and

    async with serve(app) as url:      # "http://127.0.0.1:<port>"
        ...

or keep a :class:`LoopbackServer` in a fixture (``await srv.start(app)`` / ``await srv.stop()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


class LoopbackServer:
    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self, app: web.Application) -> str:
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    srv = LoopbackServer()
    try:
        yield await srv.start(app)
    finally:
        await srv.stop()
