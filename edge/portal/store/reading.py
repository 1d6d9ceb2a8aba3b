"""What phones read: content, reads, dwell, acknowledgements, reading counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from edge.core.standard import ContentItem, ReadingStats, new_id
from edge.core.store.core import Store
from edge.portal.store.base import _iso, _now, _row, _rows


def phone_content(store: Store) -> list[tuple[ContentItem, str]]:
    """Every content item (the screens' content model) with when it was last published."""
    rows = _rows(store, "SELECT payload, updated_at FROM screen_content ORDER BY updated_at")
    return [(ci, r["updated_at"]) for r in rows if (ci := _item(r["payload"])) is not None]


def _item(payload: str) -> ContentItem | None:
    """A stored item, or None for one today's rules refuse (e.g. a javascript: link stored
    before links were checked): phones never see it."""
    try:
        return ContentItem.model_validate_json(payload)
    except ValidationError:
        return None


def content_item(store: Store, content_id: str) -> tuple[ContentItem, str] | None:
    r = _row(store, "SELECT payload, updated_at FROM screen_content WHERE id = ?", content_id)
    item = _item(r["payload"]) if r else None
    return (item, r["updated_at"]) if r and item else None


def record_read(store: Store, rid: str, content_id: str, building: str | None) -> str:
    read_id = new_id("rd")
    with store.transaction():
        seen = _row(
            store,
            "SELECT 1 AS x FROM portal_reads WHERE resident_id = ? AND content_id = ? LIMIT 1",
            rid,
            content_id,
        )
        store.db.execute(
            "INSERT INTO portal_reads (id, resident_id, content_id, building, opened_at,"
            " first_read) VALUES (?, ?, ?, ?, ?, ?)",
            (read_id, rid, content_id, building, _iso(_now()), 0 if seen else 1),
        )
    return read_id


def record_dwell(store: Store, rid: str, read_id: str, dwell_ms: int) -> bool:
    """Dwell only grows (beacons may repeat or arrive out of order); capped at 2 h."""
    with store.transaction():
        cur = store.db.execute(
            "UPDATE portal_reads SET dwell_ms = max(dwell_ms, ?) WHERE id = ? AND resident_id = ?",
            (min(max(int(dwell_ms), 0), 7_200_000), read_id, rid),
        )
    return cur.rowcount == 1


def record_ack(store: Store, rid: str, content_id: str) -> bool:
    """True if this is the resident's first acknowledgement of the item."""
    with store.transaction():
        cur = store.db.execute(
            "INSERT INTO portal_acks (resident_id, content_id, acked_at) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (rid, content_id, _iso(_now())),
        )
    return cur.rowcount == 1


def history(store: Store, rid: str) -> dict[str, Any]:
    """One resident's reads (content id -> (last opened, total dwell ms)) and acks."""
    reads = _rows(
        store,
        "SELECT content_id, max(opened_at) AS last, sum(dwell_ms) AS dwell FROM portal_reads"
        " WHERE resident_id = ? GROUP BY content_id",
        rid,
    )
    acks = _rows(store, "SELECT content_id FROM portal_acks WHERE resident_id = ?", rid)
    return {
        "reads": {r["content_id"]: (r["last"], int(r["dwell"] or 0)) for r in reads},
        "acks": {r["content_id"] for r in acks},
    }


def read_log(store: Store, since: datetime) -> list[tuple[str, str, str | None, str]]:
    """(resident, content, building, opened_at) of reads since a time: the co-read basis."""
    rows = _rows(
        store,
        "SELECT resident_id, content_id, building, opened_at FROM portal_reads"
        " WHERE opened_at >= ?",
        _iso(since),
    )
    return [(r["resident_id"], r["content_id"], r["building"], r["opened_at"]) for r in rows]


def local_stats(store: Store) -> list[dict[str, Any]]:
    """Reach per content item on this box (for staff); counts only."""
    return _rows(
        store,
        "SELECT c.id AS content_id, json_extract(c.payload, '$.title') AS title,"
        " (SELECT count(*) FROM portal_reads r WHERE r.content_id = c.id) AS reads,"
        " (SELECT count(DISTINCT resident_id) FROM portal_reads r WHERE r.content_id = c.id)"
        " AS readers,"
        " (SELECT count(*) FROM portal_acks a WHERE a.content_id = c.id) AS acks,"
        " (SELECT coalesce(sum(dwell_ms), 0) / 1000.0 FROM portal_reads r"
        " WHERE r.content_id = c.id) AS dwell_s"
        " FROM screen_content c ORDER BY reads DESC, c.id",
    )


def flush_stats(store: Store, window_start: datetime) -> list[ReadingStats]:
    """Turn everything not yet counted into ReadingStats records (outbox) in one transaction."""
    end = _now()
    out: list[ReadingStats] = []
    with store.transaction():
        reads = _rows(
            store,
            "SELECT content_id, sum(counted = 0) AS reads, sum(counted = 0 AND first_read = 1)"
            " AS new_readers, sum(dwell_ms - dwell_counted_ms) AS dwell FROM portal_reads"
            " WHERE counted = 0 OR dwell_ms > dwell_counted_ms GROUP BY content_id",
        )
        acks = {
            r["content_id"]: r["n"]
            for r in _rows(
                store,
                "SELECT content_id, count(*) AS n FROM portal_acks WHERE counted = 0"
                " GROUP BY content_id",
            )
        }
        by_item: dict[str, dict[str, Any]] = {r["content_id"]: r for r in reads}
        for cid in sorted(set(by_item) | set(acks)):
            r = by_item.get(cid, {})
            rec = ReadingStats(
                id=new_id("rs"),
                content_id=cid,
                window_start=window_start,
                window_end=end,
                reads=int(r.get("reads") or 0),
                new_readers=int(r.get("new_readers") or 0),
                acks=int(acks.get(cid, 0)),
                dwell_s=round(int(r.get("dwell") or 0) / 1000.0, 3),
            )
            store.emit(rec)
            out.append(rec)
        store.db.execute(
            "UPDATE portal_reads SET counted = 1, dwell_counted_ms = dwell_ms"
            " WHERE counted = 0 OR dwell_ms > dwell_counted_ms"
        )
        store.db.execute("UPDATE portal_acks SET counted = 1 WHERE counted = 0")
    return out
