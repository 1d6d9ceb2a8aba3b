"""The audit log: every write an ops user makes (console or script), who, what, which area.

The middleware records each non-read request to the ops API once it is answered, refused ones
too (with their status). Handlers name the area they acted in with ``request[AUDIT_AREA]``
(``cloudsync.ops_api.area_in_scope``/``box_in_scope``/targets do); otherwise the user's scope is
written, which is what a reader of a narrower scope must not see.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from cloudsync.body import WIRE_BODY
from cloudsync.console.auth import SAFE_METHODS, VIA
from cloudsync.context import CLOUD
from cloudsync.routing import AUDIT_AREA, OPS_USER
from common.disconnect import CLIENT_LEFT, client_left

log = logging.getLogger(__name__)
DETAIL_MAX = 1000
SECRET_KEYS = ("password", "totp", "secret", "token")


def detail_of(request: web.Request, body: bytes) -> str:
    if not body or request.content_type != "application/json":
        return f"{request.content_type} {len(body)} bytes" if body else ""
    try:
        data = json.loads(body)
    except ValueError:
        return "(not JSON)"
    if isinstance(data, dict):
        data = {k: ("***" if any(s in k for s in SECRET_KEYS) else v) for k, v in data.items()}
    return json.dumps(data, ensure_ascii=False)[:DETAIL_MAX]


@web.middleware
async def audit(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.method in SAFE_METHODS or not request.path.startswith("/api/v1/ops/"):
        return await handler(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except OSError:
        status = CLIENT_LEFT if client_left(request) else 500
        raise
    except Exception:
        status = 400  # the errors middleware outside turns these into 4xx/5xx answers
        raise
    finally:
        user = request.get(OPS_USER)
        if user is not None:
            await write(request, user, status)


async def write(request: web.Request, user: dict[str, Any], status: int) -> None:
    route = request.match_info.route.resource
    canonical = route.canonical if route is not None else request.path
    target = ",".join(f"{k}={v}" for k, v in request.match_info.items())
    body = request.get(WIRE_BODY, b"")  # as read by cloudsync/body.py (never read here)
    if body and request.headers.get("Content-Encoding", "").lower() not in ("", "identity"):
        body = b""  # compressed: not inflated again for the log
    try:
        await request.app[CLOUD].storage.audit_add(
            user["name"],
            request.get(VIA, "token"),
            f"{request.method} {canonical}",
            request.get(AUDIT_AREA) or user["scope"],
            target,
            detail_of(request, body),
            status,
        )
    except Exception:  # an audit failure must be loud, but the answer is already decided
        log.exception("audit log write failed for %s %s", request.method, canonical)
