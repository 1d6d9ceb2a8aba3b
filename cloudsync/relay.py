"""Residents away from home reach their own box's pages (/r/) through the cloud.

A box sits behind the community's NAT, so the cloud cannot dial it. Instead the box dials out
and keeps one WebSocket open (``GET /api/v1/box/relay``, HMAC-signed like every box call);
the cloud sends each resident request down it as one binary frame and waits for the answer.
The box answers by calling its own HTTP API on loopback, so the pages, the resident's session
cookie and every check behave exactly as on the community Wi-Fi.

Only the resident paths in :data:`PREFIXES` are relayed, in both directions' checks, and the
box drops any ``Authorization`` header: a staff token never works through the cloud.
The resident picks their community once at ``/r/at/<community id>``, which sets the
``qilu_box`` cookie naming the box; after that the box's own links (``/r/read`` ...) work
unchanged on the cloud's host.

The frame and the path rules are common/relay.py (the box uses them too).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
import time
from collections import defaultdict, deque
from typing import Any

from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from cloudsync.body import TooLarge, read_body
from cloudsync.context import CLOUD
from cloudsync.relay_bus import SLOW_S, RelayBus
from cloudsync.routing import BOX_ROW, SIGNED_WITH, Api
from cloudsync.storage.postgres import PostgresStorage
from common.protocol import H_NONCE, H_TS, relay_subject, sign_message
from common.relay import (
    MAX_BODY,
    PATH,
    PREFIXES,
    TIMEOUT_S,
    TO_BOX,
    TO_BROWSER,
    allowed,
    foreign_write,
    pack,
    signed_part,
    unpack,
)

log = logging.getLogger(__name__)
api = Api()  # this module's route table (cloudsync/app.py includes it)

BOX_COOKIE = "qilu_box"
RATE_MAX, RATE_WINDOW_S = 300, 300.0  # relayed requests per client address per window
# A phone's answer to the door (answer, open, later, decline of an intercom call) has its own
# small budget: the door picture the phone page fetches once a second through the relay used
# to spend RATE_MAX, and the resident's 开门 was refused with 429 (probe 11).
DOOR_ACTION = re.compile(r"^/r/intercom/calls/[^/?]+/(answer|open|later|decline)$")
DOOR_ACTION_MAX = 30  # per client address per window
DOMAIN_ENV = "QILU_CLOUD_RELAY_DOMAIN"  # serve --relay-domain: one origin per box
SAME_ORIGIN_ENV = "QILU_CLOUD_RELAY_SAME_ORIGIN_UNSAFE"  # serve --relay-same-origin-unsafe
PROXIES_ENV = "QILU_CLOUD_TRUSTED_PROXIES"  # serve --trusted-proxy: whose X-Forwarded-For counts
OFFLINE = ("小区服务暂时离线", "小区盒子暂时无法连接，请稍后再试。")
CHOOSE = ("请先选择小区", "请通过物业提供的链接（/r/at/小区编号）进入。")
NO_DOMAIN = (
    "远程访问未开启",
    "this cloud serves no relayed box pages: start it with --relay-domain (one origin per box;"
    " --relay-same-origin-unsafe only for demos and tests)",
)


class Tunnel:
    """One box's open WebSocket and the resident requests waiting on it. Every frame sent
    down is signed with the box's secret (``secret``, the one that signed the socket's
    request) over ``subject`` (common/protocol.py ``relay_subject``), its id as nonce and its
    time: the box refuses frames anyone else made, or replayed (probe finding)."""

    def __init__(self, ws: web.WebSocketResponse, secret: str | None = None,
                 subject: str = "") -> None:
        self.ws = ws
        self.secret, self.subject = secret, subject
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._ids = itertools.count(1)

    async def call(self, head: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self.pending[rid] = fut
        try:
            frame = {**head, "id": rid, "ts": str(int(time.time()))}
            if self.secret:
                frame["sig"] = sign_message(self.secret, self.subject, signed_part(frame, body),
                                            ts=frame["ts"], nonce=str(rid))["sig"]
            await self.ws.send_bytes(pack(frame, body))
            async with asyncio.timeout(TIMEOUT_S):
                return await fut
        finally:
            self.pending.pop(rid, None)

    def answer(self, frame: bytes) -> None:
        head, body = unpack(frame)
        fut = self.pending.get(head["id"])
        if fut is not None and not fut.done():
            fut.set_result((head, body))

    def fail(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the box closed its relay"))


class Relays:
    """The tunnels this worker holds, by box id; with PostgreSQL, the bus reaches the tunnels
    other workers hold, on this host or another (cloudsync/relay_bus.py)."""

    def __init__(self) -> None:
        self.tunnels: dict[str, Tunnel] = {}
        self.bus: RelayBus | None = None
        # With a domain, each box's pages get their own origin, <box id>.<domain>: a page one
        # box serves cannot script another box's pages, which per-box cookie names alone
        # cannot prevent on one shared origin (a wildcard DNS name and certificate needed).
        self.domain = os.environ.get(DOMAIN_ENV, "").strip(".").lower()
        # Without a domain every box's pages would share the console's origin: a compromised
        # box could script an ops user's console session. Refused unless explicitly allowed.
        self.same_origin_unsafe = os.environ.get(SAME_ORIGIN_ENV, "") == "1"
        # Behind a reverse proxy every resident arrives from the proxy's address; only then is
        # X-Forwarded-For believed, or limits would lump all residents into one address.
        self.trusted = frozenset(filter(None, os.environ.get(PROXIES_ENV, "").split(",")))
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # requests per address

    def client(self, request: web.Request) -> str:
        """The resident's address: the right-most X-Forwarded-For hop that is not one of our
        trusted proxies (the left part a client can forge), else the TCP peer."""
        remote = request.remote or ""
        if remote not in self.trusted:
            return remote
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed(hops):
            if hop and hop not in self.trusted:
                return hop
        return remote

    def https(self, request: web.Request) -> bool:
        """Whether the resident's browser spoke HTTPS to us (or to our trusted proxy)."""
        if request.scheme == "https":
            return True
        proto = request.headers.get("X-Forwarded-Proto", "")
        return request.remote in self.trusted and proto.split(",")[0].strip() == "https"

    def box_of_host(self, host: str) -> str | None:
        """The box named by a ``<box id>.<domain>`` host, if the cloud has a relay domain."""
        if not self.domain:
            return None
        name = host.rsplit(":", 1)[0].lower()
        label, dot, rest = name.partition(".")
        return label if dot and rest == self.domain and label else None

    def too_many(self, client: str, door_action: bool = False) -> bool:
        """Anyone on the internet can reach these pages: a sliding window per address keeps
        one client from flooding a box over its small uplink. A call's door actions count
        apart (DOOR_ACTION_MAX), so watching the door never uses up the tap that opens it."""
        now = time.monotonic()
        q = self._recent[f"door:{client}" if door_action else client]
        while q and q[0] < now - RATE_WINDOW_S:
            q.popleft()
        if len(q) >= (DOOR_ACTION_MAX if door_action else RATE_MAX):
            return True
        q.append(now)
        if len(self._recent) > 10_000:  # forget idle addresses
            for k in [k for k, v in self._recent.items() if not v or v[-1] < now - RATE_WINDOW_S]:
                del self._recent[k]
        return False

    async def box_socket(self, request: web.Request, box_id: str) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_BODY + 65536)
        await ws.prepare(request)
        h = request.headers
        tunnel = Tunnel(ws, request.app[CLOUD].keys.usable(box_id, request[SIGNED_WITH]),
                        relay_subject(box_id, request.raw_path, h[H_TS], h[H_NONCE]))
        old = self.tunnels.get(box_id)
        self.tunnels[box_id] = tunnel  # a reconnecting box replaces its stale socket
        if old is not None:
            await old.ws.close()
        log.info("relay: box %s connected", box_id)
        try:
            if self.bus is not None:
                await self.bus.claim(box_id)
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    try:
                        tunnel.answer(msg.data)
                    except ValueError as e:
                        log.warning("relay: box %s sent a bad frame: %s", box_id, e)
        finally:
            if self.tunnels.get(box_id) is tunnel:
                del self.tunnels[box_id]
                if self.bus is not None:
                    await self.bus.release(box_id)
            tunnel.fail()
            log.info("relay: box %s disconnected", box_id)
        return ws

    async def call(
        self, box_id: str, head: dict[str, Any], body: bytes
    ) -> tuple[dict[str, Any], bytes] | None:
        """Answer through this worker's tunnel to the box, or another worker's; None: the box
        has no open socket anywhere."""
        tunnel = self.tunnels.get(box_id)
        if tunnel is not None:
            t0 = time.monotonic()
            try:
                return await tunnel.call(head, body)
            finally:
                if (took := time.monotonic() - t0) > SLOW_S:
                    log.warning("relay: box %s, socket here, answered in %.1f s", box_id, took)
        if self.bus is None:
            return None
        return await self.bus.call(box_id, head, body)

    async def local_call(
        self, box_id: str, head: dict[str, Any], body: bytes
    ) -> tuple[dict[str, Any], bytes]:
        """Another worker's request, through the bus, for a box whose socket is here."""
        tunnel = self.tunnels.get(box_id)
        if tunnel is None:
            raise LookupError(box_id)
        return await tunnel.call(head, body)

    async def online(self, box_ids: list[str]) -> set[str]:
        """Which of these boxes have a relay socket open on some worker."""
        here = {b for b in box_ids if b in self.tunnels}
        if self.bus is not None and len(here) < len(box_ids):
            here |= set(await self.bus.holders(box_ids))
        return here

    async def close(self) -> None:
        for t in list(self.tunnels.values()):
            with contextlib.suppress(Exception):
                await t.ws.close()
        if self.bus is not None:
            await self.bus.close()


# Every box's pages share the cloud's origin, so the browser would send one community's
# session cookie to another community's box. Cookies are kept apart per box instead: a box's
# ``Set-Cookie: qilu_rs=…`` reaches the browser as ``qilu_rs__<box id>``, and a request for
# that box carries only the cookies with its suffix, under their own names again.
def box_cookies(cookies: Any, box_id: str) -> str:
    """The ``Cookie`` header for ``box_id``: its own cookies only, suffix removed."""
    suffix = f"__{box_id}"
    return "; ".join(
        f"{k.removesuffix(suffix)}={v}" for k, v in cookies.items() if k.endswith(suffix)
    )


def browser_cookie(set_cookie: str, box_id: str, secure: bool = False) -> str:
    """A box's ``Set-Cookie`` value with the cookie's name made box-specific; ``Secure`` and
    ``SameSite=Lax`` added when missing (``Secure`` only when the browser came over HTTPS)."""
    name, sep, rest = set_cookie.partition("=")
    if not sep:
        return set_cookie
    attrs = {a.strip().split("=")[0].lower() for a in rest.split(";")[1:]}
    rest += "" if "samesite" in attrs else "; SameSite=Lax"
    rest += "; Secure" if secure and "secure" not in attrs else ""
    return f"{name.strip()}__{box_id}{sep}{rest}"


def page(status: int, title: str, text: str) -> web.Response:
    html = (
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    )
    return web.Response(status=status, text=html, content_type="text/html", charset="utf-8")


def refuse(request: web.Request, status: int, title: str, text: str) -> web.Response:
    if request.path.startswith("/api/"):
        return web.json_response({"error": text}, status=status)
    return page(status, title, text)


def _box_origin(request: web.Request, domain: str, box_id: str) -> str:
    """``scheme://<box id>.<domain>[:port]`` (the port too, as on a test or private cloud)."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
    port = request.host.rpartition(":")[2] if ":" in request.host else ""
    return f"{scheme}://{box_id}.{domain}{':' + port if port else ''}"


async def enter(request: web.Request) -> web.StreamResponse:
    """``/r/at/<community>``: remember the resident's community box, then go to its pages."""
    community = request.match_info["community"]
    relays = request.app[CLOUD].relays
    if not relays.domain and not relays.same_origin_unsafe:
        return page(404, *NO_DOMAIN)
    if relays.too_many(relays.client(request)):  # anyone may call it: same limit as the relay
        return page(429, "请求过于频繁", "请稍后再试。")
    # The community's own boxes (security probe 5: it read every box of the network per call)
    boxes = await request.app[CLOUD].storage.community_boxes(community)
    if not boxes:
        return page(404, "未找到小区", "链接中的小区不存在或尚未接入，请向物业索取新的链接。")
    online = await relays.online(boxes)
    box_id = next((b for b in boxes if b in online), boxes[0])
    nxt = request.query.get("next", "/r/read")
    if not allowed(nxt) or "://" in nxt:
        nxt = "/r/read"
    if relays.domain:  # the box's own origin
        nxt = _box_origin(request, relays.domain, box_id) + nxt
    resp = web.HTTPSeeOther(nxt)
    resp.set_cookie(
        BOX_COOKIE,
        box_id,
        max_age=400 * 86400,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=relays.https(request),
    )
    raise resp


async def forward(request: web.Request) -> web.StreamResponse:
    """Send one resident request down the chosen box's tunnel and give back its answer."""
    path = request.rel_url.raw_path_qs
    if not allowed(path):
        return refuse(request, 404, "未找到", "not a resident page")
    relays = request.app[CLOUD].relays
    box_id = relays.box_of_host(request.host)
    if box_id is None:
        # The cloud's own origin (the console's): never a box's page here, which could script
        # an ops session. With a domain, send the resident to their box's origin instead.
        cookie = request.cookies.get(BOX_COOKIE, "")
        if relays.domain:
            # Only a plain host label: the cookie must not steer the redirect elsewhere.
            if request.method == "GET" and re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", cookie):
                raise web.HTTPSeeOther(_box_origin(request, relays.domain, cookie) + path)
            return refuse(request, 404, *CHOOSE)
        if not relays.same_origin_unsafe:
            return refuse(request, 404, *NO_DOMAIN)
        box_id = cookie
    if not box_id:
        return refuse(request, 404, *CHOOSE)
    if foreign_write(request.method, request.headers, request.host) is not None:
        return refuse(request, 403, "请求被拒绝", "sent from another site's page: open this"
                      " community's own page and try again")
    client = relays.client(request)
    action = request.method == "POST" and DOOR_ACTION.match(request.rel_url.raw_path) is not None
    if relays.too_many(client, action):
        return refuse(request, 429, "请求过于频繁", "请稍后再试。")
    box = await request.app[CLOUD].storage.box_get(box_id)
    if box is None or box["revoked_at"]:  # revoked while its socket was open: close it now
        if (tunnel := relays.tunnels.get(box_id)) is not None:
            await tunnel.ws.close()
        return refuse(request, 503, *OFFLINE)
    try:
        body = await read_body(request, MAX_BODY)
    except TooLarge:
        return refuse(request, 413, "内容过大", "request body too large for the relay")
    head = {
        "method": request.method,
        "path": path,
        "headers": [[k, v] for k, v in request.headers.items() if k.lower() in TO_BOX]
        + ([["Cookie", mine]] if (mine := box_cookies(request.cookies, box_id)) else []),
        "client": client,
        "https": relays.https(request),  # the box marks its session cookie Secure then
    }
    try:
        got = await relays.call(box_id, head, body)
    except (TimeoutError, ConnectionError):
        return refuse(request, 504, "小区服务响应超时", "小区盒子没有及时回应，请稍后再试。")
    if got is None:
        return refuse(request, 503, *OFFLINE)
    answer, out = got
    headers = CIMultiDict(
        (k, browser_cookie(v, box_id, head["https"]) if str(k).lower() == "set-cookie" else v)
        for k, v in answer.get("headers", [])
        if str(k).lower() in TO_BROWSER
    )
    return web.Response(status=int(answer.get("status", 502)), body=out, headers=headers)


@api.route(
    "GET",
    PATH,
    summary="The box's relay socket (WebSocket): resident requests down, answers up",
    tag="box",
    auth="box",
    responses={101: "Switching to the WebSocket protocol"},
)
async def box_relay(request: web.Request, q: None, body: None) -> web.StreamResponse:
    return await request.app[CLOUD].relays.box_socket(request, request[BOX_ROW]["id"])


def install(app: web.Application) -> None:
    relays = Relays()
    app[CLOUD].relays = relays
    app.router.add_get("/r/at/{community}", enter)
    app.router.add_route("*", "/r/{tail:.*}", forward)
    for prefix in PREFIXES[1:]:
        app.router.add_route("*", prefix + "{tail:.*}", forward)

    async def start(app: web.Application) -> None:
        storage = app[CLOUD].storage
        if isinstance(storage, PostgresStorage):  # workers on any host share the database
            assert storage.pool is not None
            relays.bus = RelayBus(storage.pool, storage.dsn, relays.local_call)
            await relays.bus.open()

    async def close(app: web.Application) -> None:
        await relays.close()

    app.on_startup.append(start)
    app.on_shutdown.append(close)
