"""HTTP client of the cloud sync API: signs every request, corrects for clock skew."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from yarl import URL

from common import protocol as p
from common.version import __version__
from edge.sync.identity import Identity
from edge.sync.store import OutboxRow

GZIP_LEVEL = 3  # most of the gain for a fraction of level 9's CPU on a small ARM box


class CloudError(Exception):
    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(f"cloud answered {status}: {message}")
        self.status = status
        self.body = body if isinstance(body, dict) else {}  # the JSON error, when there is one


def refused_record(e: BaseException, n_rows: int) -> int | None:
    """Index of the one batch record a 400 answer names (``field`` = body.records.N...), or
    None when the cloud refused the request as a whole (that is retried with back-off)."""
    if not isinstance(e, CloudError) or e.status != 400:
        return None
    m = re.match(r"body\.records\.(\d+)(\.|$)", str(e.body.get("field") or ""))
    if m is None or int(m[1]) >= n_rows:
        return None
    return int(m[1])


class Revoked(CloudError):
    """The cloud refuses this box (revoked): retrying will not help."""


class UnsignedReply(CloudError):
    """An answer that should carry the cloud's signature (the feed: commands) has none or a
    wrong one: someone on the path, or a cloud older than the box. Nothing in it is used."""


def cloud_ssl(config: Any) -> ssl.SSLContext | bool:
    """:func:`ssl_context` for the box's config. A relative ``[sync] ca_file`` is in the config
    file's folder, like every relative path in it, not in whatever folder a command or the
    daemon (systemd: /) runs in."""
    sync = config.sync
    ca = sync.ca_file
    if ca and not Path(ca).is_absolute() and config.source is not None:
        ca = str(config.source.parent / ca)
    return ssl_context(sync.tls_verify, ca)


def ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not verify:
        return False
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(ca_file)
    return ctx


class CloudClient:
    def __init__(
        self, ident: Identity, *, timeout_s: float = 30.0, ssl_ctx: ssl.SSLContext | bool = True
    ) -> None:
        self.ident = ident
        self.base = URL(ident.cloud)
        self.offset_s = 0.0  # cloud clock minus ours, learnt from a 401 answer
        self.timeout_s = timeout_s
        self._ssl = ssl_ctx
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4),
                headers={"User-Agent": f"qilu-edge/{__version__}"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def auth_headers(
        self, method: str, url: str | URL, body: bytes = b"", encoding: str = ""
    ) -> dict[str, str]:
        """Signature headers for one request to the cloud (e.g. a blob download); ``body``
        exactly as sent, ``encoding`` its Content-Encoding (signature version 2)."""
        return p.sign(
            self.ident.secret,
            self.ident.box_id,
            method,
            URL(url).raw_path_qs,
            body,
            offset_s=self.offset_s,
            encoding=encoding,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        compress: bool = False,
        compressed: bytes | None = None,
        timeout_s: float | None = None,
        signed_reply: bool = False,
    ) -> Any:
        """``signed_reply``: the answer must be signed by the cloud for this request
        (``X-Qilu-Reply-Signature``, common/protocol.py ``reply_subject``), else UnsignedReply."""
        url = self.base.with_path(path)
        if params:
            url = url.with_query({k: str(v) for k, v in params.items()})
        raw = (
            b""
            if body is None
            else (
                body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
            )
        )
        data = raw
        headers = {"Content-Type": "application/json"}
        if compressed is not None:  # gzip of raw, made by the caller (off the event loop)
            data = compressed
            headers["Content-Encoding"] = "gzip"
        elif compress and raw:
            data = await asyncio.to_thread(gzip.compress, raw, GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        session = await self.session()
        for attempt in range(2):
            enc = headers.get("Content-Encoding", "")
            secret = self.ident.secret
            auth = self.auth_headers(method, url, data, enc)
            signed = {**headers, **auth}
            async with session.request(
                method, url, data=data or None, headers=signed, timeout=timeout
            ) as r:
                if r.status == 401 and p.H_SERVER_TIME in r.headers and attempt == 0:
                    # Our clock is off: sign with the cloud's time from now on (and log it).
                    self.offset_s = float(r.headers[p.H_SERVER_TIME]) - time.time()
                    continue
                text = await r.text()
                if r.status == 403 and "revoked" in text:
                    raise Revoked(r.status, text)
                if r.status >= 400:
                    try:
                        body = json.loads(text)
                    except ValueError:
                        body = None
                    raise CloudError(r.status, text[:300], body)
                if signed_reply:
                    self._check_reply(secret, auth, url, await r.read(), r.headers)
                try:
                    return json.loads(text)
                except ValueError:  # a proxy's or captive portal's page: retry like a 5xx
                    raise CloudError(r.status, f"answer is not JSON: {text[:100]!r}") from None
        raise CloudError(401, "clock skew could not be corrected")

    def _check_reply(
        self, secret: str, auth: dict[str, str], url: URL, body: bytes, headers: Any
    ) -> None:
        sig = headers.get(p.H_REPLY_SIG)
        if not sig:
            raise UnsignedReply(200, f"{url.path}: the cloud's answer is not signed"
                                " (a cloud older than this box, or someone on the path)")
        ts, nonce = auth[p.H_TS], auth[p.H_NONCE]
        subject = p.reply_subject(self.ident.box_id, url.raw_path_qs, ts, nonce)
        if not p.check_message(secret, subject, body, ts, nonce, sig):
            raise UnsignedReply(200, f"{url.path}: the cloud's answer has a wrong signature")

    async def upload(self, rows: list[OutboxRow], floor: int) -> p.UploadResult:
        raw, gz = await asyncio.to_thread(encode_batch, rows, floor)
        return await self.send_batch(raw, gz)

    async def send_batch(self, raw: bytes, gz: bytes) -> p.UploadResult:
        answer = await self.request("POST", "/api/v1/box/upload", body=raw, compressed=gz)
        try:
            return p.UploadResult.model_validate(answer)
        except ValueError as e:  # not the cloud's answer: nothing is acked, the batch is resent
            raise CloudError(200, f"answer is not an upload result: {str(answer)[:100]}") from e

    async def feed(self, after: int, wait_s: float) -> dict[str, Any]:
        return await self.request(
            "GET",
            "/api/v1/box/feed",
            params={"after": after, "wait": wait_s},
            timeout_s=wait_s + self.timeout_s,
            signed_reply=True,  # commands: only as the cloud sent them for this request
        )

    async def heartbeat(self, hb: p.Heartbeat) -> None:
        await self.request("POST", "/api/v1/box/heartbeat", body=hb.model_dump())

    async def rotate(self) -> str:
        return (await self.request("POST", "/api/v1/box/rotate"))["secret"]


def encode_batch(rows: list[OutboxRow], floor: int) -> tuple[bytes, bytes]:
    """(JSON, gzip of it) of a batch; CPU work for a worker thread. The stored payload text
    goes in as a JSON string, never parsed and re-serialised. orjson writes the same bytes
    as ``json.dumps(..., ensure_ascii=False)`` about 3x faster (bench/sync.py drain)."""
    raw = orjson.dumps(
        {
            "floor": floor,
            "records": [
                {
                    "seq": r.seq,
                    "priority": r.priority,
                    "kind": r.kind,
                    "record_id": r.record_id,
                    "ts": r.ts,
                    "payload": r.payload,
                }
                for r in rows
            ],
        }
    )
    return raw, gzip.compress(raw, GZIP_LEVEL)


async def provision(
    cloud: str,
    claim: str,
    name: str,
    *,
    ssl_ctx: ssl.SSLContext | bool = True,
    timeout_s: float = 30.0,
) -> Identity:
    """Exchange a claim code for an identity (unauthenticated: the code is the credential)."""
    body = p.ProvisionRequest(claim_code=claim, name=name, software_version=__version__)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx)) as s:
        async with s.post(
            URL(cloud).with_path("/api/v1/provision"),
            json=body.model_dump(),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as r:
            text = await r.text()
            if r.status != 200:
                raise CloudError(r.status, text[:300])
    data = json.loads(text)
    return Identity(
        cloud=cloud.rstrip("/"),
        box_id=data["box_id"],
        secret=data["secret"],
        community_id=data["community_id"],
        area_path=data["area_path"],
    )
