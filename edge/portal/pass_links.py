"""Share links of visitor passes: ``/r/v/<token>`` shows a pass's PIN and QR code to whoever
holds the link, without a login (the visitor has none), until the pass ends.

The token is 192 random bits (unguessable; the relay's and the box's rate limits aside, a
guess has a 2^-192 chance). The box keeps only SHA-256 of it and the PIN sealed with AES-GCM
under a key derived from the token: the table, a backup or a log never show a PIN or a link
that works. A link shows nothing once its pass has expired, is used up or was revoked (the
pass is read live), and its row is deleted after the pass's end.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from edge.core.store.core import Store

TOKEN_BYTES = 24


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def link_id(token: str) -> str:
    return hashlib.sha256(f"pass-link:{token}".encode()).hexdigest()


def _key(token: str) -> bytes:
    return hashlib.sha256(f"pass-link-key:{token}".encode()).digest()


def seal(token: str, pin: str) -> bytes:
    # cryptography's native module is ~7 MB of RSS: loaded by the first link, not at start
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_key(token)).encrypt(nonce, pin.encode(), None)


def unseal(token: str, sealed: bytes) -> str | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(_key(token)).decrypt(sealed[:12], sealed[12:], None).decode()
    except (InvalidTag, ValueError):
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def add_link(store: Store, token: str, pass_id: str, pin: str, valid_to: datetime) -> None:
    """Store a link for a new pass; links of passes that have ended are dropped meanwhile."""
    now = datetime.now(UTC)
    with store.transaction():
        store.db.execute("DELETE FROM portal_pass_links WHERE valid_to < ?", (_iso(now),))
        store.db.execute(
            "INSERT INTO portal_pass_links (id, pass_id, sealed, valid_to, created_at)"
            " VALUES (?,?,?,?,?)",
            (link_id(token), pass_id, seal(token, pin), _iso(valid_to), _iso(now)),
        )


def open_link(store: Store, token: str) -> tuple[str, str] | None:
    """(pass id, PIN) for a token, or None for a link that does not exist (any more)."""
    if not token or len(token) > 64:
        return None
    with store.reading():
        rows = list(store.db.query(
            "SELECT pass_id, sealed, valid_to FROM portal_pass_links WHERE id = ?",
            (link_id(token),),
        ))  # fmt: skip
    if not rows:
        return None
    row: dict[str, Any] = rows[0]
    pin = unseal(token, bytes(row["sealed"]))
    return (row["pass_id"], pin) if pin is not None else None
