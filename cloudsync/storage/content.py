"""Published content files and ops users."""

from __future__ import annotations

from typing import Any

from cloudsync.storage.base import StorageBase, StorageError, utcnow


class ContentStorage(StorageBase):
    # --- content and ops users ------------------------------------------------------------

    async def content_add(self, sha: str, size: int, mime: str, title: str, by: str) -> None:
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO content (sha256, size_bytes, mime, title, created_by, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                sha,
                size,
                mime,
                title,
                by,
                utcnow(),
            )

    async def content_get(self, sha: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow("SELECT * FROM content WHERE sha256 = $1", sha)

    async def content_list(self, after: str, limit: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT * FROM content WHERE sha256 > $1 ORDER BY sha256 LIMIT $2", after, limit
            )

    async def ops_user_add(
        self, name: str, token_hash: str, role: str, area_id: str | None
    ) -> None:
        async with self.tx() as c:
            if area_id and not await c.fetchrow("SELECT id FROM areas WHERE id = $1", area_id):
                raise StorageError(f"area: no area {area_id!r}")
            if await c.fetchrow("SELECT name FROM ops_users WHERE name = $1", name):
                raise StorageError(f"name: ops user {name!r} exists")
            await c.execute(
                "INSERT INTO ops_users (name, token_hash, role, area_id, created_at)"
                " VALUES ($1, $2, $3, $4, $5)",
                name,
                token_hash,
                role,
                area_id,
                utcnow(),
            )

    async def ops_user_by_token(self, token_hash: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow(
                "SELECT u.name, u.role, u.area_id, coalesce(a.path, '/') AS scope FROM ops_users u"
                " LEFT JOIN areas a ON a.id = u.area_id WHERE u.token_hash = $1",
                token_hash,
            )
