"""Screens' SQL (issue 5): content, playlists, schedules, emergencies, play records, cache index.

Each function takes the :class:`Store` and runs on the store thread (``await
box.store.run(screens.fn, store, ...)``). Definitions are kept as standard payloads so what the
cloud sent is what the player sees; each change is journalled (``store.emit``) in the same
transaction so MQTT subscribers see it too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from edge.core.standard import (
    ContentItem,
    Emergency,
    Playlist,
    PlayRecord,
    Record,
    ScheduleEntry,
    Screen,
)
from edge.core.store.core import Store

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _json(rec: Record) -> str:
    return json.dumps(rec.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


# --- definitions --------------------------------------------------------------------------------


def put_content(store: Store, item: ContentItem) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO screen_content (id, kind, sha256, payload, updated_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256,"
            " payload = excluded.payload, updated_at = excluded.updated_at",
            (item.id, item.kind, item.sha256, _json(item), _now()),
        )
        store.emit(item)


def put_playlist(store: Store, pl: Playlist) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO screen_playlists (id, payload, updated_at) VALUES (?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET payload = excluded.payload,"
            " updated_at = excluded.updated_at",
            (pl.id, _json(pl), _now()),
        )
        store.emit(pl)


def put_schedule(store: Store, entry: ScheduleEntry) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO screen_schedules (id, playlist_id, payload, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET playlist_id = excluded.playlist_id,"
            " payload = excluded.payload, updated_at = excluded.updated_at",
            (entry.id, entry.playlist_id, _json(entry), _now()),
        )
        store.emit(entry)


def delete_schedule(store: Store, entry_id: str) -> bool:
    with store.transaction():
        cur = store.db.execute("DELETE FROM screen_schedules WHERE id = ?", (entry_id,))
    return cur.rowcount > 0


def put_emergency(store: Store, em: Emergency) -> None:
    """Store (or update) an emergency. One already ended stays ended: sent again with the same
    id (a replayed feed, a retried command) it does not come back on the screens; a new
    broadcast has a new id."""
    with store.transaction():
        row = store.db.execute(
            "SELECT cancelled_at FROM screen_emergencies WHERE id = ?", (em.id,)
        ).fetchone()
        if row is not None and row[0] is not None:
            ended = datetime.fromisoformat(row[0])
            if em.cancelled_at is None or em.cancelled_at > ended:
                em = em.model_copy(update={"cancelled_at": ended})
        store.db.execute(
            "INSERT INTO screen_emergencies (id, starts_at, expires_at, cancelled_at, payload,"
            " updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
            " starts_at = excluded.starts_at, expires_at = excluded.expires_at,"
            " cancelled_at = excluded.cancelled_at, payload = excluded.payload,"
            " updated_at = excluded.updated_at",
            (
                em.id,
                em.starts_at.isoformat(),
                em.expires_at.isoformat(),
                em.cancelled_at.isoformat() if em.cancelled_at else None,
                _json(em),
                _now(),
            ),
        )
        store.emit(em)


def cancel_emergency(store: Store, em_id: str, at: datetime) -> Emergency | None:
    """Mark an emergency cancelled at ``at``; None if there is no such emergency."""
    with store.transaction():
        row = store.db.execute(
            "SELECT payload FROM screen_emergencies WHERE id = ?", (em_id,)
        ).fetchone()
        if row is None:
            return None
        em = Emergency.model_validate(json.loads(row[0]))
        if em.cancelled_at is None or em.cancelled_at > at:
            em = em.model_copy(update={"cancelled_at": at})
            put_emergency(store, em)
    return em


def put_screen(store: Store, screen: Screen) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO screens (id, payload, updated_at) VALUES (?,?,?) ON CONFLICT (id)"
            " DO UPDATE SET payload = excluded.payload, updated_at = excluded.updated_at",
            (screen.id, _json(screen), _now()),
        )
        store.emit(screen)


def _load(store: Store, sql: str, cls: type[Record], *args: Any) -> list[Any]:
    with store.reading():
        rows = store.db.execute(sql, args).fetchall()
    out = []
    for r in rows:
        try:
            out.append(cls.model_validate(json.loads(r[0])))
        except ValidationError as e:  # stored before a rule existed (e.g. javascript: links)
            log.warning("screens: skipping a stored %s today's rules refuse: %s", cls.KIND, e)
    return out


def list_content(store: Store) -> list[ContentItem]:
    return _load(store, "SELECT payload FROM screen_content ORDER BY id", ContentItem)


def get_content(store: Store, content_id: str) -> ContentItem | None:
    found = _load(store, "SELECT payload FROM screen_content WHERE id = ?", ContentItem, content_id)
    return found[0] if found else None


def content_by_sha(store: Store, sha256: str) -> list[ContentItem]:
    return _load(store, "SELECT payload FROM screen_content WHERE sha256 = ?", ContentItem, sha256)


def list_playlists(store: Store) -> list[Playlist]:
    return _load(store, "SELECT payload FROM screen_playlists ORDER BY id", Playlist)


def list_schedules(store: Store) -> list[ScheduleEntry]:
    return _load(store, "SELECT payload FROM screen_schedules ORDER BY id", ScheduleEntry)


def list_emergencies(store: Store, ended_after: datetime | None = None) -> list[Emergency]:
    """Emergencies, only those still running or ending after ``ended_after`` if given."""
    if ended_after is None:
        return _load(store, "SELECT payload FROM screen_emergencies ORDER BY starts_at", Emergency)
    since = ended_after.astimezone(UTC).isoformat()
    # ISO strings in UTC compare in time order; payloads are re-checked by the resolver.
    return _load(
        store,
        "SELECT payload FROM screen_emergencies WHERE expires_at > ?"
        " AND (cancelled_at IS NULL OR cancelled_at > ?) ORDER BY starts_at",
        Emergency,
        since,
        since,
    )


def list_screens(store: Store) -> list[Screen]:
    return _load(store, "SELECT payload FROM screens ORDER BY id", Screen)


@dataclass(frozen=True)
class Definitions:
    items: list[ContentItem]
    playlists: list[Playlist]
    schedules: list[ScheduleEntry]
    emergencies: list[Emergency]
    screens: list[Screen]
    cached: set[str]  # sha256 of verified cached files


def load_definitions(store: Store, ended_after: datetime) -> Definitions:
    """Everything the resolver needs, read in one go on the store thread."""
    with store.reading():
        cached = {r[0] for r in store.db.execute("SELECT sha256 FROM content_cache")}
    return Definitions(
        list_content(store),
        list_playlists(store),
        list_schedules(store),
        list_emergencies(store, ended_after),
        list_screens(store),
        cached,
    )


# --- proof of play -------------------------------------------------------------------------------


def record_plays(store: Store, plays: list[PlayRecord]) -> list[str]:
    """Store play records not seen before (with their outbox rows) in one transaction.

    Returns the ids now known to the box (new and already stored): the player forgets exactly
    those, so a report re-sent after a lost answer is stored, and synced, once.
    """
    known = []
    with store.transaction():
        for p in plays:
            exists = store.db.execute("SELECT 1 FROM play_records WHERE id = ?", (p.id,)).fetchone()
            if exists is None:
                store.db.execute(
                    "INSERT INTO play_records (id, screen_id, content_id, started_at, ended_at,"
                    " duration_ms, received_at) VALUES (?,?,?,?,?,?,?)",
                    (
                        p.id,
                        p.screen_id,
                        p.content_id,
                        p.started_at.astimezone(UTC).isoformat(),
                        p.ended_at.astimezone(UTC).isoformat(),
                        p.duration_ms,
                        _now(),
                    ),
                )
                store.emit(p)
            known.append(p.id)
    return known


def recent_plays(store: Store, screen_id: str | None = None, limit: int = 100) -> list[dict]:
    sql = "SELECT * FROM play_records"
    args: tuple = ()
    if screen_id is not None:
        sql += " WHERE screen_id = ?"
        args = (screen_id,)
    with store.reading():
        return list(store.db.query(sql + " ORDER BY started_at DESC LIMIT ?", (*args, limit)))


# --- player liveness ---------------------------------------------------------------------------


def player_states(store: Store) -> dict[str, dict]:
    with store.reading():
        return {r["screen_id"]: r for r in store.db.query("SELECT * FROM screen_players")}


def set_player_state(
    store: Store, screen_id: str, state: str, last_seen: str | None, health: Record | None
) -> None:
    """Update a player's state and, on a change, store its device-health record (one tx)."""
    with store.transaction():
        store.db.execute(
            "INSERT INTO screen_players (screen_id, state, last_seen, since) VALUES (?,?,?,?)"
            " ON CONFLICT (screen_id) DO UPDATE SET state = excluded.state,"
            " last_seen = coalesce(excluded.last_seen, screen_players.last_seen),"
            " since = CASE WHEN screen_players.state = excluded.state THEN screen_players.since"
            " ELSE excluded.since END",
            (screen_id, state, last_seen, _now()),
        )
        if health is not None:
            store.record(health)


# --- content cache index ----------------------------------------------------------------------


def cache_put(store: Store, sha256: str, size: int, mtime_ns: int) -> None:
    now = _now()
    with store.transaction():
        store.db.execute(
            "INSERT INTO content_cache (sha256, size, mtime_ns, verified_at, last_used)"
            " VALUES (?,?,?,?,?) ON CONFLICT (sha256) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, verified_at = excluded.verified_at",
            (sha256, size, mtime_ns, now, now),
        )


def cache_get(store: Store, sha256: str) -> dict | None:
    with store.reading():
        rows = list(store.db.query("SELECT * FROM content_cache WHERE sha256 = ?", (sha256,)))
    return rows[0] if rows else None


def cache_touch(store: Store, sha256: str) -> None:
    with store.transaction():
        store.db.execute(
            "UPDATE content_cache SET last_used = ? WHERE sha256 = ?", (_now(), sha256)
        )


def cache_remove(store: Store, sha256: str) -> None:
    with store.transaction():
        store.db.execute("DELETE FROM content_cache WHERE sha256 = ?", (sha256,))


def cache_entries(store: Store) -> list[dict]:
    """Cached files, least recently used first."""
    with store.reading():
        return list(store.db.query("SELECT * FROM content_cache ORDER BY last_used, sha256"))


# --- screen device keys ----------------------------------------------------------------------


def set_screen_key(store: Store, screen_id: str, key_hash: str, by: str | None) -> None:
    """Provision (or rotate: the old key stops working) the key of a screen."""
    with store.transaction():
        store.db.execute(
            "INSERT INTO screen_keys (screen_id, key_hash, created_by, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (screen_id) DO UPDATE SET"
            " key_hash = excluded.key_hash, created_by = excluded.created_by,"
            " created_at = excluded.created_at",
            (screen_id, key_hash, by, _now()),
        )


def delete_screen_key(store: Store, screen_id: str) -> bool:
    with store.transaction():
        cur = store.db.execute("DELETE FROM screen_keys WHERE screen_id = ?", (screen_id,))
    return cur.rowcount > 0


def screen_keys(store: Store) -> dict[str, str]:
    """screen id -> SHA-256 hex of its key."""
    with store.reading():
        return dict(store.db.execute("SELECT screen_id, key_hash FROM screen_keys").fetchall())
