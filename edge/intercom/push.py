"""Web Push: a call reaches a phone whose intercom page is closed or in the background, where
the platform delivers Web Push (docs/intercom.md lists where it does not).

The box holds its own VAPID key pair (``<data_dir>/intercom-vapid.pem``, made at its first use,
mode 0600); the phone's page subscribes with the public key and the box sends each ringing
call, encrypted for that phone (aes128gcm, RFC 8291) and signed (VAPID, RFC 8292), to the
browser vendor's push service with pywebpush. The payload names the door and the flat only.
A subscription the push service says is gone (404/410) is deleted.

The endpoint is the resident's to choose, and the box POSTs to it on every ring: only https to
public addresses is accepted, checked when subscribing and again at send time on every
connection the push makes (redirects too) and on every address a name resolves to, so a name
that resolves to a LAN host later (DNS rebinding) is still refused.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from edge.core.standard import IntercomCall
from edge.intercom import store as db

if TYPE_CHECKING:
    from py_vapid import Vapid

log = logging.getLogger(__name__)


class PrivateEndpoint(aiohttp.ClientError):
    """A push endpoint that is not https to a public address."""


def public_ip(addr: str) -> bool:
    return ipaddress.ip_address(addr.split("%")[0]).is_global


def endpoint_problem(url: str) -> str | None:
    """Why this endpoint may not be pushed to (before any lookup), or None."""
    u = URL(url)
    if u.scheme != "https" or not u.host:
        return "push endpoints must be https:// URLs"
    host = u.host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".lan", ".internal")):
            return f"push endpoint host {host} is a local name"
        return None
    return None if ip.is_global else f"push endpoint address {host} is not public"


class PublicResolver(AbstractResolver):
    """Resolves like the system, keeping only public addresses (none left: refused)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        got = [r for r in await self._inner.resolve(host, port, family) if public_ip(r["host"])]
        if not got:
            raise OSError(f"push endpoint host {host} resolves to no public address")
        return got

    async def close(self) -> None:
        await self._inner.close()


async def _check_request(session: Any, ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
    # Every request of the push, redirects included: an IP literal skips the resolver.
    if (why := endpoint_problem(str(params.url))) is not None:
        raise PrivateEndpoint(why)


def public_session() -> aiohttp.ClientSession:
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_check_request)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicResolver()),
                                 trace_configs=[trace])  # fmt: skip


def load_key(path: Path) -> Vapid:
    # py_vapid/pywebpush/cryptography (~12 MB RSS) load with the first key use, not at start
    from py_vapid import Vapid

    if not path.exists():
        v = Vapid()
        v.generate_keys()
        path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            v.save_key(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    return Vapid.from_file(str(path))


class WebPush:
    name = "webpush"

    def __init__(self, store: Any, key_path: Path, subject: str,
                 allow_private: bool = False) -> None:
        self.store = store  # the AsyncStore
        self.allow_private = allow_private  # tests and labs: any http(s) endpoint
        self.key_path = key_path
        self._vapid: Vapid | None = None
        self.subject = subject
        self.sent = 0
        self.dropped = 0

    @property
    def vapid(self) -> Vapid:
        """The key pair, made (or read) at its first use: a phone page asking for the key or
        the first call to ring."""
        if self._vapid is None:
            self._vapid = load_key(self.key_path)
        return self._vapid

    @property
    def public_key(self) -> str:
        """The applicationServerKey a page subscribes with (base64url, uncompressed point)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    async def ring(self, call: IntercomCall, door_name: str) -> None:
        await self._send(call, {"call": call.id, "door": door_name, "flat": call.flat}, 60)

    async def ended(self, call: IntercomCall, door_name: str) -> None:
        """The call is over: the phone's service worker replaces the ringing notification
        (same tag) with "未接来电" or what became of it (probe 11: the ringing one stayed on
        the lock screen for hours after the visitor had gone)."""
        await self._send(call, {"call": call.id, "door": door_name, "flat": call.flat,
                                "ended": True, "state": call.state}, 24 * 3600)

    async def _send(self, call: IntercomCall, payload: dict[str, Any], ttl: int) -> None:
        subs = await self.store.run(db.flat_push, self.store.sync, call.flat)
        data = json.dumps(payload, ensure_ascii=False)
        if not subs:
            return  # no phone subscribed: nothing to sign, pywebpush stays unloaded
        from pywebpush import WebPushException, webpush_async

        async with (aiohttp.ClientSession() if self.allow_private else public_session()) as http:
            for sub in subs:
                try:
                    await webpush_async(sub, data, vapid_private_key=self.vapid,
                                        vapid_claims={"sub": self.subject}, ttl=ttl, timeout=5,
                                        headers={"Urgency": "high"}, aiohttp_session=http)
                    self.sent += 1
                except WebPushException as e:
                    if e.status_code in (404, 410):
                        self.dropped += await self.store.run(db.drop_push, self.store.sync,
                                                             sub["endpoint"])
                    else:
                        log.warning("intercom: web push to %.40s failed: %s", sub["endpoint"], e)
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    # A private address (refused above) or an unreachable host: the next phone.
                    log.warning("intercom: web push to %.40s refused or failed: %s",
                                sub["endpoint"], e)
