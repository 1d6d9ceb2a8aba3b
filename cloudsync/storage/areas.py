"""The area tree (city > district > street > community)."""

from __future__ import annotations

from typing import Any

from cloudsync.storage.base import PARENT_LEVEL, StorageBase, StorageError, utcnow


class AreaStorage(StorageBase):
    # --- areas ----------------------------------------------------------------------------

    async def area_create(
        self, area_id: str, level: str, name: str, parent_id: str | None
    ) -> dict[str, Any]:
        async with self.tx() as c:
            if level == "city":
                if parent_id is not None:
                    raise StorageError("parent_id: a city has no parent")
                path = f"/{area_id}/"
            else:
                parent = await c.fetchrow("SELECT * FROM areas WHERE id = $1", parent_id)
                if parent is None:
                    raise StorageError(f"parent_id: no area {parent_id!r}")
                if parent["level"] != PARENT_LEVEL[level]:
                    raise StorageError(
                        f"parent_id: a {level} belongs to a {PARENT_LEVEL[level]},"
                        f" {parent_id!r} is a {parent['level']}"
                    )
                path = f"{parent['path']}{area_id}/"
            if await c.fetchrow("SELECT id FROM areas WHERE id = $1", area_id):
                raise StorageError(f"id: area {area_id!r} exists")
            await c.execute(
                "INSERT INTO areas (id, parent_id, level, name, path, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                area_id,
                parent_id,
                level,
                name,
                path,
                utcnow(),
            )
            return await c.fetchrow("SELECT * FROM areas WHERE id = $1", area_id)  # type: ignore

    async def area_get(self, area_id: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow("SELECT * FROM areas WHERE id = $1", area_id)

    async def area_count(self, scope: str, level: str) -> int:
        async with self.tx() as c:
            row = await c.fetchrow(
                "SELECT count(*) AS n FROM areas WHERE substr(path, 1, length($1)) = $1"
                " AND level = $2",
                scope,
                level,
            )
        return int(row["n"]) if row else 0

    async def areas_list(
        self, scope: str, level: str | None, after: str, limit: int
    ) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT * FROM areas WHERE substr(path, 1, length($1)) = $1"
                " AND ($2 = '' OR level = $2) AND id > $3 ORDER BY id LIMIT $4",
                scope,
                level or "",
                after,
                limit,
            )
