"""Outbox reading and acknowledging, the disk-budget policy, and the applied-feed log.

The outbox rows themselves are written by ``Store.record`` (migration 0001); this module is
what the sync client (edge/sync/) uses to drain them. Order: priority class first (alerts
before telemetry), then ``seq`` within a class, so per-box order holds inside every class and
the cloud can order by ``seq`` overall.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

from edge.core.standard import Priority
from edge.core.store.core import Store

FEED_CURSOR = "sync_feed_cursor"


class OutboxRow(NamedTuple):  # a tuple: built ~2x faster than a frozen dataclass per row
    seq: int
    priority: int
    kind: str
    record_id: str
    ts: str
    payload: str
    bytes: int


def outbox_batch(store: Store, max_records: int, max_bytes: int) -> list[OutboxRow]:
    """The next rows to send: highest priority first, in seq order, within both limits."""
    with store.reading():
        rows = store.db.execute(
            "SELECT seq, priority, kind, record_id, ts, payload, bytes FROM outbox"
            " ORDER BY priority, seq LIMIT ?",
            (max_records,),
        ).fetchall()
    out: list[OutboxRow] = []
    size = 0
    for r in rows:
        if out and (size + r[6] > max_bytes or r[1] != out[0].priority):
            break  # one class per batch keeps a batch's seqs close together
        out.append(OutboxRow(*r))
        size += r[6]
    return out


def outbox_batch_after(
    store: Store, priority: int, after_seq: int, max_records: int, max_bytes: int
) -> list[OutboxRow]:
    """The batch that follows one in flight: same class, seqs after it (read ahead)."""
    with store.reading():
        rows = store.db.execute(
            "SELECT seq, priority, kind, record_id, ts, payload, bytes FROM outbox"
            " WHERE priority = ? AND seq > ? ORDER BY priority, seq LIMIT ?",
            (priority, after_seq, max_records),
        ).fetchall()
    out: list[OutboxRow] = []
    size = 0
    for r in rows:
        if out and size + r[6] > max_bytes:
            break
        out.append(OutboxRow(*r))
        size += r[6]
    return out


def outbox_more_urgent(store: Store, priority: int) -> bool:
    """Whether a row of a more urgent class is waiting (it goes before a read-ahead batch)."""
    with store.reading():
        row = store.db.execute(
            "SELECT 1 FROM outbox WHERE priority < ? LIMIT 1", (priority,)
        ).fetchone()
    return row is not None


def outbox_ack(store: Store, seqs: list[int]) -> int:
    """Delete rows the cloud stored. Idempotent: deleting a deleted row is a no-op."""
    with store.transaction() as db:
        before = db.conn.total_changes
        db.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])
        return db.conn.total_changes - before


def outbox_floor(store: Store) -> int:
    """The lowest seq still owed to the cloud: everything below was sent or dropped."""
    with store.reading():
        row = store.db.execute("SELECT min(seq) FROM outbox").fetchone()
        if row[0] is not None:
            return row[0]
        nxt = store.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
    return (nxt[0] if nxt else 0) + 1


def outbox_by_class(store: Store) -> dict[int, tuple[int, int]]:
    with store.reading():
        rows = store.db.execute(
            "SELECT priority, count(*), coalesce(sum(bytes), 0) FROM outbox GROUP BY priority"
        ).fetchall()
    return {p: (n, b) for p, n, b in rows}


def drop_telemetry(store: Store, budget_bytes: int) -> tuple[int, int]:
    """Declared policy: over budget, drop telemetry oldest-first until under it; nothing else
    is ever dropped. Returns (rows, bytes) dropped."""
    with store.transaction() as db:
        total = db.execute("SELECT coalesce(sum(bytes), 0) FROM outbox").fetchone()[0]
        excess = total - budget_bytes
        if excess <= 0:
            return 0, 0
        cut, freed, rows = None, 0, 0
        for seq, size in db.execute(
            "SELECT seq, bytes FROM outbox WHERE priority = ? ORDER BY seq",
            (int(Priority.TELEMETRY),),
        ):
            cut, freed, rows = seq, freed + size, rows + 1
            if freed >= excess:
                break
        if cut is None:
            return 0, 0
        db.execute(
            "DELETE FROM outbox WHERE priority = ? AND seq <= ?", (int(Priority.TELEMETRY), cut)
        )
        return rows, freed


def drop_for_budget(store: Store, budget_bytes: int) -> tuple[int, int]:
    """The disk policy: over budget, drop telemetry oldest-first, then proof of play
    oldest-first (with the box's own play_records rows), until under it. Alerts, access
    events, reports and tickets are never dropped. Returns (rows, bytes) dropped."""
    rows, freed = drop_telemetry(store, budget_bytes)
    with store.transaction() as db:
        total = db.execute("SELECT coalesce(sum(bytes), 0) FROM outbox").fetchone()[0]
        excess = total - budget_bytes
        if excess <= 0:
            return rows, freed
        cut, gone, ids = None, 0, []
        for seq, size, rid in db.execute(
            "SELECT seq, bytes, record_id FROM outbox WHERE priority = ? ORDER BY seq",
            (int(Priority.PLAY),),
        ):
            cut, gone = seq, gone + size
            ids.append(rid)
            if gone >= excess:
                break
        if cut is None:
            return rows, freed
        db.execute("DELETE FROM outbox WHERE priority = ? AND seq <= ?", (int(Priority.PLAY), cut))
        for i in ids:
            db.execute("DELETE FROM play_records WHERE id = ?", (i,))
    return rows + len(ids), freed + gone


def feed_applied(store: Store, feed_id: int) -> bool:
    with store.reading():
        row = store.db.execute(
            "SELECT 1 FROM sync_feed_applied WHERE feed_id = ?", (feed_id,)
        ).fetchone()
    return row is not None


def feed_mark(
    store: Store,
    feed_id: int,
    target_kind: str,
    target_id: str,
    action: str,
    ok: bool,
    detail: str,
) -> None:
    """Log an applied feed item and move the cursor past it, in one transaction."""
    with store.transaction() as db:
        db.execute(
            "INSERT OR REPLACE INTO sync_feed_applied VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                feed_id,
                target_kind,
                target_id,
                action,
                int(ok),
                detail[:500],
                datetime.now(UTC).isoformat(),
            ),
        )
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            " WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
            (FEED_CURSOR, str(feed_id)),
        )


def feed_cursor(store: Store) -> int:
    return int(store.get_meta(FEED_CURSOR, "0") or 0)


FEED_OF = "sync_feed_of"  # the identity (cloud URL, box id) the cursor and applied ids are of


def feed_start(store: Store, cloud: str, box_id: str) -> int:
    """The feed cursor for this identity. Provisioned again (another cloud, whose feed ids
    start at 1 again, or another box id) the feed starts from 0, and the ids applied from the
    old feed no longer mark new items as seen. A box from before this key keeps its cursor."""
    owner = f"{cloud} {box_id}"
    with store.transaction() as db:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (FEED_OF,)).fetchone()
        if row is not None and row[0] != owner:
            db.execute("DELETE FROM meta WHERE key = ?", (FEED_CURSOR,))
            db.execute("DELETE FROM sync_feed_applied")
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (FEED_OF, owner),
        )
    return feed_cursor(store)


def feed_log(store: Store, limit: int = 50) -> list[dict]:
    with store.reading():
        return list(
            store.db.query("SELECT * FROM sync_feed_applied ORDER BY feed_id DESC LIMIT ?", [limit])
        )


def outbox_rows(store: Store, limit: int = 1000) -> list[OutboxRow]:
    """Rows still owed, in seq order (inspection and tests)."""
    with store.reading():
        rows = store.db.execute(
            "SELECT seq, priority, kind, record_id, ts, payload, bytes FROM outbox"
            " ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
    return [OutboxRow(*r) for r in rows]


# --- quarantine: records the cloud refused as bad input (migration 0502) ----------------------


def outbox_quarantine(store: Store, seq: int, reason: str) -> bool:
    """Move one outbox row into the quarantine, in one transaction (False: no such row)."""
    with store.transaction() as db:
        moved = db.execute(
            "INSERT INTO sync_quarantine (seq, ts, priority, kind, record_id, payload, bytes,"
            " reason, quarantined_at) SELECT seq, ts, priority, kind, record_id, payload, bytes,"
            " ?, ? FROM outbox WHERE seq = ?",
            (reason[:1000], datetime.now(UTC).isoformat(), seq),
        ).rowcount
        db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
    return moved == 1


def quarantine_list(store: Store, limit: int = 100) -> list[dict]:
    with store.reading():
        return list(
            store.db.query(
                "SELECT seq, priority, kind, record_id, ts, bytes, reason, quarantined_at"
                " FROM sync_quarantine ORDER BY seq LIMIT ?",
                [limit],
            )
        )


def quarantine_count(store: Store) -> int:
    with store.reading():
        return store.db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0]


def quarantine_resend(store: Store, seqs: list[int] | None = None) -> int:
    """Put quarantined rows back into the outbox under their own seq (all when ``seqs`` is
    None), in one transaction; the sync client sends them with their class."""
    where, args = ("", []) if seqs is None else (
        f" WHERE seq IN ({', '.join('?' * len(seqs))})", list(seqs)
    )  # fmt: skip
    with store.transaction() as db:
        n = db.execute(
            "INSERT OR IGNORE INTO outbox (seq, ts, priority, kind, record_id, payload, bytes)"
            " SELECT seq, ts, priority, kind, record_id, payload, bytes FROM sync_quarantine"
            + where,
            args,
        ).rowcount
        db.execute("DELETE FROM sync_quarantine" + where, args)
    return n
