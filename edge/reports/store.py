"""SQL of residents' reports, their photos, alerts and early-warning state (issue 6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from edge.core.standard import Alert, Report, ReportCorrection, new_id
from edge.core.store.core import Store

REPORT_FIELDS = tuple(Report.model_fields)


def iso(dt: datetime) -> str:
    """Fixed-width UTC text so that string order is time order in SQL comparisons."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def insert_report(store: Store, rec: Report, extra: dict[str, Any]) -> None:
    """The report row (record fields + polarity, text_norm, follow_key, analysis) and its event.

    Call inside ``store.transaction()`` together with its photos and alerts.
    """
    row = rec.model_dump(mode="json")
    row["ts"] = iso(rec.ts)
    row.update(extra)
    row["analysis"] = json.dumps(extra.get("analysis", {}), ensure_ascii=False)
    row.setdefault("updated_at", row["ts"])
    store.db["reports"].insert(row)
    store.emit(rec)


def insert_photo(store: Store, row: dict[str, Any]) -> None:
    store.db["photos"].insert(row)


def photo_paths(store: Store) -> set[str]:
    """Every stored photo's path (relative to data_dir)."""
    with store.reading():
        return {r[0] for r in store.db.execute("SELECT path FROM photos")}


def photos_of(store: Store, owner_kind: str, owner_id: str) -> list[dict[str, Any]]:
    with store.reading():
        return list(
            store.db.query(
                "SELECT id, stage, ts, path, mime, bytes, sha256 FROM photos"
                " WHERE owner_kind = ? AND owner_id = ? ORDER BY ts, id",
                (owner_kind, owner_id),
            )
        )


def photo(store: Store, photo_id: str) -> dict[str, Any] | None:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM photos WHERE id = ?", (photo_id,)))
    return rows[0] if rows else None


def get_report(store: Store, report_id: str) -> dict[str, Any] | None:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM reports WHERE id = ?", (report_id,)))
    if not rows:
        return None
    row = rows[0]
    row["analysis"] = json.loads(row["analysis"])
    return row


def list_reports(
    store: Store, *, limit: int = 50, category: str | None = None, building: str | None = None
) -> list[dict[str, Any]]:
    rows = store.select(
        "reports", order_by="ts DESC", limit=limit, category=category or None,
        building=building or None,
    )  # fmt: skip
    for r in rows:
        r.pop("follow_key", None)
        r["analysis"] = json.loads(r["analysis"])
    return rows


def report_record(row: dict[str, Any]) -> Report:
    return Report.model_validate({k: row[k] for k in REPORT_FIELDS if k in row})


def update_report_status(
    store: Store, report_id: str, status: str, reply: str | None, now_iso: str
) -> Report | None:
    """Set a report's status (and answer) from staff or the cloud; emits the new record."""
    with store.transaction():
        row = get_report(store, report_id)
        if row is None:
            return None
        row["status"] = status
        if reply is not None:
            row["reply"] = reply
        rec = report_record(row)  # validates the status
        store.db.execute(
            "UPDATE reports SET status = ?, reply = ?, updated_at = ? WHERE id = ?",
            (rec.status, rec.reply, now_iso, report_id),
        )
        store.emit(rec)
    return rec


def correct_report(
    store: Store, report_id: str, changes: dict[str, str], actor: str, note: str, now_iso: str
) -> ReportCorrection | None:
    """Staff's corrected labels: the report row takes them, a report_correction record (row,
    event, outbox → cloud) keeps before/after as a training row; one transaction."""
    with store.transaction():
        row = get_report(store, report_id)
        if row is None:
            return None
        fixed = {k: changes.get(k) or row[k] for k in ("category", "polarity", "urgency")}
        corr = ReportCorrection(
            id=new_id("rc"), report_id=report_id, text=row["text"], **fixed,
            was_category=row["category"], was_polarity=row["polarity"],
            was_urgency=row["urgency"], actor=actor, note=note,
        )
        row.update(fixed)
        # A person has looked at it: the detector's doubt is settled either way.
        row["possible_emergency"] = False
        rec = report_record(row)
        store.db.execute(
            "UPDATE reports SET category = ?, polarity = ?, urgency = ?, possible_emergency = 0,"
            " updated_at = ? WHERE id = ?",
            (rec.category, fixed["polarity"], rec.urgency, now_iso, report_id),
        )
        store.emit(rec)
        store.record(corr)
    return corr


def list_corrections(store: Store, limit: int = 100000) -> list[dict[str, Any]]:
    """Staff corrections, oldest first (the retraining rows)."""
    with store.reading():
        return list(store.db.query(
            "SELECT * FROM report_corrections ORDER BY ts, id LIMIT ?", (limit,)))


# --- early warning queries ---------------------------------------------------------------


def find_group(
    store: Store, text_norm: str, building: str | None, location: str | None, since_iso: str
) -> str | None:
    """Id of the group an identical recent report from the same place belongs to (its first
    report), if any. The place includes the location: "有人摔倒了" from two units of one
    building is two people needing help, not one report sent twice."""
    row = store.db.execute(
        "SELECT coalesce(group_id, id) FROM reports WHERE text_norm = ? AND building IS ?"
        " AND location IS ? AND ts >= ? ORDER BY ts LIMIT 1",
        (text_norm, building, location, since_iso),
    ).fetchone()
    return row[0] if row else None


def first_reports(
    store: Store, category: str, building: str | None, since_iso: str, until_iso: str
) -> list[str]:
    """Ids of distinct (ungrouped) reports of a topic, optionally in one building."""
    sql = "SELECT id FROM reports WHERE category = ? AND group_id IS NULL AND ts >= ? AND ts <= ?"
    args: list[Any] = [category, since_iso, until_iso]
    if building is not None:
        sql += " AND building = ?"
        args.append(building)
    return [r[0] for r in store.db.execute(sql + " ORDER BY ts", args).fetchall()]


def building_sentiment(
    store: Store, building: str, since_iso: str, until_iso: str
) -> tuple[int, float, list[str]]:
    """(count, mean sentiment, ids) of a building's distinct reports in [since, until]."""
    rows = store.db.execute(
        "SELECT id, sentiment FROM reports WHERE building = ? AND group_id IS NULL"
        " AND ts >= ? AND ts <= ? ORDER BY ts",
        (building, since_iso, until_iso),
    ).fetchall()
    if not rows:
        return 0, 0.0, []
    return len(rows), sum(r[1] for r in rows) / len(rows), [r[0] for r in rows]


def warning_last(store: Store, key: str) -> str | None:
    row = store.db.execute("SELECT last_ts FROM warning_state WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def warning_fired(store: Store, key: str, alert: Alert) -> None:
    """Record an early-warning alert and its cool-down key (inside the caller's transaction)."""
    store.record(alert)
    store.db.execute(
        "INSERT INTO warning_state (key, last_ts, alert_id) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET last_ts = excluded.last_ts,"
        " alert_id = excluded.alert_id",
        (key, alert.ts.isoformat(), alert.id),
    )


def list_alerts(store: Store, limit: int = 50, type_: str | None = None) -> list[dict[str, Any]]:
    sql, args = "SELECT * FROM alerts", []
    if type_:
        sql += " WHERE type = ?"
        args.append(type_)
    with store.reading():
        rows = list(store.db.query(sql + " ORDER BY ts DESC LIMIT ?", (*args, limit)))
    for r in rows:
        r["evidence"] = json.loads(r["evidence"] or "[]")
    return rows


def refs(store: Store, report_id: str, ticket_id: str | None) -> dict[str, int | None]:
    """The short references (migration 0403) of a new report and the ticket it opened."""
    rep = list(store.db.query("SELECT ref FROM reports WHERE id = ?", (report_id,)))
    tic = list(store.db.query("SELECT ref FROM tickets WHERE id = ?", (ticket_id,)))
    return {"ref": rep[0]["ref"] if rep else None, "ticket_ref": tic[0]["ref"] if tic else None}


def claim_and_list(
    store: Store, resident_id: str, keys: dict[str, str], limit: int = 30
) -> list[dict[str, Any]]:
    """Reports a phone submitted without a login (id -> follow key, checked) become the
    resident's; then the resident's reports, newest first, with their follow keys."""
    with store.transaction():
        for rid, key in keys.items():
            store.db.execute(
                "UPDATE reports SET resident_id = ? WHERE id = ? AND follow_key = ?"
                " AND resident_id IS NULL",
                (resident_id, rid, key),
            )
    return list(
        store.db.query(
            "SELECT id, ref, ts, follow_key FROM reports WHERE resident_id = ?"
            " ORDER BY ts DESC LIMIT ?",
            (resident_id, limit),
        )
    )

