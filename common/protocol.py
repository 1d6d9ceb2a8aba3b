"""The box ⇄ cloud wire protocol, shared by the service and the box's sync client.

Box requests are signed with HMAC-SHA256 over method, path+query, timestamp, nonce and the
SHA-256 of the body. The timestamp bounds replay to a window; the nonce (kept by the cloud
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
WINDOW_S = 300  # a signed request is valid this long either side of the cloud's clock
SEQ_MAX = 2**62
PAYLOAD_MAX = 1_000_000  # characters of one record's payload; a cloud may set a lower limit


def canonical(method: str, path_qs: str, ts: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path_qs, ts, nonce, digest)).encode()


def sign(
    secret: str, box_id: str, method: str, path_qs: str, body: bytes = b"", *, offset_s: float = 0
) -> dict[str, str]:
    """Headers that authenticate one request (``offset_s``: cloud time minus box time)."""
    ts = str(int(time.time() + offset_s))
    nonce = secrets.token_hex(12)
    mac = hmac.new(secret.encode(), canonical(method, path_qs, ts, nonce, body), hashlib.sha256)
    return {H_BOX: box_id, H_TS: ts, H_NONCE: nonce, H_SIG: mac.hexdigest()}


def check_signature(
    secret: str, sig: str, method: str, path_qs: str, ts: str, nonce: str, body: bytes
) -> bool:
    mac = hmac.new(secret.encode(), canonical(method, path_qs, ts, nonce, body), hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), sig)


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
