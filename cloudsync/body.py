"""The one place the cloud reads a request body: bounded on the wire and when inflated.

aiohttp's own gzip decoding is switched off (``auto_decompress``): it would inflate a body
before any handler or signature check ran, so twelve small gzip bombs cost the service half a
gigabyte. Here the wire bytes are read up to a limit (the route's, or the app's
``max_body_mb``, 64 MB; ``serve`` has no option for it), a box's signature is checked over them
(signature version 2), and only then is the body inflated, in a worker thread, a step at a time
with ``zlib``'s ``max_length``, a few requests at once (:data:`INFLATE`). Version 1 signatures
cover the inflated body: for those the digest is computed while inflating and the output thrown
away, so a forged request costs bounded CPU and no memory (:func:`inflated_sha256`).
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Iterator

from aiohttp import web

from cloudsync.routing import BadRequest

BODY_MAX = web.AppKey("body_max_bytes", int)  # create_app(max_body_mb=...), inflated or not
INFLATE = web.AppKey("inflate_slots", asyncio.Semaphore)
WIRE_BODY: web.RequestKey[bytes] = web.RequestKey("wire_body")  # read once, used twice
INFLATE_AT_ONCE = 2  # per worker: inflating is CPU work and holds the inflated body
STEP = 1 << 20  # bytes inflated per zlib call


class TooLarge(BadRequest):
    """A body over its limit, on the wire or inflated: 413."""


def encoding(request: web.Request) -> str:
    """The body's Content-Encoding: "" (none) or "gzip"; anything else is refused."""
    enc = request.headers.get("Content-Encoding", "").strip().lower()
    if enc in ("", "identity"):
        return ""
    if enc in ("gzip", "x-gzip"):
        return "gzip"
    raise BadRequest(f"Content-Encoding {enc!r} is not supported (gzip or none)", "headers")


def _limit(request: web.Request, limit: int | None) -> int:
    return min(limit or request.app[BODY_MAX], request.app[BODY_MAX])


async def read_wire(request: web.Request, limit: int | None = None) -> bytes:
    """The body as sent (cached on the request), refused past ``limit`` before it is all in."""
    cached: bytes | None = request.get(WIRE_BODY)
    if cached is not None:
        return cached
    cap = _limit(request, limit)
    n = request.content_length
    if n is not None and n > cap:
        raise TooLarge(f"body: {n} bytes, more than the {cap} allowed here", "body")
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > cap:
            raise TooLarge(f"body: more than the {cap} bytes allowed here", "body")
    request[WIRE_BODY] = data = bytes(buf)
    return data


def _inflate(data: bytes, cap: int) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
    total, tail = 0, data
    try:
        while True:
            out = d.decompress(tail, STEP)
            total += len(out)
            if total > cap:
                raise TooLarge(f"body: inflates to more than the {cap} bytes allowed here", "body")
            if out:
                yield out
            tail = d.unconsumed_tail
            if d.eof or (not tail and not out):
                break
    except zlib.error as e:
        raise BadRequest(f"body: corrupt gzip stream ({e})", "body") from e
    if not d.eof:
        raise BadRequest("body: truncated gzip stream", "body")


def inflated_sha256(data: bytes, cap: int) -> str:
    """SHA-256 of the inflated body, keeping none of it (a worker thread)."""
    h = hashlib.sha256()
    for chunk in _inflate(data, cap):
        h.update(chunk)
    return h.hexdigest()


async def wire_digest_v1(request: web.Request, limit: int | None = None) -> str:
    """What a version 1 signature covers: SHA-256 of the body after inflating it."""
    wire = await read_wire(request, limit)
    if not encoding(request):
        return hashlib.sha256(wire).hexdigest()
    async with request.app[INFLATE]:
        return await asyncio.to_thread(inflated_sha256, wire, _limit(request, limit))


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The body, inflated if gzip'd; TooLarge / BadRequest name what is wrong with it."""
    wire = await read_wire(request, limit)
    if not encoding(request):
        return wire
    cap = _limit(request, limit)
    async with request.app[INFLATE]:
        return await asyncio.to_thread(lambda: b"".join(_inflate(wire, cap)))


def install(app: web.Application, max_bytes: int) -> None:
    app[BODY_MAX] = max_bytes
    app[INFLATE] = asyncio.Semaphore(INFLATE_AT_ONCE)
