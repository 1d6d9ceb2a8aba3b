"""Residents, one-time login codes and sessions (secrets stored as SHA-256 only)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from edge.core.standard import new_id
from edge.core.store.core import Store
from edge.portal.store.base import PortalError, _iso, _now, _row, _rows, code_hash, digest


def upsert_resident(
    store: Store, rid: str, name: str = "", building: str | None = None, unit: str | None = None
) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO portal_residents (id, name, building, unit, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " name = CASE WHEN excluded.name = '' THEN name ELSE excluded.name END,"
            " building = coalesce(excluded.building, building),"
            " unit = coalesce(excluded.unit, unit), updated_at = excluded.updated_at",
            (rid, name, building, unit, _iso(_now())),
        )


def get_resident(store: Store, rid: str) -> dict[str, Any] | None:
    return _row(store, "SELECT * FROM portal_residents WHERE id = ?", rid)


def add_code(
    store: Store, code: str, rid: str, channel: str, by: str, expires_at: datetime
) -> None:
    with store.transaction():
        if get_resident(store, rid) is None:
            raise PortalError(f"resident_id: unknown resident {rid!r}")
        store.db.execute(
            "INSERT INTO portal_codes (code_hash, resident_id, channel, created_by, created_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            (code_hash(store, code), rid, channel, by, _iso(_now()), _iso(expires_at)),
        )


def new_code(digits: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(digits))


def issue_code(
    store: Store,
    rid: str,
    *,
    channel: str,
    by: str,
    ttl: timedelta,
    digits: int,
    name: str = "",
    building: str | None = None,
    unit: str | None = None,
) -> dict[str, Any]:
    """The one way a login code is made (staff API, CLI, printed sheets, door screens).

    Name, building and unit default to the box's resident registry (faces/access), so the
    feed knows the building; the portal resident row and the code are written in one
    transaction. Returns the code in clear (never stored, never journalled) with the resident.
    """
    from edge.faces import store as faces  # the registry's own SQL

    with store.transaction():
        known = faces.get_resident(store, rid) or {}
        upsert_resident(
            store,
            rid,
            name or known.get("name") or "",
            building or known.get("building"),
            unit or known.get("unit"),
        )
        code = new_code(digits)
        expires = _now() + ttl
        add_code(store, code, rid, channel, by, expires)
        res = get_resident(store, rid) or {}
    return {
        "code": code,
        "resident_id": rid,
        "name": res.get("name") or "",
        "building": res.get("building"),
        "unit": res.get("unit"),
        "channel": channel,
        "expires_at": expires,
    }


def has_live_session(store: Store, rid: str) -> bool:
    return (
        _row(
            store,
            "SELECT 1 AS x FROM portal_sessions WHERE resident_id = ? AND revoked_at IS NULL"
            " AND expires_at > ? LIMIT 1",
            rid,
            _iso(_now()),
        )
        is not None
    )


def live_code(store: Store, code: str) -> dict[str, Any] | None:
    """The unspent, unexpired code's row (resident_id, channel), without spending it."""
    return _row(
        store,
        "SELECT resident_id, channel FROM portal_codes WHERE code_hash IN (?, ?)"
        " AND used_at IS NULL AND expires_at > ?",
        code_hash(store, code), digest(code), _iso(_now()),
    )


def spend_code(store: Store, code: str) -> None:
    """Spend a code without a session (a door code whose PIN was got wrong too often)."""
    with store.transaction():
        store.db.execute(
            "UPDATE portal_codes SET used_at = ? WHERE code_hash IN (?, ?) AND used_at IS NULL",
            (_iso(_now()), code_hash(store, code), digest(code)),
        )


def redeem_code(
    store: Store, code: str, token: str, session_days: float, agent: str
) -> dict[str, Any] | None:
    """Use a one-time code: it is spent and a session created in one transaction."""
    now = _now()
    with store.transaction():
        row = _row(
            store,
            "SELECT * FROM portal_codes WHERE code_hash IN (?, ?) AND used_at IS NULL"
            " AND expires_at > ?",
            code_hash(store, code),
            digest(code),  # a code issued before keyed hashes, until it expires
            _iso(now),
        )
        if row is None:
            return None
        store.db.execute(
            "UPDATE portal_codes SET used_at = ? WHERE code_hash = ?", (_iso(now), row["code_hash"])
        )
        sid = new_id("ps")
        store.db.execute(
            "INSERT INTO portal_sessions (id, token_hash, resident_id, created_at, last_seen,"
            " expires_at, agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                sid,
                digest(token),
                row["resident_id"],
                _iso(now),
                _iso(now),
                _iso(now + timedelta(days=session_days)),
                agent[:200],
            ),
        )
    return {"session_id": sid, "resident_id": row["resident_id"]}


def session_for(store: Store, token: str) -> dict[str, Any] | None:
    """The live session of a token, with its resident; refreshes last_seen (coarsely)."""
    now = _now()
    row = _row(
        store,
        "SELECT s.id, s.resident_id, s.last_seen, r.name, r.building, r.unit, r.big_text"
        " FROM portal_sessions s JOIN portal_residents r ON r.id = s.resident_id"
        " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?"
        # A resident recorded as moved out (the roster's residents table) is signed out on
        # every phone (security probe 4); suspended residents are still residents.
        " AND NOT EXISTS (SELECT 1 FROM residents f WHERE f.id = s.resident_id"
        " AND f.status = 'moved_out')",
        digest(token),
        _iso(now),
    )
    if row and row["last_seen"] < _iso(now - timedelta(minutes=5)):
        with store.transaction():  # once per 5 min, not a write per request
            store.db.execute(
                "UPDATE portal_sessions SET last_seen = ? WHERE id = ?", (_iso(now), row["id"])
            )
    return row


def list_sessions(store: Store, rid: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT id, resident_id, created_at, last_seen, expires_at, revoked_at, agent"
        " FROM portal_sessions"
    )
    if rid:
        return _rows(store, sql + " WHERE resident_id = ? ORDER BY created_at", rid)
    return _rows(store, sql + " ORDER BY created_at")


def revoke_sessions(
    store: Store,
    *,
    session_id: str | None = None,
    resident_id: str | None = None,
    token: str | None = None,
) -> int:
    """Revoke one session (by id or token) or every session of a resident; returns how many."""
    where, arg = (
        ("id = ?", session_id)
        if session_id
        else ("token_hash = ?", digest(token))
        if token
        else ("resident_id = ?", resident_id)
    )
    if arg is None:
        raise PortalError("session_id, token or resident_id is required")
    with store.transaction():
        cur = store.db.execute(
            f"UPDATE portal_sessions SET revoked_at = ? WHERE {where} AND revoked_at IS NULL",
            (_iso(_now()), arg),
        )
    return cur.rowcount


def set_big_text(store: Store, resident_id: str, big: bool) -> None:
    """The resident's large-text preference (适老化), kept with the login."""
    with store.transaction():
        store.db.execute(
            "UPDATE portal_residents SET big_text = ? WHERE id = ?", (int(big), resident_id)
        )
