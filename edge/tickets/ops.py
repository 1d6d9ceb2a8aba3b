"""Ticket operations that run on the store thread, each in one transaction (no SQL here)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from edge.core.http import same_secret
from edge.core.standard import RepairTicket, new_id, now
from edge.core.store.core import Store
from edge.reports.store import insert_photo, iso
from edge.tickets import store as db
from edge.tickets.config import TicketsConfig
from edge.tickets.machine import TransitionError, next_status


def due_at(cfg: TicketsConfig, urgency: str, start: datetime) -> datetime:
    return start + timedelta(hours=getattr(cfg, f"due_hours_{urgency}"))


def build_ticket(
    cfg: TicketsConfig, *, title: str, urgency: str = "normal", follow_key: str | None = None,
    resident_id: str | None = None, **fields: Any,
) -> tuple[RepairTicket, dict[str, Any]]:
    """A new open ticket record and the row's extra columns."""
    ts = now()
    rec = RepairTicket(
        id=new_id("tk"), ts=ts, title=title, urgency=urgency, due_at=due_at(cfg, urgency, ts),
        updated_at=ts, **fields,
    )
    extra = {"follow_key": follow_key or secrets.token_urlsafe(12), "resident_id": resident_id}
    return rec, extra


def create(
    store: Store, rec: RepairTicket, extra: dict[str, Any], actor: str,
    photo_rows: Sequence[dict[str, Any]] = (),
) -> None:
    with store.transaction():
        db.insert_ticket(store, rec, extra, actor)
        for row in photo_rows:
            insert_photo(store, row)


def transition(
    store: Store, cfg: TicketsConfig, ticket_id: str, action: str, *, role: str, actor: str,
    note: str = "", assignee: str | None = None, photo_rows: Sequence[dict[str, Any]] = (),
    follow_key: str | None = None,
) -> RepairTicket:
    """Apply one action: state check, row update, history row, photos and event, atomically."""
    with store.transaction():
        row = db.get_ticket(store, ticket_id)
        if row is None:
            raise LookupError(ticket_id)
        if role == "resident" and not (
            follow_key and same_secret(follow_key, row["follow_key"])
        ):
            raise TransitionError("key: wrong or missing follow key for this ticket", "key")
        if photo_rows and action != "resolve":
            raise TransitionError("photos: photos are attached when resolving", "photos")
        status = next_status(
            row["status"], action, role, assignee=assignee, current_assignee=row["assignee"]
        )
        ts = now()
        changes: dict[str, Any] = {"status": status, "updated_at": iso(ts)}
        if action == "assign":
            changes["assignee"] = assignee
        if action == "reopen":
            # A reopened ticket gets a fresh due time and may become overdue again.
            changes["due_at"] = iso(due_at(cfg, row["urgency"], ts))
            changes["overdue_alert_id"] = None
        db.update_ticket(store, ticket_id, changes)
        for p in photo_rows:
            insert_photo(store, p)
        db.add_history(
            store, ticket_id, iso(ts), action, row["status"], status, actor, note,
            changes.get("assignee", row["assignee"]), [p["id"] for p in photo_rows],
        )
        rec = db.ticket_record({**row, **changes})
        store.emit(rec)
    return rec


def open_for_device(
    store: Store, cfg: TicketsConfig, device_kind: str, device_id: str, reason: str
) -> tuple[RepairTicket | None, bool]:
    """(ticket, created): one unfinished ticket per device, however often it goes offline."""
    with store.transaction():
        existing = db.open_device_ticket_id(store, device_kind, device_id)
        if existing:
            row = db.get_ticket(store, existing)
            assert row is not None  # read in the same transaction that found its id
            return db.ticket_record(row), False
        rec, extra = build_ticket(
            cfg, title=f"设备离线: {device_kind} {device_id}", description=reason,
            urgency="high", source="device_health", device_kind=device_kind, device_id=device_id,
        )
        db.insert_ticket(store, rec, extra, "system")
    return rec, True


def close_for_device(
    store: Store, cfg: TicketsConfig, device_kind: str, device_id: str
) -> RepairTicket | None:
    """The device is back: resolve and confirm its unfinished ticket (None if there is none)."""
    with store.transaction():
        tid = db.open_device_ticket_id(store, device_kind, device_id)
        if tid is None:
            return None
        transition(store, cfg, tid, "system_resolve", role="system", actor="system",
                   note="device back online")
        return transition(store, cfg, tid, "confirm", role="system", actor="system",
                          note="closed automatically")
