"""Published content files and ops users."""

from __future__ import annotations

from typing import Any

from cloudsync.storage.base import NotFound, StorageBase, StorageError, utcnow


class ContentStorage(StorageBase):
    # --- content and ops users ------------------------------------------------------------

    async def content_add(
        self, sha: str, size: int, mime: str, title: str, by: str, scope: str
    ) -> None:
        """Store a file's metadata once and put it in the uploader's area library."""
        now = utcnow()
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO content (sha256, size_bytes, mime, title, created_by, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                sha,
                size,
                mime,
                title,
                by,
                now,
            )
            await c.execute(
                "INSERT INTO content_scopes (sha256, scope, created_by, created_at, title)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                sha,
                scope,
                by,
                now,
                title,
            )

    # A caller sees files uploaded inside its area and those of the areas above it (a city's
    # library is meant for its districts), never a sibling district's.
    VISIBLE = (
        " AND EXISTS (SELECT 1 FROM content_scopes s WHERE s.sha256 = content.sha256"
        " AND (substr(s.scope, 1, length($1)) = $1 OR substr($1, 1, length(s.scope)) = s.scope))"
    )

    # Title, uploader and time as the caller's library has them (probe 12: a file uploaded
    # in two districts showed each the other's): its own area's row, else the first one it
    # sees. The file itself (size, type) is the same for all.
    COLUMNS = (
        "SELECT content.sha256, content.size_bytes, content.mime, s.title, s.created_by,"
        " s.created_at FROM content JOIN content_scopes s ON s.sha256 = content.sha256"
        " AND s.scope = (SELECT v.scope FROM content_scopes v WHERE v.sha256 = content.sha256"
        " AND (substr(v.scope, 1, length($1)) = $1 OR substr($1, 1, length(v.scope)) = v.scope)"
        " ORDER BY CASE WHEN v.scope = $1 THEN 0 ELSE 1 END, v.created_at, v.scope LIMIT 1)"
    )

    async def content_get(self, sha: str, scope: str = "/") -> dict[str, Any] | None:
        """A file's metadata if visible from ``scope`` ("/": any, as for a box)."""
        async with self.tx() as c:
            return await c.fetchrow(
                self.COLUMNS + " WHERE content.sha256 = $2" + self.VISIBLE, scope, sha
            )

    async def content_list(self, scope: str, after: str, limit: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                self.COLUMNS + " WHERE content.sha256 > $2" + self.VISIBLE
                + " ORDER BY content.sha256 LIMIT $3",
                scope,
                after,
                limit,
            )  # fmt: skip

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

    async def ops_user_set_token(self, name: str, token_hash: str) -> None:
        async with self.tx() as c:
            n = await c.execute(
                "UPDATE ops_users SET token_hash = $1 WHERE name = $2", token_hash, name
            )
        if n != 1:
            raise NotFound(f"name: no ops user {name!r}")

    async def ops_user_remove(self, name: str) -> None:
        async with self.tx() as c:
            n = await c.execute("DELETE FROM ops_users WHERE name = $1", name)
        if n != 1:
            raise NotFound(f"name: no ops user {name!r}")

    async def ops_user_by_token(self, token_hash: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow(
                "SELECT u.name, u.role, u.area_id, coalesce(a.path, '/') AS scope FROM ops_users u"
                " LEFT JOIN areas a ON a.id = u.area_id WHERE u.token_hash = $1",
                token_hash,
            )
