"""The portal store's shared helpers: the refusal error, time stamps, digests, row reads."""

from __future__ import annotations

import hashlib
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
    return hashlib.sha256(secret.encode()).hexdigest()


def _rows(store: Store, sql: str, *args: Any) -> list[dict[str, Any]]:
    with store.reading():
        return list(store.db.query(sql, args))


def _row(store: Store, sql: str, *args: Any) -> dict[str, Any] | None:
    rows = _rows(store, sql, *args)
    return rows[0] if rows else None
