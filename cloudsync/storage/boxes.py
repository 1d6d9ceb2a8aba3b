"""Claim codes, boxes, their secrets, heartbeats and nonces."""

from __future__ import annotations

import json
from typing import Any

from cloudsync.storage.base import (
    BOX_GET,
    NONCE_INSERT,
    StorageBase,
    StorageError,
    prune_nonces,
    utcnow,
)


class BoxStorage(StorageBase):
    # --- claim codes and boxes ------------------------------------------------------------

    async def claim_create(
        self, code_hash: str, community_id: str, by: str, expires_at: str
    ) -> None:
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO claim_codes (code_hash, community_id, created_by, created_at,"
                " expires_at) VALUES ($1, $2, $3, $4, $5)",
                code_hash,
                community_id,
                by,
                utcnow(),
                expires_at,
            )

    async def claim_use(
        self, code_hash: str, box_id: str, secret: str, name: str, version: str
    ) -> dict[str, Any]:
        """Exchange a claim code for a new box, once; returns the box's community."""
        now = utcnow()
        async with self.tx() as c:
            # The conditional UPDATE is the once-only guard, also across worker processes.
            used = await c.execute(
                "UPDATE claim_codes SET used_at = $1, box_id = $2"
                " WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1",
                now,
                box_id,
                code_hash,
            )
            if used != 1:
                raise StorageError("claim_code: unknown, used or expired")
            claim = await c.fetchrow(
                "SELECT community_id FROM claim_codes WHERE code_hash = $1", code_hash
            )
            await c.execute(
                "INSERT INTO boxes (id, community_id, name, secret, created_at, software_version)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                box_id,
                claim["community_id"],
                name,
                secret,
                now,
                version,  # type: ignore
            )
            return await c.fetchrow(
                "SELECT * FROM areas WHERE id = $1",
                claim["community_id"],  # type: ignore
            )  # type: ignore

    async def box_get(self, box_id: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow(BOX_GET, box_id)

    async def community_boxes(self, community_id: str) -> list[str]:
        """The community's boxes (not revoked), by id: what a resident's link names. One
        index lookup (boxes_by_community), not every box of the network."""
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT id FROM boxes WHERE community_id = $1 AND revoked_at IS NULL"
                " ORDER BY id",
                community_id,
            )
        return [r["id"] for r in rows]

    async def box_set_secret(self, box_id: str, secret: str, prev: str | None) -> None:
        async with self.tx() as c:
            await c.execute(
                "UPDATE boxes SET secret = $1, prev_secret = $2 WHERE id = $3", secret, prev, box_id
            )

    async def box_revoke(self, box_id: str) -> None:
        async with self.tx() as c:
            await c.execute(
                "UPDATE boxes SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                utcnow(),
                box_id,
            )

    async def box_heartbeat(
        self, box_id: str, version: str, devices: list, rows: int, size: int, cursor: int
    ) -> None:
        async with self.tx() as c:
            await c.execute(
                f"UPDATE boxes SET last_seen_at = $1, software_version = $2,"
                f" devices = {self.json_param(3)}, outbox_rows = $4, outbox_bytes = $5,"
                f" feed_cursor = $6 WHERE id = $7",
                utcnow(),
                version,
                json.dumps(devices, ensure_ascii=False),
                rows,
                size,
                cursor,
                box_id,
            )

    def json_param(self, n: int) -> str:
        return f"${n}"

    async def boxes_list(self, scope: str, after: str, limit: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT b.id, b.community_id, b.name, b.created_at, b.revoked_at,"
                " b.last_seen_at, b.software_version, b.devices, b.outbox_rows, b.outbox_bytes,"
                " b.acked_seq, b.feed_cursor, a.path AS area_path FROM boxes b JOIN areas a"
                " ON a.id = b.community_id WHERE substr(a.path, 1, length($1)) = $1"
                " AND b.id > $2 ORDER BY b.id LIMIT $3",
                scope,
                after,
                limit,
            )
        for r in rows:
            r["devices"] = json.loads(r["devices"])
        return rows

    async def use_nonce(self, box_id: str, nonce: str, ts: int, older_than: int) -> bool:
        """False if this nonce was seen (a replay); forgets nonces outside the window."""
        async with self.tx() as c:
            await self.relax_commit(c)
            n = await c.execute(NONCE_INSERT, box_id, nonce, ts)
            await prune_nonces(c, ts, older_than)
        return n == 1
