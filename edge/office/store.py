"""The office's SQL (migration 0901): staff accounts, sessions and the audit log. Functions
take the box's :class:`Store` and run on its thread (``box.store.run(fn, box.store.sync, ...)``)
or straight from the CLI beside the daemon."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge.core.store.core import Store

ROLES = ("admin", "viewer")


class OfficeError(ValueError):
    """A change the office's tables refuse, with words naming the field."""


def iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).isoformat(timespec="microseconds")


# --- users -------------------------------------------------------------------------------


def add_user(store: Store, name: str, password_hash: str, role: str,
             totp_secret: str | None, replace: bool = False) -> None:
    if role not in ROLES:
        raise OfficeError(f"role: one of {', '.join(ROLES)}")
    with store.transaction():
        exists = store.db.execute("SELECT 1 FROM office_users WHERE name = ?", (name,)).fetchone()
        if exists and not replace:
            raise OfficeError(f"name: an office user {name!r} exists already")
        store.db.execute(
            "INSERT INTO office_users (name, password_hash, totp_secret, role, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " password_hash = excluded.password_hash, totp_secret = excluded.totp_secret,"
            " role = excluded.role, disabled_at = NULL",
            (name, password_hash, totp_secret, role, iso()),
        )
        if exists:  # a new password or role: sessions signed in with the old one end
            store.db.execute("UPDATE office_sessions SET ended_at = ? WHERE name = ?"
                             " AND ended_at IS NULL", (iso(), name))


def get_user(store: Store, name: str) -> dict[str, Any] | None:
    with store.reading():
        rows = list(store.db.query(
            "SELECT * FROM office_users WHERE name = ? AND disabled_at IS NULL", (name,)))
    return rows[0] if rows else None


def list_users(store: Store) -> list[dict[str, Any]]:
    with store.reading():
        return list(store.db.query(
            "SELECT name, role, totp_secret IS NOT NULL AS totp, created_at, disabled_at"
            " FROM office_users ORDER BY name"))


def disable_user(store: Store, name: str) -> None:
    with store.transaction():
        cur = store.db.execute("UPDATE office_users SET disabled_at = ? WHERE name = ?"
                               " AND disabled_at IS NULL", (iso(), name))
        if cur.rowcount == 0:
            raise OfficeError(f"name: no active office user {name!r}")
        store.db.execute("UPDATE office_sessions SET ended_at = ? WHERE name = ?"
                         " AND ended_at IS NULL", (iso(), name))


# --- sessions ------------------------------------------------------------------------------


def session_add(store: Store, h: str, name: str, csrf: str, expires_at: str,
                idle_until: str) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO office_sessions (hash, name, csrf, created_at, expires_at, idle_until)"
            " VALUES (?, ?, ?, ?, ?, ?)", (h, name, csrf, iso(), expires_at, idle_until))


def session_user(store: Store, h: str, now: str) -> dict[str, Any] | None:
    """The live session of cookie hash ``h`` with its user (name, role, csrf), or None."""
    with store.reading():
        rows = list(store.db.query(
            "SELECT s.name, s.csrf, s.idle_until, s.expires_at, u.role FROM office_sessions s"
            " JOIN office_users u ON u.name = s.name WHERE s.hash = ? AND s.ended_at IS NULL"
            " AND s.expires_at > ? AND s.idle_until > ? AND u.disabled_at IS NULL",
            (h, now, now)))
    return rows[0] if rows else None


def session_touch(store: Store, h: str, idle_until: str) -> None:
    with store.transaction():
        store.db.execute("UPDATE office_sessions SET idle_until = ? WHERE hash = ?",
                         (idle_until, h))


def session_end(store: Store, h: str) -> None:
    with store.transaction():
        store.db.execute("UPDATE office_sessions SET ended_at = ? WHERE hash = ?", (iso(), h))


def prune(store: Store, sessions_before: str, audit_before: str) -> None:
    with store.transaction():
        store.db.execute("DELETE FROM office_sessions WHERE expires_at < ?", (sessions_before,))
        store.db.execute("DELETE FROM office_audit WHERE ts < ?", (audit_before,))


# --- audit ---------------------------------------------------------------------------------


def audit_add(store: Store, actor: str, via: str, action: str, target: str, detail: str,
              status: int) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO office_audit (ts, actor, via, action, target, detail, status)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (iso(), actor, via, action, target, detail, status))


def login_failures(store: Store, name: str, since: str, pair: str
                   ) -> tuple[int, int, str | None]:
    """Failed sign-ins of ``name`` since ``since``: from ``pair`` (the audit row's target:
    ``ip=<address>`` or ``device=<hash>``), from anywhere, and the newest one's time."""
    with store.reading():
        n_pair, n_name, last = store.db.execute(
            "SELECT count(*) FILTER (WHERE target = ?), count(*), max(ts) FROM office_audit"
            " WHERE actor = ? AND action = 'login_failed' AND ts > ?",
            (pair, name, since)).fetchone()
    return int(n_pair), int(n_name), last


def audit_page(store: Store, limit: int, before: int | None, actor: str | None
               ) -> list[dict[str, Any]]:
    sql = "SELECT * FROM office_audit WHERE 1=1"
    args: list[Any] = []
    if before:
        sql += " AND id < ?"
        args.append(before)
    if actor:
        sql += " AND actor = ?"
        args.append(actor)
    with store.reading():
        return list(store.db.query(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]))
