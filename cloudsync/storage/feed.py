"""The download feed: commands and content for boxes."""

from __future__ import annotations

import json
from typing import Any

from cloudsync.storage.base import StorageBase, utcnow

FEED_AFTER = (
    "SELECT id, target_kind, target_id, action, args, created_at, expires_at"
    " FROM feed WHERE box_id = $1 AND id > $2 ORDER BY id LIMIT $3"
)


class Notified:
    """A feed item as a notification carried it (its JSON without the id), shared by every
    box it went to: decoded and encoded once per notification, not once per box."""

    __slots__ = ("expires_at", "members")

    def __init__(self, text: str) -> None:
        self.expires_at: str | None = json.loads(text).get("expires_at")
        self.members = text[1:-1].encode()  # '"target_kind":...' without the braces


FeedWake = tuple[int, Notified]  # (feed id of the item for that box, the item)


class FeedStorage(StorageBase):
    # --- download feed --------------------------------------------------------------------

    async def feed_add(
        self,
        box_ids: list[str],
        target_kind: str,
        target_id: str,
        action: str,
        args: dict[str, Any],
        by: str,
        expires_at: str | None,
    ) -> list[int]:
        now = utcnow()
        text = json.dumps(args, ensure_ascii=False)
        ids = []
        async with self.tx() as c:
            for box_id in box_ids:
                row = await c.fetchrow(
                    "INSERT INTO feed (box_id, target_kind, target_id, action, args, created_at,"
                    f" expires_at, created_by) VALUES ($1, $2, $3, $4, {self.json_param(5)},"
                    " $6, $7, $8) RETURNING id",
                    box_id,
                    target_kind,
                    target_id,
                    action,
                    text,
                    now,
                    expires_at,
                    by,
                )
                ids.append(row["id"])  # type: ignore
            await self.notify_feed(c, box_ids)
        return ids

    async def emergency_sender(self, emergency_id: str) -> str | None:
        """The ops user who sent the emergency broadcast with this id (None: not in the feed,
        e.g. pruned, or an id never sent). Index feed_emergency_ids (migration 0014 / 0009)."""
        async with self.tx() as c:
            row = await c.fetchrow(
                f"SELECT created_by FROM feed WHERE action = 'emergency'"
                f" AND {self.jtext('args', 'id')} = $1 ORDER BY id LIMIT 1",
                emergency_id,
            )
        return None if row is None else str(row["created_by"])

    async def feed_after(self, box_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            rows = await c.fetch(FEED_AFTER, box_id, after, limit)
        for r in rows:
            r["args"] = json.loads(r["args"])
        return rows

    async def boxes_for_targets(self, scope: str, areas: list[str], boxes: list[str]) -> list[str]:
        """Box ids (not revoked) inside the caller's scope and any of the areas / boxes."""
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT b.id, b.id AS box, a.path FROM boxes b JOIN areas a"
                " ON a.id = b.community_id WHERE b.revoked_at IS NULL"
                " AND substr(a.path, 1, length($1)) = $1 ORDER BY b.id",
                scope,
            )
        wanted_areas = [f"/{a}/" for a in areas]
        return [
            r["id"] for r in rows if r["id"] in boxes or any(w in r["path"] for w in wanted_areas)
        ]

    async def target_paths(
        self, areas: list[str], boxes: list[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Area paths of the named areas and of the named boxes' communities (known ones)."""

        def marks(n: int) -> str:
            return ", ".join(f"${i + 1}" for i in range(n))

        async with self.tx() as c:
            a = await c.fetch(
                f"SELECT id, path FROM areas WHERE id IN ({marks(len(areas))})", *areas
            ) if areas else []  # fmt: skip
            b = await c.fetch(
                "SELECT b.id, a.path FROM boxes b JOIN areas a ON a.id = b.community_id"
                f" WHERE b.id IN ({marks(len(boxes))})", *boxes
            ) if boxes else []  # fmt: skip
        return {r["id"]: r["path"] for r in a}, {r["id"]: r["path"] for r in b}
