"""The box ⇄ cloud wire protocol, shared by the service and the box's sync client.

Box requests are signed with HMAC-SHA256 over method, path+query, timestamp, nonce and the
SHA-256 of the body. Version 2 (header ``X-Qilu-Sig-Version: 2``) hashes the body as sent on
the wire (gzip'd, when it is) and signs the Content-Encoding too, so the cloud checks a
signature before it inflates anything; version 1 (boxes before 2026-11) hashed the inflated
body, and the cloud still accepts it, inflating under a size limit and a concurrency bound.

The timestamp bounds replay to a window; the nonce (kept by the cloud
for that window) makes each signed request usable once. A box whose clock is off learns the
cloud's time from the 401 answer (``X-Qilu-Server-Time``) and signs with the corrected time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

H_BOX = "X-Qilu-Box"
H_TS = "X-Qilu-Timestamp"
H_NONCE = "X-Qilu-Nonce"
H_SIG = "X-Qilu-Signature"
H_SERVER_TIME = "X-Qilu-Server-Time"
H_SIG_VERSION = "X-Qilu-Sig-Version"
SIG_VERSION = "2"
WINDOW_S = 300  # a signed request is valid this long either side of the cloud's clock
SEQ_MAX = 2**62
PAYLOAD_MAX = 1_000_000  # characters of one record's payload; a cloud may set a lower limit


def canonical(
    method: str, path_qs: str, ts: str, nonce: str, digest: str, encoding: str | None = None
) -> bytes:
    """What is signed (``digest``: SHA-256 hex of the body); ``encoding`` None: version 1,
    which has no Content-Encoding line."""
    lines = [method.upper(), path_qs, ts, nonce, digest]
    if encoding is not None:
        lines.append(encoding.strip().lower())
    return "\n".join(lines).encode()


def sign(
    secret: str,
    box_id: str,
    method: str,
    path_qs: str,
    body: bytes = b"",
    *,
    offset_s: float = 0,
    encoding: str = "",
) -> dict[str, str]:
    """Headers that authenticate one request (version 2): ``body`` exactly as sent and its
    ``encoding`` ("gzip" or ""); ``offset_s``: cloud time minus box time."""
    ts = str(int(time.time() + offset_s))
    nonce = secrets.token_hex(12)
    msg = canonical(method, path_qs, ts, nonce, hashlib.sha256(body).hexdigest(), encoding)
    mac = hmac.new(secret.encode(), msg, hashlib.sha256)
    return {
        H_BOX: box_id,
        H_TS: ts,
        H_NONCE: nonce,
        H_SIG: mac.hexdigest(),
        H_SIG_VERSION: SIG_VERSION,
    }


def check_signature(
    secret: str,
    sig: str,
    method: str,
    path_qs: str,
    ts: str,
    nonce: str,
    digest: str,
    encoding: str | None = None,
) -> bool:
    """``digest``: SHA-256 hex of the body the signature covers (as sent for version 2,
    inflated for version 1); ``encoding`` None checks a version 1 signature."""
    if not sig.isascii():  # compare_digest raises TypeError on non-ASCII text
        return False
    mac = hmac.new(secret.encode(), canonical(method, path_qs, ts, nonce, digest, encoding),
                   hashlib.sha256)  # fmt: skip
    return hmac.compare_digest(mac.hexdigest(), sig)


def sign_message(secret: str, subject: str, body: bytes, *, ts: str | None = None,
                 nonce: str | None = None) -> dict[str, str]:
    """A signature over one message that is not an HTTP request (a command on MQTT, the
    cloud's answer to a box): ``subject`` names where it goes and for whom (topic, or box id
    and request), so a signature made for one place is worthless in another."""
    ts = ts or str(int(time.time()))
    nonce = nonce or secrets.token_hex(12)
    msg = canonical("MSG", subject, ts, nonce, hashlib.sha256(body).hexdigest())
    mac = hmac.new(secret.encode(), msg, hashlib.sha256)
    return {"ts": ts, "nonce": nonce, "sig": mac.hexdigest()}


def check_message(secret: str, subject: str, body: bytes, ts: str, nonce: str, sig: str) -> bool:
    """The counterpart of :func:`sign_message` (the caller checks ``ts`` and ``nonce``)."""
    return check_signature(secret, sig, "MSG", subject, ts, nonce,
                           hashlib.sha256(body).hexdigest())  # fmt: skip


def reply_subject(box_id: str, path_qs: str, ts: str, nonce: str) -> str:
    """What the cloud's signature on its answer to one signed box request covers besides the
    body: the box, the request's path and its timestamp and nonce (used once), so an answer
    cannot be replayed to another request or another box."""
    return f"reply {box_id} {path_qs} {ts} {nonce}"


def relay_subject(box_id: str, path_qs: str, ts: str, nonce: str) -> str:
    """What the cloud's signature on each frame it sends down a box's relay socket covers
    besides the frame: the box and the signed request that opened that socket (its path,
    timestamp and one-time nonce), so a frame is worthless on another socket or box. Within
    the socket each frame's id is its nonce (used once) and its ``ts`` bounds its age."""
    return f"relay {box_id} {path_qs} {ts} {nonce}"


H_REPLY_SIG = "X-Qilu-Reply-Signature"
SCHEMA_SIGNED_COMMAND = "qilu.v1.signed_command"  # an MQTT command in its signed envelope


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadRecord(TypedDict):
    """One outbox row; ``payload`` is the record's standard JSON, as text (stored as sent).

    A TypedDict rather than a model: a 500-record batch validates about 2x faster into plain
    dicts than into model instances, with the same checks and the same OpenAPI schema."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    seq: Annotated[int, Field(ge=1, le=SEQ_MAX)]
    priority: Annotated[int, Field(ge=0, le=9)]
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    record_id: Annotated[str, Field(min_length=1, max_length=128)]
    ts: Annotated[str, Field(min_length=1, max_length=64)]
    # A JSON object as text: the pattern refuses other values here, naming the record; the
    # database checks the JSON itself (find_bad_record names the record if it refuses).
    payload: Annotated[str, Field(min_length=2, max_length=PAYLOAD_MAX, pattern=r"^\{")]


class UploadBatch(Model):
    # floor: the lowest seq still in the box's outbox; everything below was acked or dropped
    # by the box's declared disk policy, so the contiguous watermark may pass over it.
    floor: int = Field(1, ge=1, le=SEQ_MAX)
    records: list[UploadRecord] = Field(max_length=20_000)


class UploadResult(Model):
    stored: int
    duplicates: int
    acked_through: int  # highest seq such that every seq up to it is stored (or given up)


class ProvisionRequest(Model):
    claim_code: str = Field(min_length=6, max_length=64)
    name: str = Field("", max_length=200)
    software_version: str = Field("", max_length=64)


class Heartbeat(Model):
    software_version: str = Field("", max_length=64)
    devices: list[dict[str, Any]] = Field(default_factory=list, max_length=500)
    outbox_rows: int = Field(0, ge=0)
    outbox_bytes: int = Field(0, ge=0)
    feed_cursor: int = Field(0, ge=0)


class FeedItem(Model):
    id: int
    target_kind: str
    target_id: str
    action: str
    args: dict[str, Any]
    created_at: str
    expires_at: str | None = None
    expired: bool = False  # past expires_at by the cloud's clock: skip, do not apply
