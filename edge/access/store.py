"""Access control tables (migration 0201_access.sql): door rights, time windows, blocks,
visitor passes and their uses, and the box key that signs passes.

Functions take the :class:`Store`; the daemon runs them on the store thread with
``await box.store.run(access.fn, box.store.sync, ...)``. Times are ISO 8601 UTC strings.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge.core.standard import AccessEvent, VisitorPass, new_id
from edge.core.store.core import Store, StoreError

BOX_KEY = "access.box_key"


class NotFound(StoreError):
    """No such resident, pass or block."""


def iso(dt: datetime | None = None) -> str:
    return (dt or datetime.now(UTC)).astimezone(UTC).isoformat()


def box_key(store: Store) -> bytes:
    """The box's secret for signing passes; made once, kept in the store, never synced."""
    with store.transaction():
        key = store.get_meta(BOX_KEY)
        if key is None:
            key = secrets.token_hex(32)
            store.set_meta(BOX_KEY, key)
    return bytes.fromhex(key)


def _require_resident(store: Store, resident_id: str) -> dict[str, Any]:
    row = store.db.execute(
        "SELECT id, status, doors, building FROM residents WHERE id = ?", (resident_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"resident_id: no resident {resident_id!r}")
    return {"id": row[0], "status": row[1], "doors": json.loads(row[2] or "[]"), "building": row[3]}


# --- policy facts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """Everything the policy needs about one resident, read in one go."""

    resident: dict[str, Any] | None
    rights: list[tuple[str, str]]  # (scope, target); ("all", "*"): every door
    windows: list[dict[str, Any]]
    blocks: list[dict[str, Any]]  # active ones only
    defaults: Defaults = field(default_factory=lambda: NO_DEFAULTS)


@dataclass(frozen=True)
class Defaults:
    """Rights every resident has without a row of their own ([access] default_doors and
    own_building): what the community configured, not stored per resident."""

    doors: frozenset[str] = frozenset()
    own_building: bool = False  # the doors whose building is the resident's building


NO_DEFAULTS = Defaults()


def facts(store: Store, resident_id: str, now_iso: str, defaults: Defaults = NO_DEFAULTS) -> Facts:
    with store.reading():
        try:
            resident = _require_resident(store, resident_id)
        except NotFound:
            return Facts(None, [], [], [], defaults)
        rights = [
            (r[0], r[1])
            for r in store.db.execute(
                "SELECT scope, target FROM door_rights WHERE resident_id = ?", (resident_id,)
            )
        ]
        windows = list(
            store.db.query(
                "SELECT id, door_id, days, start_min, end_min FROM access_windows"
                " WHERE resident_id = ?",
                (resident_id,),
            )
        )
        blocks = list(
            store.db.query(
                "SELECT id, door_id, reason, until FROM access_blocks WHERE resident_id = ?"
                " AND lifted_at IS NULL AND (until IS NULL OR until > ?)",
                (resident_id, now_iso),
            )
        )
    return Facts(resident, rights, windows, blocks, defaults)


# --- rights and windows ------------------------------------------------------------------------


def get_rights(
    store: Store, resident_id: str, defaults: Defaults = NO_DEFAULTS
) -> dict[str, Any]:
    """Everything that decides which doors the resident may open (edge/access/policy.py
    allowed_door): their own rows, the doors on their resident record and the community's
    defaults, so that an editor shows exactly what the box enforces."""
    with store.reading():
        res = _require_resident(store, resident_id)
        rows = list(
            store.db.execute(
                "SELECT scope, target FROM door_rights WHERE resident_id = ? ORDER BY 1, 2",
                (resident_id,),
            )
        )
        windows = list(
            store.db.query(
                "SELECT id, door_id, days, start_min, end_min FROM access_windows"
                " WHERE resident_id = ? ORDER BY id",
                (resident_id,),
            )
        )
    return {
        "resident_id": resident_id,
        "status": res["status"],
        "building": res["building"],
        "resident_doors": res["doors"],
        "all_doors": ("all", "*") in rows,
        "doors": [t for s, t in rows if s == "door"],
        "buildings": [t for s, t in rows if s == "building"],
        "windows": windows,
        "defaults": {"doors": sorted(defaults.doors), "own_building": defaults.own_building},
    }


def set_rights(
    store: Store,
    resident_id: str,
    doors: list[str],
    buildings: list[str],
    windows: list[dict[str, Any]],
    actor: str | None,
    all_doors: bool = False,
    defaults: Defaults = NO_DEFAULTS,
) -> dict[str, Any]:
    """Replace a resident's rights and time windows as a whole (one transaction). Nothing
    given (no doors, buildings nor all_doors) means no door beyond the resident record's and
    the community defaults: removing every right removes access."""
    now = iso()
    with store.transaction():
        _require_resident(store, resident_id)
        store.db.execute("DELETE FROM door_rights WHERE resident_id = ?", (resident_id,))
        store.db.execute("DELETE FROM access_windows WHERE resident_id = ?", (resident_id,))
        for scope, targets in (
            ("door", doors), ("building", buildings), ("all", ["*"] if all_doors else [])
        ):
            for t in dict.fromkeys(targets):
                store.db.execute(
                    "INSERT INTO door_rights (resident_id, scope, target, created_by, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (resident_id, scope, t, actor, now),
                )
        for w in windows:
            store.db.execute(
                "INSERT INTO access_windows (id, resident_id, door_id, days, start_min, end_min,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (new_id("aw"), resident_id, w.get("door_id"), w["days"], w["start_min"],
                 w["end_min"], now),
            )
    return get_rights(store, resident_id, defaults)


# --- blocks ------------------------------------------------------------------------------------


def add_block(
    store: Store, resident_id: str, door_id: str | None, reason: str, until: str | None,
    actor: str | None,
) -> dict[str, Any]:
    bid = new_id("blk")
    with store.transaction():
        _require_resident(store, resident_id)
        store.db.execute(
            "INSERT INTO access_blocks (id, resident_id, door_id, reason, until, created_by,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bid, resident_id, door_id, reason, until, actor, iso()),
        )
    return get_block(store, bid)


def get_block(store: Store, block_id: str) -> dict[str, Any]:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM access_blocks WHERE id = ?", (block_id,)))
    if not rows:
        raise NotFound(f"no block {block_id!r}")
    return rows[0]


def list_blocks(store: Store, resident_id: str | None = None, active_only: bool = True) -> list:
    sql = "SELECT * FROM access_blocks WHERE 1=1"
    args: list[Any] = []
    if resident_id:
        sql += " AND resident_id = ?"
        args.append(resident_id)
    if active_only:
        sql += " AND lifted_at IS NULL AND (until IS NULL OR until > ?)"
        args.append(iso())
    with store.reading():
        return list(store.db.query(sql + " ORDER BY created_at", args))


def lift_block(store: Store, block_id: str, actor: str | None) -> dict[str, Any]:
    with store.transaction():
        cur = store.db.execute(
            "UPDATE access_blocks SET lifted_at = ?, lifted_by = ? WHERE id = ?"
            " AND lifted_at IS NULL",
            (iso(), actor, block_id),
        )
        if cur.rowcount == 0:
            get_block(store, block_id)  # raises NotFound if it does not exist
    return get_block(store, block_id)


# --- visitor passes ----------------------------------------------------------------------------


def pin_in_use(store: Store, pin_hash: str, now_iso: str) -> bool:
    """Whether a pass that has not expired holds this PIN, used up or revoked too: its visitor
    still knows it, and a new pass with it would let them in (security probe 4)."""
    with store.reading():
        row = store.db.execute(
            "SELECT 1 FROM visitor_passes WHERE pin_hash = ? AND valid_to > ?",
            (pin_hash, now_iso),
        ).fetchone()
    return row is not None


def add_pass(
    store: Store, rec: VisitorPass, pin_hash: str, visitor: str, actor: str | None
) -> None:
    with store.transaction():
        _require_resident(store, rec.resident_id)
        if pin_in_use(store, pin_hash, iso()):
            raise StoreError("pin: collides with another active pass; try again")
        store.db.execute(
            "INSERT INTO visitor_passes (id, resident_id, visitor, doors, valid_from, valid_to,"
            " uses_total, uses_left, revoked, pin_hash, created_by, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (rec.id, rec.resident_id, visitor, json.dumps(rec.doors), iso(rec.valid_from),
             iso(rec.valid_to), rec.uses_total, rec.uses_left, pin_hash, actor, iso()),
        )
        store.emit(rec)  # published as an event (no outbox: passes are the box's own)


def _pass_row(r: dict[str, Any]) -> dict[str, Any]:
    r = dict(r)
    r["doors"] = json.loads(r["doors"])
    r["revoked"] = bool(r["revoked"])
    r.pop("pin_hash", None)
    return r


def get_pass(store: Store, pass_id: str) -> dict[str, Any]:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM visitor_passes WHERE id = ?", (pass_id,)))
        if not rows:
            raise NotFound(f"no pass {pass_id!r}")
        uses = list(
            store.db.query(
                "SELECT door_id, method, ts FROM pass_uses WHERE pass_id = ? ORDER BY id",
                (pass_id,),
            )
        )
    out = _pass_row(rows[0])
    out["uses"] = uses
    return out


def list_passes(store: Store, resident_id: str | None = None, limit: int = 100) -> list:
    sql = "SELECT * FROM visitor_passes"
    args: list[Any] = []
    if resident_id:
        sql += " WHERE resident_id = ?"
        args.append(resident_id)
    with store.reading():
        rows = list(store.db.query(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit]))
    return [_pass_row(r) for r in rows]


def revoke_pass(store: Store, pass_id: str) -> dict[str, Any]:
    with store.transaction():
        cur = store.db.execute("UPDATE visitor_passes SET revoked = 1 WHERE id = ?", (pass_id,))
        if cur.rowcount == 0:
            raise NotFound(f"no pass {pass_id!r}")
    return get_pass(store, pass_id)


def find_pass_by_pin(store: Store, pin_hash: str, now_iso: str) -> str | None:
    """The id of the unexpired pass with this PIN (unique: :func:`pin_in_use`). A revoked one
    too: its PIN stays reserved until it expires, and the use is then refused as ``revoked``
    on that pass, not recorded as an unknown PIN (a guess)."""
    with store.reading():
        row = store.db.execute(
            "SELECT id FROM visitor_passes WHERE pin_hash = ? AND valid_to > ?"
            " ORDER BY revoked ASC, uses_left > 0 DESC, created_at DESC LIMIT 1",
            (pin_hash, now_iso),
        ).fetchone()
    return row[0] if row else None


def pass_resident(store: Store, pass_id: str) -> str | None:
    """The resident a pass was issued for (None for an unknown pass)."""
    with store.reading():
        row = store.db.execute(
            "SELECT resident_id FROM visitor_passes WHERE id = ?", (pass_id,)
        ).fetchone()
    return row[0] if row else None


def use_pass(
    store: Store, pass_id: str, door_id: str, method: str, now_iso: str
) -> tuple[str | None, str | None]:
    """Check and consume one use, atomically: (None, resident) if granted, else (reason, ..).

    The decrement is conditional in SQL, so two doors reading the same copied QR at the same
    moment cannot both use the last use.
    """
    with store.transaction():
        row = store.db.execute(
            "SELECT resident_id, doors, valid_from, valid_to, uses_left, revoked"
            " FROM visitor_passes WHERE id = ?",
            (pass_id,),
        ).fetchone()
        if row is None:
            return "unknown_pass", None
        resident_id, doors, vf, vt, left, revoked = row
        if revoked:
            return "revoked", resident_id
        if now_iso < vf:
            return "not_yet_valid", resident_id
        if now_iso >= vt:
            return "expired", resident_id
        if door_id not in json.loads(doors):
            return "wrong_door", resident_id
        cur = store.db.execute(
            "UPDATE visitor_passes SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0",
            (pass_id,),
        )
        if cur.rowcount == 0 or left <= 0:
            return "used_up", resident_id
        store.db.execute(
            "INSERT INTO pass_uses (pass_id, door_id, method, ts) VALUES (?, ?, ?, ?)",
            (pass_id, door_id, method, now_iso),
        )
    return None, resident_id


def unuse_pass(store: Store, pass_id: str, door_id: str, now_iso: str) -> None:
    """Give back the use :func:`use_pass` took when the door then did not open (the relay
    failed): a visitor's pass is spent only on a door that opened."""
    with store.transaction():
        cur = store.db.execute(
            "DELETE FROM pass_uses WHERE id = (SELECT max(id) FROM pass_uses"
            " WHERE pass_id = ? AND door_id = ? AND ts = ?)",
            (pass_id, door_id, now_iso),
        )
        if cur.rowcount:
            store.db.execute(
                "UPDATE visitor_passes SET uses_left = uses_left + 1 WHERE id = ?"
                " AND uses_left < uses_total",
                (pass_id,),
            )


# --- access events -----------------------------------------------------------------------------


def list_events(
    store: Store, door_id: str | None = None, limit: int = 50, decision: str | None = None
) -> list[dict[str, Any]]:
    sql = "SELECT * FROM access_events WHERE 1=1"
    args: list[Any] = []
    if door_id:
        sql += " AND door_id = ?"
        args.append(door_id)
    if decision:
        sql += " AND decision = ?"
        args.append(decision)
    with store.reading():
        rows = list(store.db.query(sql + " ORDER BY ts DESC LIMIT ?", [*args, limit]))
        kept = _with_thumbnail(store, [r["id"] for r in rows])
    for r in rows:
        if r.get("relay_changed") is not None:
            r["relay_changed"] = bool(r["relay_changed"])
        r["has_thumbnail"] = r["id"] in kept
        r["thumbnail_url"] = (f"/api/v1/access/events/{r['id']}/thumbnail.jpg"
                              if r["id"] in kept else None)
    return rows


# --- face thumbnails beside access events (migration 0205; the box only) ----------------------


def _with_thumbnail(store: Store, event_ids: list[str]) -> set[str]:
    if not event_ids:
        return set()
    marks = ",".join("?" * len(event_ids))
    return {r[0] for r in store.db.execute(
        f"SELECT event_id FROM access_thumbnails WHERE event_id IN ({marks})", event_ids)}


def keep_thumbnail(store: Store, event_id: str, resident_id: str | None, jpeg: bytes) -> None:
    """Keep a face JPEG beside its access event (a plain table: no event, no outbox row).
    Not kept when the resident was deleted meanwhile: their pictures go with them, and the
    event is recorded all the same."""
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO access_thumbnails (event_id, resident_id, ts, jpeg)"
            " SELECT ?, ?, ?, ? WHERE ? IS NULL OR EXISTS (SELECT 1 FROM residents WHERE id = ?)",
            (event_id, resident_id, iso(), jpeg, resident_id, resident_id),
        )


def get_thumbnail(store: Store, event_id: str) -> bytes | None:
    with store.reading():
        row = store.db.execute(
            "SELECT jpeg FROM access_thumbnails WHERE event_id = ?", (event_id,)
        ).fetchone()
    return bytes(row[0]) if row else None


def purge_thumbnails(store: Store, before_iso: str) -> int:
    """Remove thumbnails kept before this time; how many went."""
    with store.transaction():
        cur = store.db.execute("DELETE FROM access_thumbnails WHERE ts < ?", (before_iso,))
    return cur.rowcount


def record_event(store: Store, ev: AccessEvent, thumbnail: bytes | None = None) -> None:
    """The event (standard record: journal, outbox) and, beside it on the box only, the face
    thumbnail of its decision, in one transaction."""
    with store.transaction():
        store.record(ev)
        if thumbnail:
            keep_thumbnail(store, ev.id, ev.resident_id, thumbnail)


def door_residents(
    store: Store, door_id: str, building: str | None, defaults: Defaults = NO_DEFAULTS
) -> tuple[frozenset[str], int]:
    """Residents whose rights cover this door (edge/access/policy.allowed_door in SQL: an
    "all doors" right, the door listed, a door right, a right for its building, or the
    community defaults), and how many residents there are in all. Status, blocks and time
    windows stay with the policy. No rights at all: no door."""
    with store.reading():
        total = store.db.execute("SELECT count(*) FROM residents").fetchone()[0]
        if door_id in defaults.doors:
            rows = store.db.execute("SELECT id FROM residents").fetchall()
        else:
            rows = store.db.execute(
                "SELECT r.id FROM residents r WHERE"
                " EXISTS (SELECT 1 FROM json_each(r.doors) j WHERE j.value = ?)"
                " OR (? AND r.building IS NOT NULL AND r.building = ?)"
                " OR EXISTS (SELECT 1 FROM door_rights x WHERE x.resident_id = r.id AND"
                "   ((x.scope = 'door' AND x.target = ?) OR x.scope = 'all'"
                "    OR (x.scope = 'building' AND x.target = ?)))",
                (door_id, defaults.own_building and building is not None, building or "",
                 door_id, building or ""),
            ).fetchall()
    return frozenset(r[0] for r in rows), int(total)
