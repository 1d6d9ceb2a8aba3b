"""SQL of repair tickets and their history (issue 6). The state machine is edge/tickets/."""

from __future__ import annotations

import json
from typing import Any

from edge.core.standard import Alert, RepairTicket
from edge.core.store.core import Store
from edge.reports.store import iso

TICKET_FIELDS = tuple(RepairTicket.model_fields)


def ticket_record(row: dict[str, Any]) -> RepairTicket:
    return RepairTicket.model_validate({k: row[k] for k in TICKET_FIELDS if k in row})


def insert_ticket(store: Store, rec: RepairTicket, extra: dict[str, Any], actor: str) -> None:
    """A new ticket row, its first history entry and its event (inside a transaction)."""
    row = rec.model_dump(mode="json")
    row["ts"] = iso(rec.ts)
    row["due_at"] = iso(rec.due_at) if rec.due_at else None
    row["updated_at"] = row["ts"]
    row.update(extra)
    store.db.table("tickets").insert(row)
    add_history(store, rec.id, row["ts"], "open", None, rec.status, actor, "", rec.assignee, [])
    store.emit(rec)


def add_history(
    store: Store,
    ticket_id: str,
    ts: str,
    action: str,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str,
    assignee: str | None,
    photo_ids: list[str],
) -> None:
    store.db.execute(
        "INSERT INTO ticket_history (ticket_id, ts, action, from_status, to_status, actor, note,"
        " assignee, photos) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ticket_id, ts, action, from_status, to_status, actor, note, assignee,
         json.dumps(photo_ids)),
    )


def get_ticket(store: Store, ticket_id: str) -> dict[str, Any] | None:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM tickets WHERE id = ?", (ticket_id,)))
    return rows[0] if rows else None


def history(store: Store, ticket_id: str) -> list[dict[str, Any]]:
    with store.reading():
        rows = list(
            store.db.query(
                "SELECT seq, ts, action, from_status, to_status, actor, note, assignee, photos"
                " FROM ticket_history WHERE ticket_id = ? ORDER BY seq",
                (ticket_id,),
            )
        )
    for r in rows:
        r["photos"] = json.loads(r["photos"])
    return rows


def list_tickets(
    store: Store, *, status: str | None = None, assignee: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    rows = store.select(
        "tickets", order_by="ts DESC", limit=limit, status=status or None, assignee=assignee or None
    )
    for r in rows:
        r.pop("follow_key", None)
    return rows


def tickets_of_report(store: Store, report_id: str) -> list[dict[str, Any]]:
    """The tickets a report opened, however many tickets came after them, newest first."""
    rows = store.select("tickets", order_by="ts DESC", limit=100, report_id=report_id)
    for r in rows:
        r.pop("follow_key", None)
    return rows


def update_ticket(store: Store, ticket_id: str, changes: dict[str, Any]) -> None:
    cols = ", ".join(f"{k} = ?" for k in changes)
    store.db.execute(f"UPDATE tickets SET {cols} WHERE id = ?", (*changes.values(), ticket_id))


def open_device_ticket_id(store: Store, device_kind: str, device_id: str) -> str | None:
    """The unfinished device-health ticket of a device, if there is one."""
    row = store.db.execute(
        "SELECT id FROM tickets WHERE source = 'device_health' AND device_kind = ?"
        " AND device_id = ? AND status NOT IN ('resolved', 'confirmed') ORDER BY ts DESC LIMIT 1",
        (device_kind, device_id),
    ).fetchone()
    return row[0] if row else None


def overdue(store: Store, now_iso: str, active: tuple[str, ...]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in active)
    with store.reading():
        return list(
            store.db.query(
                f"SELECT * FROM tickets WHERE due_at IS NOT NULL AND due_at < ?"
                f" AND overdue_alert_id IS NULL AND status IN ({marks}) ORDER BY due_at",
                (now_iso, *active),
            )
        )


def mark_overdue(store: Store, ticket_id: str, alert: Alert) -> bool:
    """Raise one overdue alert per ticket (and due period); False if already raised."""
    with store.transaction():
        cur = store.db.execute(
            "UPDATE tickets SET overdue_alert_id = ? WHERE id = ? AND overdue_alert_id IS NULL",
            (alert.id, ticket_id),
        )
        if cur.rowcount != 1:
            return False
        store.record(alert)
    return True


def claim_and_list(
    store: Store, resident_id: str, keys: dict[str, str], limit: int = 30
) -> list[dict[str, Any]]:
    """Tickets a phone asked for without a login (id -> follow key, checked) become the
    resident's; then the resident's own tickets (not those opened by a report), newest first."""
    with store.transaction():
        for tid, key in keys.items():
            store.db.execute(
                "UPDATE tickets SET resident_id = ? WHERE id = ? AND follow_key = ?"
                " AND resident_id IS NULL",
                (resident_id, tid, key),
            )
        # tickets opened by the resident's reports are theirs too
        store.db.execute(
            "UPDATE tickets SET resident_id = ? WHERE resident_id IS NULL AND report_id IN"
            " (SELECT id FROM reports WHERE resident_id = ?)",
            (resident_id, resident_id),
        )
    return list(
        store.db.query(
            "SELECT id, ref, ts, follow_key FROM tickets WHERE resident_id = ?"
            " AND report_id IS NULL ORDER BY ts DESC LIMIT ?",
            (resident_id, limit),
        )
    )

