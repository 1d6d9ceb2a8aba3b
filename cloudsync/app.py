"""The cloud service's aiohttp application: middlewares (errors, authentication) and wiring.

A worker holds no state of its own beyond caches that may be lost: everything lives in the
storage, so several workers can serve one PostgreSQL database side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from cloudsync import body as bodies
from cloudsync import box_api, ops_api, portal_stats, relay
from cloudsync.batch import Batch
from cloudsync.blobs import BlobStore
from cloudsync.box_auth import BoxCache, NonceBatch
from cloudsync.box_keys import BoxKeys
from cloudsync.console import api as console_api
from cloudsync.console import pages as console_pages
from cloudsync.console import rollout as console_rollout
from cloudsync.console.audit import audit
from cloudsync.console.auth import (
    COOKIE,
    CSRF_HEADER,
    SAFE_METHODS,
    SETTINGS,
    VIA,
    ConsoleSettings,
    csrf_ok,
    session_user,
)
from cloudsync.context import CLOUD, Cloud, FeedWaiter, err
from cloudsync.retention import RetentionConfig
from cloudsync.retention import install as retention_timer
from cloudsync.routing import (
    AUTH_OF,
    BOX_ROW,
    NONCE,
    NONCE_IN_HANDLER,
    OPS_USER,
    SIGNED_WITH,
    Api,
    BadRequest,
)
from cloudsync.storage import Storage, StorageError, open_storage
from cloudsync.storage.base import BadRecord, Replayed
from cloudsync.storage.postgres import PostgresStorage
from cloudsync.throttle import FailureWindow
from common import protocol as p
from common.disconnect import client_gone
from common.version import __version__

log = logging.getLogger(__name__)
# Each route module declares its own table (cloudsync.routing.Api); the app includes them here.
ROUTE_TABLES = (
    box_api.api,
    ops_api.api,
    console_api.api,
    portal_stats.api,
    relay.api,
    console_rollout.api,
)
OPENAPI = web.AppKey("openapi", dict)
SIG_V1_ENV = "QILU_CLOUD_REFUSE_SIG_V1"  # serve --refuse-signature-v1 sets it to 1
NONCE_USED = "nonce already used (replayed request)"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except bodies.TooLarge as e:
        return err(413, str(e), field=e.field)
    except BadRequest as e:
        return err(400, str(e), field=e.field)
    except Replayed:
        return err(401, NONCE_USED)
    except BadRecord as e:  # one record of an upload; the box quarantines it by field
        return err(400, str(e), field=e.field, seq=e.seq)
    except StorageError as e:
        return err(409 if "exists" in str(e) or "used" in str(e) else 400, str(e))
    except (asyncpg.DataError, UnicodeError, json.JSONDecodeError) as e:
        return err(400, f"bad input: {e}")
    except asyncpg.PostgresConnectionError:
        return err(503, "database unavailable, retry")


@web.middleware
async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
    """Sets request[OPS_USER] (bearer token) or request[BOX_ROW] (HMAC-signed), as needed."""
    route = request.match_info.route.resource
    # HEAD reaches GET handlers (aiohttp's add_get): it needs what GET needs, not "public".
    method = "GET" if request.method == "HEAD" else request.method
    key = (method, route.canonical if route is not None else "")
    need = request.app.get(AUTH_OF, {}).get(key, "public")
    request[OPS_USER] = request[BOX_ROW] = None
    if need == "public":
        return await handler(request)
    storage = request.app[CLOUD].storage
    header = request.headers.get("Authorization", "")
    if need in ("ops", "box_or_ops") and header.startswith("Bearer "):
        user = await storage.ops_user_by_token(token_hash(header[7:].strip()))
        if user is None:
            return err(401, "invalid bearer token")
        request[OPS_USER] = user
        request[VIA] = "token"
        return await handler(request)
    if need in ("box", "box_or_ops") and p.H_SIG in request.headers:
        problem = await _verify_box(request, storage)
        if problem is not None:
            return problem
        return await handler(request)
    if need in ("ops", "box_or_ops") and COOKIE in request.cookies:
        # A console session: the same API and scope as a token, plus CSRF on every write.
        user = await session_user(request)
        if user is None:
            return err(401, "session expired or signed out: sign in again")
        if request.method not in SAFE_METHODS and not csrf_ok(request, user):
            return err(403, f"CSRF token missing or wrong (send {CSRF_HEADER})")
        request[OPS_USER] = user
        request[VIA] = "session"
        return await handler(request)
    return err(401, "authentication required" + (" (bearer token)" if need == "ops" else ""))


async def _verify_box(request: web.Request, storage: Storage) -> web.Response | None:
    h = request.headers
    box_id, ts, nonce, sig = (
        h.get(p.H_BOX, ""),
        h.get(p.H_TS, ""),
        h.get(p.H_NONCE, ""),
        h.get(p.H_SIG, ""),
    )
    now = time.time()
    skew = {p.H_SERVER_TIME: str(int(now))}
    if not (box_id and ts.isdigit() and 8 <= len(nonce) <= 64 and sig):
        return err(401, "signature headers incomplete")
    if abs(int(ts) - now) > p.WINDOW_S:
        return web.json_response(
            {
                "error": "timestamp outside the window; sign with the server time",
                "server_time": int(now),
            },
            status=401,
            headers=skew,
        )
    key = (request.method, request.match_info.route.resource.canonical)  # type: ignore[union-attr]
    in_handler = key in request.app.get(NONCE_IN_HANDLER, ())
    cloud = request.app[CLOUD]
    if cloud.nonces is not None and cloud.box_cache is not None:
        # An upload then uses its nonce in the shared batch too, not in its own transaction:
        # the batch's statement is what checks the cached secrets against the database.
        cached = cloud.box_cache.get(box_id)
        if cached is None and cloud.lookups is not None:
            # Looked up with every other miss of the moment (a dead worker's boxes all
            # reconnect here at once), then checked like a cached box: signature, nonce
            # batch, revocation as stored now.
            cached = await cloud.lookups.get(box_id)
            if cached is None:
                return err(401, "unknown box")
            cloud.box_cache.put(cached)
        if cached is not None:
            return await _verify_cached(request, cached, box_id, ts, nonce, sig)
    box = await storage.box_get(box_id)
    if box is None:
        return err(401, "unknown box")
    if cloud.box_cache is not None:
        cloud.box_cache.put(box)
    problem = await _check_signature(request, box, box_id, ts, nonce, sig)
    if problem is not None:
        return problem
    if request[SIGNED_WITH] == box["secret"] and box["prev_secret"]:
        box = await _retire_prev(request, box)
    if box["revoked_at"]:
        return err(403, "box revoked")
    used = (box_id, nonce, int(ts), int(now) - 2 * p.WINDOW_S)
    if in_handler:
        # The handler uses the nonce inside its own transaction (upload): one transaction
        # and one commit per request instead of two; a replay is refused there the same way.
        request[NONCE] = used
    elif not await storage.use_nonce(*used):
        return err(401, NONCE_USED)
    request[BOX_ROW] = box
    return None


async def _verify_cached(
    request: web.Request,
    box: dict[str, Any],
    box_id: str,
    ts: str,
    nonce: str,
    sig: str,
) -> web.Response | None:
    """The signature checked with the cached secrets, then the nonce used in a batch whose
    statement answers with the box's current row: a revocation or a rotation made on any
    worker is seen here at once (cloudsync/box_auth.py)."""
    cloud = request.app[CLOUD]
    assert cloud.nonces is not None and cloud.box_cache is not None
    storage = cloud.storage
    if await _check_signature(request, box, box_id, ts, nonce, sig) is not None:
        # Maybe rotated on another worker and the box signs with its new secret: look again.
        cloud.box_cache.drop(box_id)
        fresh = await storage.box_get(box_id)
        if fresh is None:
            return err(401, "unknown box")
        box = fresh
        cloud.box_cache.put(box)
        problem = await _check_signature(request, box, box_id, ts, nonce, sig)
        if problem is not None:
            return problem
    current = await cloud.nonces.use(box_id, nonce, int(ts))
    if current is None:
        return err(401, NONCE_USED)
    if current["revoked_at"]:
        cloud.box_cache.drop(box_id)
        return err(403, "box revoked")
    if (current["secret"], current["prev_secret"]) != (box["secret"], box["prev_secret"]):
        cloud.box_cache.put(current)  # changed since cached: check against what is stored now
        problem = await _check_signature(request, current, box_id, ts, nonce, sig)
        if problem is not None:
            return problem
        box = current
    if request[SIGNED_WITH] == box["secret"] and box["prev_secret"]:
        box = await _retire_prev(request, box)
    request[BOX_ROW] = box
    return None


async def _check_signature(
    request: web.Request, box: dict[str, Any], box_id: str, ts: str, nonce: str, sig: str
) -> web.Response | None:
    """Checks the request against the box's secret or its previous one; sets SIGNED_WITH."""
    h = request.headers
    path_qs = request.raw_path
    # Version 2 signs the body as sent: checked before anything is inflated. Version 1
    # (older boxes) signed the inflated body: its digest is taken while inflating, keeping
    # nothing, under the inflation bound (cloudsync/body.py).
    if h.get(p.H_SIG_VERSION) == p.SIG_VERSION:
        enc: str | None = bodies.encoding(request)
        digest = hashlib.sha256(await bodies.read_wire(request)).hexdigest()
    elif not request.app[CLOUD].accept_sig_v1:
        return err(401, "signature version 1 is refused here: update the box (it signs version 2)")
    else:
        enc, digest = None, await bodies.wire_digest_v1(request)
    # signed_with: the stored form (a secret, or a "gen:N" marker with a master key).
    keys = request.app[CLOUD].keys
    secret, prev = keys.usable(box_id, box["secret"]), keys.usable(box_id, box["prev_secret"])
    if secret and p.check_signature(secret, sig, request.method, path_qs, ts, nonce, digest, enc):
        request[SIGNED_WITH] = box["secret"]
    elif prev and p.check_signature(prev, sig, request.method, path_qs, ts, nonce, digest, enc):
        request[SIGNED_WITH] = box["prev_secret"]  # rotation not confirmed by the box yet
    else:
        return err(401, "bad signature")
    return None


async def _retire_prev(request: web.Request, box: dict[str, Any]) -> dict[str, Any]:
    """The box uses its new secret: the old one is retired now."""
    await request.app[CLOUD].storage.box_set_secret(box["id"], box["secret"], None)
    box = {**box, "prev_secret": None}
    if (cache := request.app[CLOUD].box_cache) is not None:
        cache.put(box)
    return box


async def healthz(request: web.Request) -> web.Response:
    # The worker's pid shows which process answered (several share a port with --workers).
    return web.json_response({"ok": True, "version": __version__, "worker": os.getpid()})


async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])


def make_app(
    storage: Storage,
    blob_dir: Path,
    *,
    feed_poll_s: float = 0.5,
    max_body_mb: float = 64,
    max_record_chars: int = p.PAYLOAD_MAX,
    master_key: bytes | None = None,
    accept_sig_v1: bool | None = None,
    console: ConsoleSettings | None = None,
) -> web.Application:
    max_body = int(max_body_mb * 1024 * 1024)
    # audit sits outside authenticate: it sees refusals too, and the user authenticate found;
    # client_gone outermost: a client that left mid-request is one INFO line, not a traceback.
    app = web.Application(
        middlewares=[client_gone, errors, audit, authenticate],
        client_max_size=max_body,
        # Bodies are inflated by cloudsync/body.py, after authentication and with a limit.
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = console or ConsoleSettings()
    bodies.install(app, max_body)
    if accept_sig_v1 is None:  # every worker reads what serve was told
        accept_sig_v1 = os.environ.get(SIG_V1_ENV, "") != "1"
    waiter = FeedWaiter(feed_poll_s if not storage.listens else 30.0)
    app[CLOUD] = Cloud(
        storage=storage,
        blobs=BlobStore(blob_dir),
        feed=waiter,
        keys=BoxKeys(master_key) if master_key else BoxKeys.from_env(),
        max_record_chars=max_record_chars,
        accept_sig_v1=accept_sig_v1,
        claims=FailureWindow(
            box_api.CLAIM_FAILURES_PER_SOURCE,
            box_api.CLAIM_FAILURES_OVERALL,
            box_api.CLAIM_WINDOW_S,
        ),
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/openapi.json", openapi_doc)
    routes = Api.merge(*ROUTE_TABLES)
    routes.install(app)
    relay.install(app)  # residents' /r/ pages, relayed to their box
    console_pages.install(app)  # the city operations console (/console/), on the ops API
    console_rollout.install(app)  # update roll-outs in waves step in the background
    app[OPENAPI] = routes.openapi("Qilu cloud sync and ops API", __version__)

    if isinstance(storage, PostgresStorage):  # workers share PostgreSQL: cache, batch nonces
        app[CLOUD].box_cache = BoxCache()
        app[CLOUD].nonces = NonceBatch(storage.use_nonces, storage.prune_nonces_before, p.WINDOW_S)
        app[CLOUD].lookups = Batch(storage.boxes_get)

    async def listen(app: web.Application) -> None:
        await storage.listen_feed(waiter.notified, waiter.listening)

    app.on_startup.append(listen)
    return app


async def build(
    db: str,
    blob_dir: Path,
    *,
    read_db: str | None = None,
    retention: RetentionConfig | None = None,
    **kw: Any,
) -> web.Application:
    """``retention``: run partition upkeep and retention on a timer (serve passes it)."""
    storage = await open_storage(db, read_url=read_db)
    app = make_app(storage, blob_dir, **kw)
    if retention is not None:
        retention_timer(app, storage, retention)

    async def close(app: web.Application) -> None:
        await storage.close()

    app.on_cleanup.append(close)
    return app
