"""The portal store's shared helpers: the refusal error, time stamps, digests, row reads."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from edge.core.store.core import Store, StoreError


class PortalError(StoreError):
    """A portal write was refused (full event, unknown post...); nothing was stored."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (session tokens: 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def code_hash(store: Store, code: str) -> str:
    """How a login code is stored: HMAC-SHA-256 keyed with the box's secret (meta, never
    synced), prefixed ``k1:``. Eight digits are only 10^8 values: a bare SHA-256 of one is
    reversed by trying them all in a second, the keyed hash is not without the key.
    Rows from before (bare SHA-256, no prefix) still log in until they expire."""
    from edge.access.store import box_key

    key = getattr(store, "_portal_code_key", None)
    if key is None:
        key = box_key(store)
        store._portal_code_key = key  # type: ignore[attr-defined]
    return "k1:" + hmac.new(key, f"login-code:{code}".encode(), hashlib.sha256).hexdigest()


def _rows(store: Store, sql: str, *args: Any) -> list[dict[str, Any]]:
    with store.reading():
        return list(store.db.query(sql, args))


def _row(store: Store, sql: str, *args: Any) -> dict[str, Any] | None:
    rows = _rows(store, sql, *args)
    return rows[0] if rows else None
