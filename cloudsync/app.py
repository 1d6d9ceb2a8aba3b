"""The cloud service's aiohttp application: middlewares (errors, authentication) and wiring.

A worker holds no state of its own beyond caches that may be lost: everything lives in the
storage, so several workers can serve one PostgreSQL database side by side.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from cloudsync import body as bodies
from cloudsync import protocol as p
from cloudsync.blobs import BlobStore
from cloudsync.box_keys import BoxKeys
from cloudsync.routing import Api, BadRequest
from cloudsync.storage import Storage, StorageError, open_storage
from cloudsync.storage.base import BadRecord, Replayed
from cloudsync.throttle import FailureWindow
from edge.version import __version__

log = logging.getLogger(__name__)
api = Api()  # box_api and ops_api register their routes on it
STORAGE = web.AppKey("storage", Storage)
BLOBS = web.AppKey("blobs", BlobStore)
FEED = web.AppKey("feed", "FeedWaiter")
KEYS = web.AppKey("box_keys", BoxKeys)  # box secrets: stored, or derived from a master key
MAX_RECORD = web.AppKey("max_record_chars", int)  # payload limit (serve --max-record-kb)
SIG_V1 = web.AppKey("accept_sig_v1", bool)  # serve --refuse-signature-v1 turns it off
SIG_V1_ENV = "QILU_CLOUD_REFUSE_SIG_V1"
NONCE_USED = "nonce already used (replayed request)"


def err(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FeedWaiter:
    """Wakes long-polls when a box's feed grows: at once in this worker, via PostgreSQL
    NOTIFY from other workers, or by polling (``poll_s``) when the backend cannot notify."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    def wake(self, box_id: str) -> None:
        for ev in self._events.get(box_id, ()):
            ev.set()

    async def wait(self, box_id: str, seconds: float) -> None:
        ev = asyncio.Event()
        self._events[box_id].add(ev)
        try:
            async with asyncio.timeout(min(seconds, self.poll_s)):
                await ev.wait()
        except TimeoutError:
            pass
        finally:
            self._events[box_id].discard(ev)
            if not self._events[box_id]:
                del self._events[box_id]


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
    """Sets request["ops"] (bearer token) or request["box"] (HMAC-signed) as the route needs."""
    route = request.match_info.route.resource
    key = (request.method, route.canonical if route is not None else "")
    need = request.app.get("auth_of", {}).get(key, "public")
    request["ops"] = request["box"] = None
    if need == "public":
        return await handler(request)
    storage = request.app[STORAGE]
    header = request.headers.get("Authorization", "")
    if need in ("ops", "box_or_ops") and header.startswith("Bearer "):
        user = await storage.ops_user_by_token(token_hash(header[7:].strip()))
        if user is None:
            return err(401, "invalid bearer token")
        request["ops"] = user
        return await handler(request)
    if need in ("box", "box_or_ops") and p.H_SIG in request.headers:
        problem = await _verify_box(request, storage)
        if problem is not None:
            return problem
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
    box = await storage.box_get(box_id)
    if box is None:
        return err(401, "unknown box")
    path_qs = request.raw_path
    # Version 2 signs the body as sent: checked before anything is inflated. Version 1
    # (older boxes) signed the inflated body: its digest is taken while inflating, keeping
    # nothing, under the inflation bound (cloudsync/body.py).
    if h.get(p.H_SIG_VERSION) == p.SIG_VERSION:
        enc: str | None = bodies.encoding(request)
        digest = hashlib.sha256(await bodies.read_wire(request)).hexdigest()
    elif not request.app[SIG_V1]:
        return err(401, "signature version 1 is refused here: update the box (it signs version 2)")
    else:
        enc, digest = None, await bodies.wire_digest_v1(request)
    # signed_with: the stored form (a secret, or a "gen:N" marker with a master key).
    keys = request.app[KEYS]
    secret, prev = keys.usable(box_id, box["secret"]), keys.usable(box_id, box["prev_secret"])
    if secret and p.check_signature(secret, sig, request.method, path_qs, ts, nonce, digest, enc):
        request["signed_with"] = box["secret"]
        if box["prev_secret"]:  # the box uses its new secret: the old one is retired now
            await storage.box_set_secret(box_id, box["secret"], None)
    elif prev and p.check_signature(prev, sig, request.method, path_qs, ts, nonce, digest, enc):
        request["signed_with"] = box["prev_secret"]  # rotation not confirmed by the box yet
    else:
        return err(401, "bad signature")
    if box["revoked_at"]:
        return err(403, "box revoked")
    used = (box_id, nonce, int(ts), int(now) - 2 * p.WINDOW_S)
    key = (request.method, request.match_info.route.resource.canonical)  # type: ignore[union-attr]
    if key in request.app.get("nonce_in_handler", ()):
        # The handler uses the nonce inside its own transaction (upload): one transaction
        # and one commit per request instead of two; a replay is refused there the same way.
        request["nonce"] = used
    elif not await storage.use_nonce(*used):
        return err(401, NONCE_USED)
    request["box"] = box
    return None


async def healthz(request: web.Request) -> web.Response:
    # The worker's pid shows which process answered (several share a port with --workers).
    return web.json_response({"ok": True, "version": __version__, "worker": os.getpid()})


async def openapi_doc(request: web.Request) -> web.Response:
    return web.json_response(request.app["openapi"])


def make_app(
    storage: Storage,
    blob_dir: Path,
    *,
    feed_poll_s: float = 0.5,
    max_body_mb: float = 64,
    relay_mesh: Any = None,
    max_record_chars: int = p.PAYLOAD_MAX,
    master_key: bytes | None = None,
    accept_sig_v1: bool | None = None,
) -> web.Application:
    from cloudsync import (  # noqa: F401  (they register routes on `api`)
        box_api,
        ops_api,
        portal_stats,
        relay,
    )

    max_body = int(max_body_mb * 1024 * 1024)
    app = web.Application(
        middlewares=[errors, authenticate],
        client_max_size=max_body,
        # Bodies are inflated by cloudsync/body.py, after authentication and with a limit.
        handler_args={"auto_decompress": False},
    )
    bodies.install(app, max_body)
    app[STORAGE] = storage
    app[BLOBS] = BlobStore(blob_dir)
    app[MAX_RECORD] = max_record_chars
    if accept_sig_v1 is None:  # every worker reads what serve was told
        accept_sig_v1 = os.environ.get(SIG_V1_ENV, "") != "1"
    app[SIG_V1] = accept_sig_v1
    app[box_api.CLAIMS] = FailureWindow(
        box_api.CLAIM_FAILURES_PER_SOURCE, box_api.CLAIM_FAILURES_OVERALL, box_api.CLAIM_WINDOW_S
    )
    app[KEYS] = BoxKeys(master_key) if master_key else BoxKeys.from_env()
    waiter = FeedWaiter(feed_poll_s if not storage.listens else 30.0)
    app[FEED] = waiter
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/openapi.json", openapi_doc)
    api.install(app)
    relay.install(app, relay_mesh)  # residents' /r/ pages, relayed to their box
    app["openapi"] = api.openapi("Qilu cloud sync and ops API", __version__)

    async def listen(app: web.Application) -> None:
        await storage.listen_feed(lambda box_id: waiter.wake(box_id))

    app.on_startup.append(listen)
    return app


async def build(db: str, blob_dir: Path, **kw: Any) -> web.Application:
    storage = await open_storage(db)
    app = make_app(storage, blob_dir, **kw)

    async def close(app: web.Application) -> None:
        await storage.close()

    app.on_cleanup.append(close)
    return app
