"""The intercom's SQL: calls (the ``intercom_call`` record, one row updated as the call goes)
and who lives in which flat (the residents table of faces: building, unit, room)."""

from __future__ import annotations

from typing import Any

from edge.core.standard import IntercomCall
from edge.core.store.core import Store


def flat_of(building: Any, unit: Any, room: Any) -> str | None:
    parts = [str(p).strip() for p in (building, unit, room) if p is not None]
    return "-".join(parts) if len(parts) == 3 and all(parts) else None


def save_call(store: Store, call: IntercomCall) -> None:
    """The call's row, its journal event (MQTT) and its outbox row, in one transaction."""
    store.record(call)


def resident_flat(store: Store, resident_id: str) -> str | None:
    """The flat of an active resident (None: unknown, moved out or no room on file)."""
    with store.reading():
        row = store.db.execute(
            "SELECT building, unit, room FROM residents WHERE id = ? AND status = 'active'",
            (resident_id,),
        ).fetchone()
    return flat_of(*row) if row else None


def flats(store: Store, building: str | None = None) -> list[str]:
    """Flats with at least one active resident (of a building, if given), in number order.
    Only numbers: the directory a visitor sees names nobody."""
    sql = "SELECT DISTINCT building, unit, room FROM residents WHERE status = 'active'"
    args: list[Any] = []
    if building is not None:
        sql += " AND building = ?"
        args.append(building)
    with store.reading():
        rows = store.db.execute(sql, args).fetchall()
    out = {f for f in (flat_of(*r) for r in rows) if f}
    return sorted(out, key=lambda f: [(0, int(p)) if p.isdigit() else (1, p) for p in f.split("-")])


def open_calls(store: Store) -> list[IntercomCall]:
    """Calls whose row never ended: what a box that stopped mid-call left behind."""
    with store.reading():
        rows = list(store.db.query("SELECT * FROM intercom_calls WHERE ended_at IS NULL"))
    return [IntercomCall.model_validate({k: v for k, v in r.items() if v is not None})
            for r in rows]


def missed_since(store: Store, since_iso: str) -> list[dict[str, Any]]:
    """Missed calls dialled since then, oldest first (the phones' "未接来电" list)."""
    with store.reading():
        return list(store.db.query(
            "SELECT id, door_id, flat, ts FROM intercom_calls WHERE state = 'missed'"
            " AND ts >= ? ORDER BY ts", (since_iso,)))


def list_calls(store: Store, flat: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    sql = "SELECT * FROM intercom_calls"
    args: list[Any] = []
    if flat:
        sql += " WHERE flat = ?"
        args.append(flat)
    sql += " ORDER BY ts DESC LIMIT ?"
    args.append(limit)
    with store.reading():
        return list(store.db.query(sql, args))


def counts(store: Store) -> dict[str, int]:
    with store.reading():
        return dict(store.db.execute(
            "SELECT state, COUNT(*) FROM intercom_calls GROUP BY state").fetchall())


# --- Web Push subscriptions -------------------------------------------------------------


def add_push(store: Store, resident_id: str, endpoint: str, p256dh: str, auth: str) -> None:
    from datetime import UTC, datetime

    with store.transaction():
        store.db.execute(
            "INSERT INTO intercom_push (endpoint, resident_id, p256dh, auth, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET"
            " resident_id = excluded.resident_id, p256dh = excluded.p256dh,"
            " auth = excluded.auth",
            (endpoint, resident_id, p256dh, auth, datetime.now(UTC).isoformat()),
        )


def drop_push(store: Store, endpoint: str, resident_id: str | None = None) -> int:
    sql, args = "DELETE FROM intercom_push WHERE endpoint = ?", [endpoint]
    if resident_id is not None:
        sql += " AND resident_id = ?"
        args.append(resident_id)
    with store.transaction():
        return store.db.execute(sql, args).rowcount


def flat_push(store: Store, flat: str) -> list[dict[str, Any]]:
    """The push subscriptions of the active residents of a flat."""
    with store.reading():
        rows = store.db.execute(
            "SELECT p.endpoint, p.p256dh, p.auth, r.building, r.unit, r.room"
            " FROM intercom_push p JOIN residents r ON r.id = p.resident_id"
            " WHERE r.status = 'active'"
        ).fetchall()
    return [{"endpoint": e, "keys": {"p256dh": k, "auth": a}}
            for e, k, a, b, u, r in rows if flat_of(b, u, r) == flat]
