"""The box's HTTP API (aiohttp): health, status, and the routes that services add.

Reads of health are public; everything else under ``/api/`` needs a bearer token from the
config (``[[api.tokens]]``). Errors are JSON ``{"error": ...}`` naming the problem.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import platform
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from pydantic import ValidationError

from common.version import __version__
from edge.core.feature import ServiceKey
from edge.core.service import Service
from edge.core.standard import StandardError

if TYPE_CHECKING:
    from edge.core.box import Box

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Extra bearer-token checkers (e.g. resident portal sessions): token -> (actor, role) or None.
Authenticator = Callable[[str], Awaitable[tuple[str, str] | None]]

BOX: web.AppKey[Box] = web.AppKey("box")
# Paths (exact) and prefixes that need no token; services add theirs (e.g. "/screen/").
PUBLIC: web.AppKey[set[str]] = web.AppKey("public_paths")
PUBLIC_PREFIXES: web.AppKey[set[str]] = web.AppKey("public_prefixes")
AUTHENTICATORS: web.AppKey[list[Authenticator]] = web.AppKey("authenticators")
# Who is calling, set by the auth middleware: a token's name and "staff"/"admin" (or "resident").
ACTOR: web.RequestKey[str | None] = web.RequestKey("actor")
ROLE: web.RequestKey[str | None] = web.RequestKey("role")

PUBLIC_PATHS = {"/healthz", "/api/v1/status"}


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def make_app(box: Box) -> web.Application:
    app = web.Application(
        middlewares=[_errors, _auth],
        client_max_size=int(box.config.api.max_body_mb * 1024 * 1024),
    )
    app[BOX] = box
    app[PUBLIC] = set(PUBLIC_PATHS)
    app[PUBLIC_PREFIXES] = set()
    app[AUTHENTICATORS] = []  # config tokens are checked first
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/status", status)
    return app


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        # aiohttp's own 404/405/413 are plain text; API clients get JSON like every error.
        text = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        return json_error(e.status, text)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(body)"
        return json_error(400, f"{field}: {err['msg']}", field=field)
    except (StandardError, json.JSONDecodeError) as e:
        return json_error(400, str(e))


def _is_public(request: web.Request) -> bool:
    app = request.app
    path = request.path
    if not path.startswith("/api/") or path in app[PUBLIC]:
        return True
    return any(path.startswith(p) for p in app[PUBLIC_PREFIXES])


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[ACTOR] = None
    request[ROLE] = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        presented = header.removeprefix("Bearer ").strip().encode()
        for tok in request.app[BOX].config.api.tokens:
            if hmac.compare_digest(presented, tok.token.encode()):
                request[ACTOR], request[ROLE] = tok.name, tok.role
        if request[ACTOR] is None:
            for check in request.app[AUTHENTICATORS]:
                if found := await check(presented.decode()):
                    request[ACTOR], request[ROLE] = found
                    break
    if request[ACTOR] is None and not _is_public(request):
        return json_error(401, "missing or invalid bearer token")
    return await handler(request)


def require_staff(request: web.Request) -> str:
    if request[ROLE] not in ("staff", "admin"):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "staff token required"}), content_type="application/json"
        )
    return request[ACTOR] or ""  # a staff role always comes with its token's name


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def status(request: web.Request) -> web.Response:
    box = request.app[BOX]
    store = box.store
    import cv2
    import numpy

    return web.json_response(
        {
            "box": {"id": box.config.box.id, "community": box.config.box.community},
            "versions": {
                "qilu_edge": __version__,
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "opencv": cv2.__version__,
                "numpy": numpy.__version__,
            },
            "uptime_s": round(time.monotonic() - box.started_monotonic, 1),
            "store": {
                "path": str(store.sync.path),
                "size_bytes": await store.size_bytes(),
                "schema": await store.schema_versions(),
                "outbox": await store.outbox_stats(),
                "recovered_from": str(store.sync.recovered_from)
                if store.sync.recovered_from
                else None,
            },
            "services": {s.name: s.status() for s in box.services},
        }
    )


class ApiServer(Service):
    """Serves the app that the other services filled with routes; started last."""

    name = "api"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        cfg = self.box.config.api
        self.runner = web.AppRunner(
            self.box.http, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        site = web.TCPSite(self.runner, cfg.host, cfg.port)
        await site.start()
        server = cast(asyncio.Server, site._server)
        self.port = server.sockets[0].getsockname()[1]  # real port when configured as 0
        log.info("HTTP API on http://%s:%s", cfg.host, self.port)

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def status(self) -> dict[str, Any]:
        return {"listen": f"{self.box.config.api.host}:{self.port}"}


API: ServiceKey[ApiServer] = ServiceKey("api")
