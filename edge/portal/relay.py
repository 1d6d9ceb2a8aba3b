"""The box's end of the cloud relay: residents away from home use the /r/ pages via the cloud.

Once the box is provisioned it dials the cloud's relay socket (cloudsync/relay.py) and keeps
it open, reconnecting with back-off. Every resident request the cloud sends down is replayed
against this box's own HTTP API on loopback (same pages, same session cookie, same checks),
with two changes: any ``Authorization`` header is dropped, so only resident sessions work
through the cloud, and the resident's address travels in ``X-Qilu-Relay-Client`` (trusted
only with this process's random ``X-Qilu-Relay`` key) so login rate limits stay per person.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from common import protocol as p
from common import relay as proto
from edge.core.box import Box
from edge.core.http import API, CLIENT_HEADER, HTTPS_HEADER, KEY_HEADER, RELAY_KEY
from edge.core.service import Service, cancel
from edge.sync import SYNC

log = logging.getLogger(__name__)
CONCURRENCY = 8  # requests replayed at once; a small box serves a few phones at a time


class PortalRelay(Service):
    name = "portal_relay"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.portal
        self.key = secrets.token_urlsafe(24)
        box.http[RELAY_KEY] = self.key
        self.connected = False
        self.served = 0
        self.refused = 0  # frames without the cloud's valid signature, stale or replayed
        self.last_error = ""
        self._task: asyncio.Task | None = None
        self._gate = asyncio.Semaphore(CONCURRENCY)
        self._local: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.cfg.enabled and self.cfg.relay:
            self._task = asyncio.create_task(self._loop(), name="portal-relay")

    async def stop(self) -> None:
        await cancel(self._task)
        if self._local is not None:
            await self._local.close()

    def _client(self) -> Any:
        """The sync service's cloud client (None until the box is provisioned)."""
        return getattr(self.box.get(SYNC), "client", None)

    def away_url(self) -> str | None:
        """Where residents reach this box's pages from anywhere (None: not provisioned)."""
        client = self._client()
        return proto.away_url(client.ident.cloud, client.ident.community_id) if client else None

    def live_away_url(self) -> str | None:
        """The away URL while the relay is connected (links that must work right now)."""
        return self.away_url() if self.connected else None

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled and self.cfg.relay,
            "connected": self.connected,
            "served": self.served,
            "refused": self.refused,
            "away_url": self.away_url(),
            "last_error": self.last_error,
        }

    async def _loop(self) -> None:
        sync_cfg = self.box.config.sync
        delay = sync_cfg.backoff_min_s
        while True:
            client = self._client()
            if client is None:  # not provisioned yet (or sync disabled): look again soon
                await asyncio.sleep(2.0)
                continue
            try:
                await self._serve(client)
                delay = sync_cfg.backoff_min_s  # it was up: a dropped link retries quickly
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("portal relay: %s; retrying", self.last_error)
            finally:
                self.connected = False
            await asyncio.sleep(random.uniform(0, delay))  # full jitter, like the sync client
            # capped like the feed: while the socket is away residents' pages fail
            delay = min(delay * 2, sync_cfg.feed_backoff_max_s, sync_cfg.backoff_max_s)

    async def _serve(self, client: Any) -> None:
        url = client.base.with_path(proto.PATH)
        session = await client.session()
        auth = client.auth_headers("GET", url)
        # the cloud signs every frame with our secret, bound to this request (relay_subject)
        check = FrameCheck(client.ident.secret, p.relay_subject(
            client.ident.box_id, url.raw_path_qs, auth[p.H_TS], auth[p.H_NONCE]), client)
        async with session.ws_connect(
            url,
            headers=auth,
            heartbeat=30.0,
            max_msg_size=proto.MAX_BODY + 65536,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
        ) as ws:
            self.connected, self.last_error = True, ""
            log.info("portal relay: connected to %s", url)
            tasks: set[asyncio.Task] = set()
            try:
                async for msg in ws:
                    if msg.type != WSMsgType.BINARY:
                        continue
                    t = asyncio.create_task(self._answer(ws, msg.data, check))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
            finally:
                for t in tasks:
                    t.cancel()

    async def _answer(self, ws: aiohttp.ClientWebSocketResponse, frame: bytes,
                      check: FrameCheck) -> None:
        try:
            head, body = proto.unpack(frame)
        except ValueError as e:
            log.warning("portal relay: bad frame from the cloud: %s", e)
            return
        if why := check.refuse(head, body):
            # nothing is replayed; the resident (if the cloud sent it) reads why
            self.refused += 1
            log.error("portal relay: refused a frame: %s", why)
            await self.box.get(SYNC).unsigned_alert(
                f"refused a resident request on the cloud relay: {why}. Nothing was done.")
            with contextlib.suppress(ConnectionError, RuntimeError):
                status, headers, out = _error(502, f"relay: the box refused the frame ({why})")
                await ws.send_bytes(
                    proto.pack({"id": head["id"], "status": status, "headers": headers}, out))
            return
        async with self._gate:
            status, headers, out = await self._replay(head, body)
        self.served += 1
        with contextlib.suppress(ConnectionError, RuntimeError):  # socket gone: cloud times out
            await ws.send_bytes(
                proto.pack({"id": head["id"], "status": status, "headers": headers}, out)
            )

    async def _replay(
        self, head: dict[str, Any], body: bytes
    ) -> tuple[int, list[list[str]], bytes]:
        path = str(head.get("path", ""))
        if not proto.allowed(path):  # checked by the cloud too; the box does not trust it
            return _error(404, "not relayed")
        allowed = proto.TO_BOX | {"cookie"}  # the cloud passes this box's own cookies only
        headers = {k: v for k, v in head.get("headers", []) if str(k).lower() in allowed}
        headers[KEY_HEADER] = self.key
        headers[CLIENT_HEADER] = str(head.get("client", ""))[:64]
        headers[HTTPS_HEADER] = "1" if head.get("https") is True else "0"
        api = self.box.config.api
        host = "127.0.0.1" if api.host in ("0.0.0.0", "", "::") else api.host
        port = getattr(self.box.get(API), "port", None) or api.port  # the bound port
        if self._local is None or self._local.closed:
            self._local = aiohttp.ClientSession()
        try:
            async with self._local.request(
                str(head.get("method", "GET")),
                f"http://{host}:{port}{path}",
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=proto.TIMEOUT_S - 2),
            ) as r:
                out = await r.content.read(proto.MAX_BODY + 1)
                if len(out) > proto.MAX_BODY:
                    return _error(502, "answer too large for the relay; use the community Wi-Fi")
                back = [[k, v] for k, v in r.headers.items() if k.lower() in proto.TO_BROWSER]
                return r.status, back, out
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.warning("portal relay: the box's own API did not answer %s: %s", path, e)
            return _error(502, "box API unavailable")


class FrameCheck:
    """The frames of one relay socket: signed by the cloud with the box's secret over the
    socket's subject (common/protocol.py ``relay_subject``, the feed's ``sign_message``),
    each id used once, each ``ts`` within the signature window of the cloud's clock."""

    KEEP = 4096  # ids remembered (the cloud numbers frames 1, 2, ...; older ones refused)

    def __init__(self, secret: str, subject: str, client: Any) -> None:
        self.secret, self.subject, self.client = secret, subject, client
        self.seen: set[int] = set()
        self.floor = 0  # ids at or below were seen or are too old to tell

    def refuse(self, head: dict[str, Any], body: bytes) -> str | None:
        """None for a frame to serve; else why it is refused."""
        sig, ts, fid = head.get("sig"), head.get("ts"), head["id"]
        if not isinstance(sig, str) or not isinstance(ts, str) or not ts.isdigit():
            return "not signed by the cloud (a cloud older than this box, or someone on the path)"
        if not p.check_message(self.secret, self.subject, proto.signed_part(head, body), ts,
                               str(fid), sig):
            return "wrong signature"
        if abs(int(ts) - (time.time() + getattr(self.client, "offset_s", 0.0))) > p.WINDOW_S:
            return f"stale (sent at {ts})"
        if fid <= self.floor or fid in self.seen:
            return f"replayed (frame {fid})"
        self.seen.add(fid)
        if len(self.seen) > self.KEEP:
            self.floor = sorted(self.seen)[-self.KEEP // 2]
            self.seen = {i for i in self.seen if i > self.floor}
        return None


def _error(status: int, message: str) -> tuple[int, list[list[str]], bytes]:
    """A JSON error answer in the relay's (status, headers, body) form."""
    return status, [["Content-Type", "application/json"]], json.dumps({"error": message}).encode()
