"""Resident boards: posts, flags, moderation."""

from __future__ import annotations

import json
from typing import Any

from edge.core.standard import BoardPost
from edge.core.store.core import Store
from edge.portal.store.base import PortalError, _iso, _now, _row, _rows


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
