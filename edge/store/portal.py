"""The resident portal's SQL (issue 9): logins, reads, acknowledgements, events, boards, counts.

Each function takes the :class:`Store` and runs on the store thread (``await
box.store.run(portal.fn, box.store.sync, ...)``). Secrets are stored only as hashes: login
codes keyed with the box key (:func:`code_hash`), session tokens as SHA-256. Reads and
acknowledgements stay on the box; what leaves it is :class:`ReadingStats` counts, emitted in
the same transaction that marks the rows counted, so every read reaches the outbox exactly
once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from edge.standard import BoardPost, CommunityEvent, ContentItem, ReadingStats, new_id
from edge.store.core import Store, StoreError


class PortalError(StoreError):
    """A portal write was refused (full event, unknown post...); nothing was stored."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (session tokens: 256 random bits)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def code_hash(store: Store, code: str) -> str:
    """How a login code is stored: HMAC-SHA-256 keyed with the box's secret (meta, never
    synced), prefixed ``k1:``. Eight digits are only 10^8 values: a bare SHA-256 of one is
    reversed by trying them all in a second, the keyed hash is not without the key.
    Rows from before (bare SHA-256, no prefix) still log in until they expire."""
    from edge.store.access import box_key

    key = getattr(store, "_portal_code_key", None)
    if key is None:
        key = box_key(store)
        store._portal_code_key = key  # type: ignore[attr-defined]
    return "k1:" + hmac.new(key, f"login-code:{code}".encode(), hashlib.sha256).hexdigest()


def _rows(store: Store, sql: str, *args: Any) -> list[dict[str, Any]]:
    with store.reading():
        return list(store.db.query(sql, args))


def _row(store: Store, sql: str, *args: Any) -> dict[str, Any] | None:
    rows = _rows(store, sql, *args)
    return rows[0] if rows else None


# --- residents, codes and sessions -------------------------------------------------------------


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
    from edge.store import faces  # the registry's own SQL

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
        "SELECT s.id, s.resident_id, s.last_seen, r.name, r.building, r.unit"
        " FROM portal_sessions s JOIN portal_residents r ON r.id = s.resident_id"
        " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?",
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


# --- content for phones ------------------------------------------------------------------------


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


# --- reads and acknowledgements ----------------------------------------------------------------


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


# --- community events --------------------------------------------------------------------------


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


# --- boards ------------------------------------------------------------------------------------


def _post_record(p: dict[str, Any]) -> BoardPost:
    return BoardPost(
        id=p["id"],
        ts=p["created_at"],
        board=p["board"],
        title=p["title"],
        body=p["body"],
        building=p["building"],
        status=p["status"],
        category=p["category"],
    )


def add_post(store: Store, post: BoardPost, author: str) -> BoardPost:
    with store.transaction():
        store.db.execute(
            "INSERT INTO portal_posts (id, board, title, body, author, building, created_at,"
            " status) VALUES (?, ?, ?, ?, ?, ?, ?, 'visible')",
            (post.id, post.board, post.title, post.body, author, post.building, _iso(post.ts)),
        )
        store.emit(post)
    return post


def list_posts(store: Store, board: str, *, include_hidden: bool = False) -> list[dict]:
    """Newest first; hidden posts only for staff. Flagged posts stay visible until moderated."""
    hidden = "" if include_hidden else " AND status != 'hidden'"
    return _rows(
        store,
        "SELECT p.*, (SELECT count(*) FROM portal_flags f WHERE f.post_id = p.id) AS flags"
        f" FROM portal_posts p WHERE board = ?{hidden} ORDER BY created_at DESC LIMIT 200",
        board,
    )


def flag_post(store: Store, pid: str, rid: str, category: str, reason: str) -> BoardPost:
    with store.transaction():
        p = _row(store, "SELECT * FROM portal_posts WHERE id = ?", pid)
        if p is None or p["status"] == "hidden":
            raise PortalError(f"post_id: no visible post {pid!r}")
        store.db.execute(
            "INSERT INTO portal_flags (post_id, resident_id, category, reason, flagged_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (pid, rid, category, reason, _iso(_now())),
        )
        changed = p["status"] != "flagged"
        store.db.execute(
            "UPDATE portal_posts SET status = 'flagged', category = coalesce(category, ?)"
            " WHERE id = ?",
            (category, pid),
        )
        p = _row(store, "SELECT * FROM portal_posts WHERE id = ?", pid)
        rec = _post_record(p)
        if changed:
            store.emit(rec)
    return rec


def moderate_post(
    store: Store, pid: str, action: str, by: str, category: str | None, note: str
) -> BoardPost:
    status = {"hide": "hidden", "restore": "visible"}.get(action)
    if status is None:
        raise PortalError(f"action: expected hide or restore, got {action!r}")
    with store.transaction():
        cur = store.db.execute(
            "UPDATE portal_posts SET status = ?, category = ?, moderated_by = ?,"
            " moderated_at = ?, note = ? WHERE id = ?",
            (status, category if status == "hidden" else None, by, _iso(_now()), note, pid),
        )
        if cur.rowcount != 1:
            raise PortalError(f"post_id: no post {pid!r}")
        if status == "visible":
            store.db.execute("DELETE FROM portal_flags WHERE post_id = ?", (pid,))
        rec = _post_record(_row(store, "SELECT * FROM portal_posts WHERE id = ?", pid))
        store.emit(rec)
    return rec


def flagged_posts(store: Store) -> list[dict[str, Any]]:
    rows = _rows(
        store,
        "SELECT p.*, json_group_array(json_object('category', f.category, 'reason', f.reason))"
        " AS flag_list FROM portal_posts p JOIN portal_flags f ON f.post_id = p.id"
        " WHERE p.status = 'flagged' GROUP BY p.id ORDER BY p.created_at",
    )
    for r in rows:
        r["flag_list"] = json.loads(r["flag_list"])
    return rows
