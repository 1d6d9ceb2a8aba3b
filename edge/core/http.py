"""The box's HTTP API (aiohttp): health, status, and the routes that services add.

Reads of health are public; everything else under ``/api/`` needs a bearer token from the
config (``[[api.tokens]]``) or a staff console's session cookie (the property office, edge/office:
writes then need its CSRF token, and a viewer only reads). Errors are JSON ``{"error": ...}``
naming the problem.
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError

from common.disconnect import CLIENT_LEFT, client_gone, client_left
from common.relay import SAFE_METHODS, foreign_write
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
# Who the resident behind a request is (the portal's session cookie or bearer token), for the
# capabilities that take residents' input: fn(request) -> resident row or None.
ResidentLookup = Callable[[web.Request], Awaitable[dict[str, Any] | None]]
RESIDENT_LOOKUP: web.AppKey[list[ResidentLookup]] = web.AppKey("resident_lookup")
# Who is calling, set by the auth middleware: a token's name and "staff"/"admin" (or "resident",
# or "panel": a door's keypad / QR panel, with the doors it is bound to in PANEL_DOORS).
ACTOR: web.RequestKey[str | None] = web.RequestKey("actor")
ROLE: web.RequestKey[str | None] = web.RequestKey("role")
PANEL_DOORS: web.RequestKey[tuple[str, ...]] = web.RequestKey("panel_doors")
# The only routes a panel token may call, (method, route pattern), added by the features that
# serve panels (keypad PIN, QR); their handlers check the door with require_door(). Every other
# route answers a panel 403 before its handler runs (deny by default).
PANEL_ROUTES: web.AppKey[set[tuple[str, str]]] = web.AppKey("panel_routes")
# How the caller signed in: "token" (a bearer token) or "session" (a staff console's cookie).
VIA: web.RequestKey[str] = web.RequestKey("via")
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class StaffSession:
    """A signed-in staff browser (the property office's cookie): it calls the same API as a
    staff token, but every write must carry ``csrf`` in X-CSRF-Token, and a viewer only reads."""

    actor: str
    csrf: str
    read_only: bool = False


# Cookie checkers of staff consoles (edge/office): request -> its session or None.
SessionLookup = Callable[[web.Request], Awaitable[StaffSession | None]]
STAFF_SESSIONS: web.AppKey[list[SessionLookup]] = web.AppKey("staff_sessions")
# Told of every staff write to the API once it is answered (the office's audit log).
WriteObserver = Callable[[web.Request, int], Awaitable[None]]
WRITE_OBSERVERS: web.AppKey[list[WriteObserver]] = web.AppKey("write_observers")

PUBLIC_PATHS = {"/healthz", "/api/v1/status", "/api/v1/openapi.json"}


# Requests the portal's relay (edge/portal/relay.py) replays from the cloud carry this process's
# relay key and the resident's address; capabilities ask who the client is with client_of().
KEY_HEADER, CLIENT_HEADER = "X-Qilu-Relay", "X-Qilu-Relay-Client"
HTTPS_HEADER = "X-Qilu-Relay-Https"  # "1": the resident's browser reached the cloud over HTTPS
RELAY_KEY = web.AppKey("relay_key", str)  # the secret the relay presents (client_of)


def relayed(request: web.Request) -> bool:
    """Whether this request came through the cloud relay (it carries this process's key)."""
    key = request.app.get(RELAY_KEY, "")
    given = request.headers.get(KEY_HEADER, "")
    return bool(key and given and hmac.compare_digest(given.encode(), key.encode()))


def client_of(request: web.Request) -> str:
    """The resident's address: the relayed one if the relay vouches for it, else the peer's."""
    if relayed(request):
        return "relay:" + request.headers.get(CLIENT_HEADER, "")
    return request.remote or ""


def relayed_https(request: web.Request) -> bool:
    """A relayed request whose browser used HTTPS: its cookies can be ``Secure``."""
    return relayed(request) and request.headers.get(HTTPS_HEADER) == "1"


async def resident_of(request: web.Request) -> dict[str, Any] | None:
    """The logged-in resident of this request, if a capability (the portal) knows one."""
    for lookup in request.app[RESIDENT_LOOKUP]:
        if (found := await lookup(request)) is not None:
            return found
    return None


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def make_app(box: Box) -> web.Application:
    app = web.Application(
        # client_gone outermost: a client that left mid-request is an INFO line, no traceback.
        middlewares=[client_gone, _errors, _same_origin_writes, _auth],
        client_max_size=int(box.config.api.max_body_mb * 1024 * 1024),
    )
    app[BOX] = box
    app.on_response_prepare.append(_secure)
    app[PUBLIC] = set(PUBLIC_PATHS)
    app[PUBLIC_PREFIXES] = set()
    app[AUTHENTICATORS] = []  # config tokens are checked first
    app[PANEL_ROUTES] = set()
    app[RESIDENT_LOOKUP] = []
    app[STAFF_SESSIONS] = []
    app[WRITE_OBSERVERS] = []
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
    except json.JSONDecodeError as e:
        return json_error(400, f"(body): not valid JSON: {e}", field="(body)")
    except UnicodeDecodeError as e:
        return json_error(400, f"(body): not UTF-8 text: {e.reason} at byte {e.start}",
                          field="(body)")
    except RecursionError:
        return json_error(400, "(body): JSON nested too deep", field="(body)")
    except StandardError as e:
        return json_error(400, str(e))


def cross_site(request: web.Request) -> str | None:
    """common.relay.foreign_write for this box: through the relay only Fetch Metadata counts
    (the relay forwards it; the box sees its loopback address, not the browser's host)."""
    return foreign_write(request.method, request.headers, request.host,
                         check_origin=not relayed(request))


@web.middleware
async def _same_origin_writes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (why := cross_site(request)) is not None:
        return json_error(403, f"{why}: a write from another site's page is refused; use this"
                          " box's own pages", field=why.split(":", 1)[0])
    return await handler(request)


# What every HTML page of the box may load: only its own scripts, styles, images and media,
# no framing by other sites (clickjacking on /r/ door buttons), no plug-ins. Pages keep their
# scripts in static files (no inline script), so no nonce is needed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def _secure(request: web.Request, resp: web.StreamResponse) -> None:
    """Security headers on every answer (files too: this runs as the headers go out)."""
    h = resp.headers
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    if (resp.content_type or "").startswith("text/html"):
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Frame-Options", "DENY")


def refuse(status: int, field: str, message: str) -> web.HTTPException:
    """An HTTP error with the JSON body ``{"error": "<field>: <message>", "field": ...}``."""
    cls = {400: web.HTTPBadRequest, 413: web.HTTPRequestEntityTooLarge,
           415: web.HTTPUnsupportedMediaType}.get(status, web.HTTPBadRequest)
    text = json.dumps({"error": f"{field}: {message}", "field": field}, ensure_ascii=False)
    if cls is web.HTTPRequestEntityTooLarge:
        return cls(max_size=0, actual_size=0, text=text, content_type="application/json")
    return cls(text=text, content_type="application/json")


@dataclass
class Form:
    """A multipart form read within limits: text fields and files (by field name)."""

    fields: dict[str, str]
    files: dict[str, list[tuple[str, bytes]]]  # name -> [(filename, data)]


async def read_form(
    request: web.Request,
    *,
    files: dict[str, tuple[int, int]],
    max_fields: int = 32,
    max_field_bytes: int = 16384,
) -> Form:
    """The one multipart reader of the box: ``request.multipart()`` streams past aiohttp's
    ``client_max_size``, so this bounds the whole body ([api] max_body_mb), the number of parts
    and each part. ``files`` maps a file field to (most files, most bytes each); any other part
    is a text field. Raises 413/415/400 naming the field; the caller stores nothing until this
    returned, so a refused body leaves nothing behind."""
    if not request.content_type.startswith("multipart/form-data"):
        raise refuse(415, "(body)", "send multipart/form-data")
    total = int(request.app[BOX].config.api.max_body_mb * 1048576)
    if (request.content_length or 0) > total:
        raise refuse(413, "(body)", f"larger than {total / 1048576:.1f} MB ([api] max_body_mb)")
    out = Form({}, {})
    used = parts = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            parts += 1
            if parts > max_fields + sum(n for n, _ in files.values()):
                raise refuse(413, "(body)", f"more than {max_fields} form fields")
            name = getattr(part, "name", None) or ""
            most, each = files.get(name, (0, max_field_bytes))
            data = bytearray()
            while chunk := await part.read_chunk(65536):  # type: ignore[union-attr]
                data += chunk
                used += len(chunk)
                if used > total:
                    raise refuse(413, "(body)", f"larger than {total / 1048576:.1f} MB"
                                 " ([api] max_body_mb)")
                if len(data) > each:
                    raise refuse(413, name or "(field)", f"larger than {each} bytes")
            if name in files:
                got = out.files.setdefault(name, [])
                if not data:
                    continue  # an empty file input
                if len(got) >= most:
                    raise refuse(413, name, f"at most {most} files")
                filename = getattr(part, "filename", None) or f"{name}{len(got) + 1}"
                got.append((filename, bytes(data)))
            else:
                try:
                    out.fields[name] = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise refuse(400, name or "(field)", "not UTF-8 text") from None
    except (ValueError, AssertionError, EOFError, ClientPayloadError, HttpProcessingError) as e:
        if isinstance(e, web.HTTPException):
            raise
        raise refuse(400, "(body)", f"broken multipart body: {e}") from None
    return out


async def form_post(request: web.Request, max_fields: int = 64) -> Any:
    """``request.post()`` for the resident pages' small forms: aiohttp bounds its size by
    [api] max_body_mb; this bounds the number of fields and turns a broken body into a 400."""
    try:
        form = await request.post()
    except (ValueError, AssertionError, EOFError, ClientPayloadError, HttpProcessingError) as e:
        if isinstance(e, web.HTTPException):
            raise
        raise refuse(400, "(body)", f"broken form body: {e}") from None
    if len(form) > max_fields:
        raise refuse(413, "(body)", f"more than {max_fields} form fields")
    return form


def query_int(request: web.Request, name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
    """An integer query parameter clamped to [lo, hi]; 400 naming it when it is not a number."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{name}: not a whole number: {raw[:20]!r}", "field": name}),
            content_type="application/json",
        ) from None
    return max(lo, min(value, hi))


def same_secret(given: str, expected: str) -> bool:
    """compare_digest for text from a request: any characters (it refuses non-ASCII str)."""
    return hmac.compare_digest(given.encode(), expected.encode())


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
    request[VIA] = ""
    request[PANEL_DOORS] = ()
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        presented = header.removeprefix("Bearer ").strip().encode()
        for tok in request.app[BOX].config.api.tokens:
            if tok.matches(presented):
                request[ACTOR], request[ROLE], request[VIA] = tok.name, tok.role, "token"
                request[PANEL_DOORS] = tok.doors
        if request[ACTOR] is None:
            for check in request.app[AUTHENTICATORS]:
                if found := await check(presented.decode(errors="replace")):
                    request[ACTOR], request[ROLE] = found
                    request[VIA] = "token"
                    break
    elif request.path.startswith("/api/") and request.app[STAFF_SESSIONS] and not relayed(request):
        # Not through the cloud relay: only resident sessions act from the internet, and the
        # office is a LAN console (its cookie reached the relayed ticket and report paths as
        # staff: security probe 4).
        refused = await _staff_session(request)
        if refused is not None:
            return refused
    if request[ACTOR] is None and not _is_public(request):
        return json_error(401, "missing or invalid bearer token")
    if (request[ROLE] == "panel" and not _is_public(request)
            and _route_of(request) not in request.app[PANEL_ROUTES]):
        return json_error(403, "role: a door panel's token may only enter PINs and QR codes at"
                          " its own door(s)", field="role")
    observers = request.app[WRITE_OBSERVERS]
    if request.method in SAFE_METHODS or request[ROLE] not in ("staff", "admin") or not observers:
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except (ValidationError, ValueError, StandardError):  # _errors answers these with a 400
        status = 400
        raise
    except OSError:
        if client_left(request):  # the audit says so instead of a 500 that never happened
            status = CLIENT_LEFT
        raise
    finally:
        for observe in observers:
            try:
                await observe(request, status)
            except Exception:  # the answer is decided; a failed audit write must be loud
                log.exception("write observer failed for %s %s", request.method, request.path)


async def _staff_session(request: web.Request) -> web.Response | None:
    """Sign the request in with a staff console's cookie, if it has one; a refusal when it is a
    write without the session's CSRF token, or a write by a read-only (viewer) account."""
    session = None
    for lookup in request.app[STAFF_SESSIONS]:
        if (session := await lookup(request)) is not None:
            break
    if session is None:
        return None
    if request.method not in SAFE_METHODS:
        if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
            if _is_public(request):
                return None  # without its token the cookie carries no authority: anonymous
            return json_error(403, f"{CSRF_HEADER}: missing or wrong for this signed-in session"
                              " (the console's pages send it with every write)",
                              field=CSRF_HEADER)
        if session.read_only:
            return json_error(403, "role: a read-only (viewer) account cannot change anything",
                              field="role")
    request[ACTOR], request[ROLE], request[VIA] = session.actor, "staff", "session"
    return None


def _route_of(request: web.Request) -> tuple[str, str]:
    resource = request.match_info.route.resource
    return request.method, resource.canonical if resource is not None else request.path


def require_door(request: web.Request, door_id: str) -> str:
    """Staff, or a door panel's token bound to ``door_id``; the caller's name."""
    if request[ROLE] == "panel" and door_id in request[PANEL_DOORS]:
        return request[ACTOR] or ""
    if request[ROLE] == "panel":
        raise web.HTTPForbidden(
            text=json.dumps({"error": f"id: this panel's token is not for door {door_id!r}",
                             "field": "id"}), content_type="application/json")
    return require_staff(request)


def require_admin(request: web.Request) -> str:
    """An admin token (not any staff): for what can take the box away (re-provisioning)."""
    if request[ROLE] != "admin":
        raise web.HTTPForbidden(
            text=json.dumps({"error": "role: an admin token is required", "field": "role"}),
            content_type="application/json")
    return request[ACTOR] or ""


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
        for tok in cfg.tokens:
            if tok.token is not None:
                log.warning("api.tokens %r: a plain token in the config is deprecated; run "
                            "`qilu-edge token new` and use token_sha256", tok.name)
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
