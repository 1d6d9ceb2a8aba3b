"""Web Push: a phone's subscription gets each call to its flat, encrypted for it (aes128gcm,
RFC 8291) and signed with the box's VAPID key (RFC 8292). The push service here is a local one
that checks the signature and decrypts with the subscription's own keys, as a browser vendor's
push service and the phone would; a subscription the service says is gone is deleted."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import http_ece
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import api_url
from tests.edge.intercom.helpers import as_resident, camera_frames, intercom_toml, seed, tokens
from tests.edge.portal.helpers import STAFF
from tests.peers.http import serve


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


class Phone:
    """A browser's push subscription keys (what PushManager.subscribe makes)."""

    def __init__(self, endpoint: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = b"0123456789abcdef"
        self.endpoint = endpoint
        pub = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
        self.json = {"endpoint": endpoint, "expirationTime": None,
                     "keys": {"p256dh": b64e(pub), "auth": b64e(self.auth)}}


class PushService:
    def __init__(self) -> None:
        self.phones: dict[str, Phone] = {}
        self.got: list[tuple[str, dict, str]] = []  # (phone id, message, VAPID key)
        self.bad: list[str] = []
        self.url = ""

    def verify(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        assert auth.startswith("vapid "), auth
        parts = dict(p.strip().split("=", 1) for p in auth[6:].split(","))
        head, claims, sig = parts["t"].split(".")
        k = parts["k"]
        pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(k))
        raw = b64d(sig)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        pub.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        c = json.loads(b64d(claims))
        assert c["aud"] == self.url and c["exp"] > time.time() and c["sub"].startswith("mailto:")
        return k

    async def push(self, request: web.Request) -> web.Response:
        pid = request.match_info["pid"]
        try:
            k = self.verify(request)
            assert request.headers["Content-Encoding"] == "aes128gcm"
            phone = self.phones[pid]
            plain = http_ece.decrypt(await request.read(), private_key=phone.key,
                                     auth_secret=phone.auth, version="aes128gcm")
            self.got.append((pid, json.loads(plain), k))
        except Exception as e:  # recorded, and the test fails on it
            self.bad.append(f"{pid}: {e!r}")
            return web.Response(status=400)
        return web.Response(status=201)

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=410, text="subscription expired")

    def phone(self, pid: str, gone: bool = False) -> Phone:
        p = Phone(f"{self.url}/{'gone' if gone else 'push'}/{pid}")
        self.phones[pid] = p
        return p

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{pid}", self.push)
        app.router.add_post("/gone/{pid}", self.gone)
        return app


@pytest.fixture
async def pushsvc() -> AsyncIterator[PushService]:
    p = PushService()
    async with serve(p.app()) as p.url:
        yield p


async def subscribe(s: aiohttp.ClientSession, base: str, token: str, phone: Phone) -> Any:
    async with s.post(f"{base}/r/intercom/push", json=phone.json,
                      headers=as_resident(token)) as r:
        return r.status, await r.json()


async def test_a_call_is_pushed_to_the_flats_phones_only(
    make_config, run_box, board, tmp_path, pushsvc: PushService
) -> None:
    # The push service here is on loopback, which a real box refuses (next test).
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "c"),
                                             extra="push_allow_private = true"))
    seed(config)
    box = await run_box(config)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, base)
        async with s.get(f"{base}/r/intercom/push", headers=as_resident(tok["r-a"])) as r:
            box_key = (await r.json())["key"]
        assert len(b64d(box_key)) == 65  # an uncompressed P-256 point
        for rid, pid, gone in (("r-a", "a", False), ("r-b", "b", True), ("r-n", "n", False)):
            st, _ = await subscribe(s, base, tok[rid], pushsvc.phone(pid, gone))
            assert st == 201
        st, body = await subscribe(s, base, tok["r-a"], Phone("file:///etc/passwd"))
        assert st == 400 and body["field"] == "endpoint"
        async with s.post(f"{base}/r/intercom/push", json=pushsvc.phones["a"].json) as r:
            assert r.status == 401  # no session, no subscription
        async with s.post(f"{base}/api/v1/intercom/calls", headers=STAFF,
                          json={"door_id": "d-gate", "flat": "1-1-101"}) as r:
            call = await r.json()
    for _ in range(100):
        if pushsvc.got and box.service("intercom").push.dropped:
            break
        await asyncio.sleep(0.05)
    assert pushsvc.bad == []
    assert [(pid, m) for pid, m, _k in pushsvc.got] == [
        ("a", {"call": call["id"], "door": "1号楼大门", "flat": "1-1-101"})
    ]
    assert pushsvc.got[0][2] == box_key  # signed with the key the page subscribed with
    # the expired subscription (410) is gone; the neighbour's stays and got nothing
    db = box.store.sync
    left = db.db.execute("SELECT resident_id FROM intercom_push ORDER BY 1").fetchall()
    assert left == [("r-a",), ("r-n",)]


async def test_push_goes_only_to_https_on_public_addresses(
    make_config, run_box, board, tmp_path, pushsvc: PushService
) -> None:
    """Probe finding: a resident could name any http(s) URL, and the box POSTed to that LAN
    host on every ring. Now https to public addresses only: refused when subscribing, and at
    send time for what is already stored (or a name that resolves to a LAN address later)."""
    import socket

    from edge.intercom.push import PrivateEndpoint, public_session

    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "c")))
    seed(config)
    box = await run_box(config)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, base)
        for url in (pushsvc.phone("a").endpoint, "https://127.0.0.1/p", "https://10.1.2.3/p",
                    "https://192.168.1.1/p", "https://[::1]/p", "https://169.254.169.254/p",
                    "https://localhost/p", "https://nas.local/p"):
            st, body = await subscribe(s, base, tok["r-a"], Phone(url))
            assert st == 400 and body["field"] == "endpoint", (url, body)
        # Stored before the upgrade (or by an older box): refused at send time.
        db = box.store.sync
        db.db.execute("INSERT INTO intercom_push (endpoint, resident_id, p256dh, auth,"
                      " created_at) VALUES (?, 'r-a', ?, ?, '2026-11-30T00:00:00+00:00')",
                      (pushsvc.phones["a"].endpoint, *pushsvc.phones["a"].json["keys"].values()))
        async with s.post(f"{base}/api/v1/intercom/calls", headers=STAFF,
                          json={"door_id": "d-gate", "flat": "1-1-101"}) as r:
            assert r.status in (200, 201)
    await asyncio.sleep(1.0)  # the ring's push would arrive well within this
    assert pushsvc.got == [] and pushsvc.bad == []
    assert box.service("intercom").push.sent == 0
    # A public-looking name that resolves to a private address (rebinding): the resolver
    # refuses it on connect. This machine's own name resolves to a LAN or loopback address.
    me = socket.gethostname()
    async with public_session() as http:
        for url in (f"https://{me}:{pushsvc.url.rsplit(':', 1)[1]}/push/a",
                    "https://127.0.0.1:1/push/a", f"{pushsvc.url}/push/a"):
            with pytest.raises((PrivateEndpoint, aiohttp.ClientConnectorError)) as e:
                await http.post(url, data=b"x", timeout=aiohttp.ClientTimeout(total=5))
            why = repr(e.value)  # the resolver's refusal is inside aiohttp's DNS error
            assert "no public address" in why or "https" in why or "not public" in why, why


async def test_a_call_that_ends_replaces_the_ringing_notification(
    make_config, run_box, board, tmp_path, pushsvc: PushService
) -> None:
    """Probe 11: the push said "门口来电 … 有访客呼叫" (a notification that stays until
    tapped) and nothing followed it: hours after the visitor had gone, an elderly resident
    found it on the lock screen and hurried to the door. The end of the call is pushed too
    (same notification tag): "未接来电" when nobody answered, so the ringing one is replaced."""
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "c"),
                                             extra="push_allow_private = true"))  # ring_s = 4
    seed(config)
    box = await run_box(config)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, base)
        st, _ = await subscribe(s, base, tok["r-a"], pushsvc.phone("a"))
        assert st == 201
        async with s.post(f"{base}/api/v1/intercom/calls", headers=STAFF,
                          json={"door_id": "d-gate", "flat": "1-1-101"}) as r:
            call = await r.json()
    for _ in range(200):  # rings for 4 s, then missed
        if len(pushsvc.got) >= 2:
            break
        await asyncio.sleep(0.05)
    assert pushsvc.bad == []
    msgs = [m for _pid, m, _k in pushsvc.got]
    assert len(msgs) == 2 and msgs[0]["call"] == msgs[1]["call"] == call["id"], msgs
    assert msgs[1]["ended"] is True and msgs[1]["state"] == "missed", msgs[1]
    # the service worker shows it under the ringing one's tag, in words a resident reads
    from edge.intercom.routes import STATIC

    sw = (STATIC / "sw.js").read_text(encoding="utf-8")
    assert "未接来电" in sw and "d.ended" in sw
