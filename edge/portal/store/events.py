"""Community events: sign-ups, attendance, volunteer hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from edge.core.standard import CommunityEvent
from edge.core.store.core import Store
from edge.portal.store.base import PortalError, _iso, _now, _row, _rows


def _event_record(store: Store, eid: str) -> CommunityEvent:
    e = _row(store, "SELECT * FROM portal_events WHERE id = ?", eid)
    if e is None:
        raise PortalError(f"event_id: no event {eid!r}")
    c = _row(
        store,
        "SELECT count(*) AS n, coalesce(sum(attended), 0) AS att, coalesce(sum(hours), 0) AS h"
        " FROM portal_signups WHERE event_id = ?",
        eid,
    )
    return CommunityEvent(
        id=e["id"],
        title=e["title"],
        body=e["body"],
        place=e["place"],
        starts_at=e["starts_at"],
        ends_at=e["ends_at"],
        capacity=e["capacity"],
        volunteer=bool(e["volunteer"]),
        hours=e["hours"],
        status=e["status"],
        signed_up=c["n"],
        attended=c["att"],
        hours_credited=c["h"],
    )


def put_event(store: Store, ev: CommunityEvent, by: str) -> CommunityEvent:
    with store.transaction():
        store.db.execute(
            "INSERT INTO portal_events (id, title, body, place, starts_at, ends_at, capacity,"
            " volunteer, hours, status, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " title = excluded.title, body = excluded.body, place = excluded.place,"
            " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
            " capacity = excluded.capacity, volunteer = excluded.volunteer,"
            " hours = excluded.hours, status = excluded.status",
            (
                ev.id,
                ev.title,
                ev.body,
                ev.place,
                _iso(ev.starts_at),
                _iso(ev.ends_at),
                ev.capacity,
                int(ev.volunteer),
                ev.hours,
                ev.status,
                by,
                _iso(_now()),
            ),
        )
        rec = _event_record(store, ev.id)
        store.emit(rec)
    return rec


def list_events(store: Store, rid: str | None = None, since: datetime | None = None) -> list[dict]:
    """Events ending after ``since`` with their counts and whether ``rid`` signed up."""
    return _rows(
        store,
        "SELECT e.*, (SELECT count(*) FROM portal_signups s WHERE s.event_id = e.id) AS signed_up,"
        " EXISTS (SELECT 1 FROM portal_signups s WHERE s.event_id = e.id AND s.resident_id = ?)"
        " AS mine FROM portal_events e WHERE e.ends_at >= ? ORDER BY e.starts_at",
        rid or "",
        _iso(since or datetime(1970, 1, 1, tzinfo=UTC)),
    )


def sign_up(store: Store, eid: str, rid: str) -> CommunityEvent:
    """Take a place if one is left. The capacity check is inside the INSERT, which is the
    transaction's first statement: it takes the write lock before reading, so no other
    connection can fill the last place in between."""
    with store.transaction():
        cur = store.db.execute(
            "INSERT INTO portal_signups (event_id, resident_id, signed_at)"
            " SELECT e.id, ?, ? FROM portal_events e WHERE e.id = ? AND e.status = 'open'"
            " AND (SELECT count(*) FROM portal_signups s WHERE s.event_id = e.id) < e.capacity"
            " ON CONFLICT DO NOTHING",
            (rid, _iso(_now()), eid),
        )
        if cur.rowcount != 1:
            e = _row(store, "SELECT status FROM portal_events WHERE id = ?", eid)
            if e is None:
                raise PortalError(f"event_id: no event {eid!r}")
            if e["status"] != "open":
                raise PortalError(f"event {eid!r} is {e['status']}")
            if _row(
                store,
                "SELECT 1 AS x FROM portal_signups WHERE event_id = ? AND resident_id = ?",
                eid,
                rid,
            ):
                raise PortalError("already signed up")
            raise PortalError("the event is full")
        rec = _event_record(store, eid)
        store.emit(rec)
    return rec


def cancel_signup(store: Store, eid: str, rid: str) -> CommunityEvent:
    with store.transaction():
        cur = store.db.execute(
            "DELETE FROM portal_signups WHERE event_id = ? AND resident_id = ? AND attended = 0",
            (eid, rid),
        )
        if cur.rowcount != 1:
            raise PortalError("not signed up (or attendance already credited)")
        rec = _event_record(store, eid)
        store.emit(rec)
    return rec


def credit_attendance(
    store: Store, eid: str, rid: str, hours: float | None, by: str
) -> CommunityEvent:
    """Mark a signed-up resident as attended; volunteer events credit hours."""
    with store.transaction():
        e = _row(store, "SELECT volunteer, hours FROM portal_events WHERE id = ?", eid)
        if e is None:
            raise PortalError(f"event_id: no event {eid!r}")
        h = (e["hours"] if hours is None else hours) if e["volunteer"] else 0.0
        cur = store.db.execute(
            "UPDATE portal_signups SET attended = 1, hours = ?, credited_by = ?"
            " WHERE event_id = ? AND resident_id = ?",
            (h, by, eid, rid),
        )
        if cur.rowcount != 1:
            raise PortalError(f"resident_id: {rid!r} did not sign up for {eid!r}")
        rec = _event_record(store, eid)
        store.emit(rec)
    return rec


def volunteer_hours(store: Store, rid: str) -> dict[str, Any]:
    r = _row(
        store,
        "SELECT coalesce(sum(hours), 0) AS hours, coalesce(sum(attended), 0) AS events"
        " FROM portal_signups WHERE resident_id = ?",
        rid,
    )
    return {"hours": float(r["hours"]), "events_attended": int(r["events"])}
