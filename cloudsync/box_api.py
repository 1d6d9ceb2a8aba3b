"""Routes the boxes call: provisioning, upload, download feed, heartbeat, rotation, blobs."""

from __future__ import annotations

import asyncio
import hashlib
import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from cloudsync.context import CLOUD, err
from cloudsync.routing import BOX_ROW, NONCE, OPS_USER, SIGNED_WITH, Api, ok
from cloudsync.storage.base import BadRecord, utcnow
from cloudsync.storage.feed import FeedWake
from common import protocol as p

api = Api()  # this module's route table (cloudsync/app.py includes it)
# Wrong claim codes: per source address and over everyone, in a sliding window.
CLAIM_FAILURES_PER_SOURCE, CLAIM_FAILURES_OVERALL, CLAIM_WINDOW_S = 10, 100, 600.0
BLOB_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
}


class ProvisionResult(BaseModel):
    box_id: str
    secret: str
    community_id: str
    area_path: str


@api.route(
    "POST",
    "/api/v1/provision",
    summary="Exchange a one-time claim code for a box identity and secret",
    tag="box",
    auth="public",
    body=p.ProvisionRequest,
    response=ProvisionResult,
    responses={409: "Claim code unknown, used or expired", 429: "Too many claim attempts"},
    max_body=16 * 1024,  # a claim code and a name: refused past this, inflated or not
)
async def provision(request: web.Request, q: None, body: p.ProvisionRequest) -> web.Response:
    storage = request.app[CLOUD].storage
    source = request.app[CLOUD].relays.client(request)  # behind a trusted proxy: X-Forwarded-For
    claims = request.app[CLOUD].claims
    wait = claims.retry_after(source)
    if wait > 0:
        return web.json_response(
            {"error": f"too many wrong claim codes; retry in {math.ceil(wait)} s"},
            status=429,
            headers={"Retry-After": str(math.ceil(wait))},
        )
    box_id = f"box-{secrets.token_hex(6)}"
    stored, secret = request.app[CLOUD].keys.new(box_id)
    code_hash = hashlib.sha256(body.claim_code.strip().encode()).hexdigest()
    try:
        area = await storage.claim_use(code_hash, box_id, stored, body.name, body.software_version)
    except ValueError as e:
        claims.failed(source)
        return err(409, str(e))
    return ok(
        {"box_id": box_id, "secret": secret, "community_id": area["id"], "area_path": area["path"]}
    )


@api.route(
    "POST",
    "/api/v1/box/upload",
    summary="Upload an outbox batch (gzip JSON); stored once per (box, seq) in one transaction",
    tag="box",
    auth="box",
    body=p.UploadBatch,
    response=p.UploadResult,
    nonce_in_handler=True,
)
async def upload(request: web.Request, q: None, body: p.UploadBatch) -> web.Response:
    box = request[BOX_ROW]
    limit = request.app[CLOUD].max_record_chars
    if limit < p.PAYLOAD_MAX:  # this cloud takes smaller records than the protocol allows
        for i, r in enumerate(body.records):
            if len(r["payload"]) > limit:
                raise BadRecord(
                    i, r["seq"], "payload", f"longer than this cloud's {limit} characters"
                )
    stored, dupes, acked = await request.app[CLOUD].storage.upload(
        box["id"],
        body.floor,
        body.records,
        request.get(NONCE),  # None: used at authentication
    )
    return ok({"stored": stored, "duplicates": dupes, "acked_through": acked})


class FeedQuery(BaseModel):
    after: int = Field(0, ge=0, le=p.SEQ_MAX, description="Last feed id the box applied")
    wait: float = Field(0, ge=0, le=60, description="Long-poll up to this many seconds")
    limit: int = Field(100, ge=1, le=1000)


class FeedResult(BaseModel):
    items: list[p.FeedItem]
    cursor: int


@api.route(
    "GET",
    "/api/v1/box/feed",
    summary="The box's download feed after a cursor (long-poll with wait)",
    tag="box",
    auth="box",
    query=FeedQuery,
    response=FeedResult,
)
async def feed(request: web.Request, q: FeedQuery, body: None) -> web.Response:
    storage, waiter = request.app[CLOUD].storage, request.app[CLOUD].feed
    box_id = request[BOX_ROW]["id"]
    deadline = time.monotonic() + q.wait
    rows: list[dict[str, Any]] = []
    with waiter.watch(box_id, q.after) as w:
        while not w.items:
            if w.stale or not waiter.nothing_after(box_id, q.after):
                w.stale = False
                epoch = waiter.epoch
                rows = await storage.feed_after(box_id, q.after, q.limit)
                if rows:
                    break
                waiter.learn(box_id, q.after, epoch, w)
            left = deadline - time.monotonic()
            if w.items or left <= 0:
                break
            await waiter.wait(w, left)
        if not rows and w.items:  # the notification brought them: no query, no re-encoding
            return signed_reply(request, _carried(w.items[: q.limit], utcnow()))
    now = utcnow()
    items = [{**r, "expired": bool(r["expires_at"] and r["expires_at"] < now)} for r in rows]
    cursor = rows[-1]["id"] if rows else q.after
    return signed_reply(request, ok({"items": items, "cursor": cursor}))


def signed_reply(request: web.Request, resp: web.Response) -> web.Response:
    """The answer signed for the box that asked (common/protocol.py ``reply_subject``): with
    the secret its request was signed with, over the box id, the request's path, timestamp
    and one-time nonce and the body, so the box acts only on commands this cloud sent it for
    this request (nobody on the path can inject or replay one)."""
    box_id = request[BOX_ROW]["id"]
    secret = request.app[CLOUD].keys.usable(box_id, request[SIGNED_WITH])
    h = request.headers
    subject = p.reply_subject(box_id, request.raw_path, h[p.H_TS], h[p.H_NONCE])
    assert isinstance(resp.body, bytes)
    sig = p.sign_message(secret, subject, resp.body, ts=h[p.H_TS], nonce=h[p.H_NONCE])
    resp.headers[p.H_REPLY_SIG] = sig["sig"]
    return resp


def _carried(items: list[FeedWake], now: str) -> web.Response:
    """The feed answer for items a notification carried: each item's JSON was made once for
    all the boxes it went to; only its id and expired flag are added per box."""
    parts = [
        b'{"id":%d,"expired":%s,%s}'
        % (fid, b"true" if it.expires_at and it.expires_at < now else b"false", it.members)
        for fid, it in items
    ]
    body = b'{"items":[' + b",".join(parts) + b'],"cursor":%d}' % items[-1][0]
    return web.Response(body=body, content_type="application/json", charset="utf-8")


@api.route(
    "POST",
    "/api/v1/box/heartbeat",
    summary="Report software version, device health, outbox backlog and feed cursor",
    tag="box",
    auth="box",
    body=p.Heartbeat,
)
async def heartbeat(request: web.Request, q: None, body: p.Heartbeat) -> web.Response:
    await request.app[CLOUD].storage.box_heartbeat(
        request[BOX_ROW]["id"],
        body.software_version,
        body.devices,
        body.outbox_rows,
        body.outbox_bytes,
        body.feed_cursor,
    )
    return ok({"ok": True, "server_time": datetime.now(UTC).isoformat()})


class RotateResult(BaseModel):
    secret: str


@api.route(
    "POST",
    "/api/v1/box/rotate",
    summary="Rotate the box secret; the old one stays "
    "valid until the box first signs with the new one",
    tag="box",
    auth="box",
    response=RotateResult,
)
async def rotate(request: web.Request, q: None, body: None) -> web.Response:
    box = request[BOX_ROW]
    stored, secret = request.app[CLOUD].keys.new(box["id"], box["secret"])
    # Keep the secret the box signed with as previous: if this answer is lost, the box
    # still gets in with what it has, and may simply rotate again.
    await request.app[CLOUD].storage.box_set_secret(box["id"], stored, request[SIGNED_WITH])
    return ok({"secret": secret})


@api.route(
    "GET",
    "/api/v1/blobs/{sha256}",
    summary="A content file by SHA-256 (HTTP Range supported)",
    tag="box",
    auth="box_or_ops",
    responses={404: "No such blob", 206: "Partial content"},
)
async def blob(request: web.Request, q: None, body: None) -> web.StreamResponse:
    return await serve_blob(request)


async def serve_blob(request: web.Request) -> web.StreamResponse:
    sha = request.match_info["sha256"]
    blobs = request.app[CLOUD].blobs
    try:
        path = blobs.path(sha)
    except ValueError as e:
        return err(400, str(e))
    # An ops user gets only files of its area's library (issue 13 #7); a box any file it
    # names (the SHA-256 reached it in a publish from its own area).
    ops = request.get(OPS_USER)
    meta: dict[str, Any] | None = await request.app[CLOUD].storage.content_get(
        sha, ops["scope"] if ops else "/"
    )
    if meta is None or not await asyncio.to_thread(path.exists):
        return err(404, f"no blob {sha}")
    # FileResponse answers Range / If-Range with 206 and sends the file with sendfile.
    return web.FileResponse(
        path,
        headers={
            "Content-Type": meta["mime"],
            # private: the answer depends on who asks (an ops user's area, a signed box), so a
            # shared cache in front of the cloud must not hand it to anyone else
            "Cache-Control": "private, max-age=31536000, immutable",
            # The type is the uploader's word and this is the console's origin: opened in a
            # tab, an HTML or SVG upload must not run as a console page (it would act with
            # the viewer's session). Sandboxed it has no origin and no script; <img> and
            # <video> still show it, fetch() still reads it.
            **BLOB_HEADERS,
        },
    )
