"""What the console adds: ops users' passwords and sessions, the audit log, the overview's
health rows, the live alert feed and alert acknowledgements (docs/console.md)."""

from __future__ import annotations

import json
from typing import Any

from cloudsync.storage.base import StorageBase, StorageError, in_scope, utcnow


class ConsoleStorage(StorageBase):
    # --- ops users: password, TOTP, sessions -----------------------------------------------

    async def ops_user_get(self, name: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow(
                "SELECT u.name, u.role, u.area_id, u.password_hash, u.totp_secret,"
                " coalesce(a.path, '/') AS scope FROM ops_users u"
                " LEFT JOIN areas a ON a.id = u.area_id WHERE u.name = $1",
                name,
            )

    async def ops_user_set_password(
        self, name: str, password_hash: str, totp_secret: str | None
    ) -> None:
        async with self.tx() as c:
            n = await c.execute(
                "UPDATE ops_users SET password_hash = $1, totp_secret = $2 WHERE name = $3",
                password_hash,
                totp_secret,
                name,
            )
            if n != 1:
                raise StorageError(f"name: no ops user {name!r}")
            # A new password ends the user's sessions everywhere.
            await c.execute("DELETE FROM ops_sessions WHERE user_name = $1", name)

    async def session_add(
        self, id_hash: str, user: str, csrf: str, expires_at: str, idle_until: str
    ) -> None:
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO ops_sessions (id_hash, user_name, csrf, created_at, expires_at,"
                " idle_until) VALUES ($1, $2, $3, $4, $5, $6)",
                id_hash,
                user,
                csrf,
                utcnow(),
                expires_at,
                idle_until,
            )

    async def session_user(self, id_hash: str, now: str) -> dict[str, Any] | None:
        """The session's user (name, role, scope) and csrf, if the session is still live."""
        async with self.tx() as c:
            return await c.fetchrow(
                "SELECT u.name, u.role, u.area_id, coalesce(a.path, '/') AS scope, s.csrf,"
                " s.idle_until, s.expires_at FROM ops_sessions s"
                " JOIN ops_users u ON u.name = s.user_name LEFT JOIN areas a ON a.id = u.area_id"
                " WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.idle_until > $2",
                id_hash,
                now,
            )

    async def session_touch(self, id_hash: str, idle_until: str) -> None:
        async with self.tx() as c:
            await c.execute(
                "UPDATE ops_sessions SET idle_until = $1 WHERE id_hash = $2", idle_until, id_hash
            )

    async def session_end(self, id_hash: str, now: str) -> None:
        async with self.tx() as c:
            await c.execute("DELETE FROM ops_sessions WHERE id_hash = $1", id_hash)
            await c.execute(
                "DELETE FROM ops_sessions WHERE expires_at < $1 OR idle_until < $1", now
            )

    # --- audit log ---------------------------------------------------------------------------

    async def audit_add(
        self,
        actor: str,
        via: str,
        action: str,
        area_path: str,
        target: str,
        detail: str,
        status: int,
    ) -> None:
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO audit_log (ts, actor, via, action, area_path, target, detail, status)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                utcnow(),
                actor,
                via,
                action,
                area_path,
                target,
                detail,
                status,
            )

    async def audit_list(
        self, scope: str, actor: str | None, before_id: int, limit: int
    ) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT * FROM audit_log WHERE substr(area_path, 1, length($1)) = $1"
                " AND ($2 = '' OR actor = $2) AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4",
                scope,
                actor or "",
                before_id,
                limit,
            )

    async def failed_logins(self, name: str, since: str) -> int:
        async with self.tx() as c:
            row = await c.fetchrow(
                "SELECT count(*) AS n FROM audit_log WHERE actor = $1 AND action = 'login_failed'"
                " AND ts > $2",
                name,
                since,
            )
        return int(row["n"]) if row else 0

    # --- overview ------------------------------------------------------------------------------

    async def area_set_position(self, area_id: str, lat: float, lon: float) -> None:
        async with self.tx() as c:
            await c.execute("UPDATE areas SET lat = $1, lon = $2 WHERE id = $3", lat, lon, area_id)

    async def overview_rows(
        self, scope: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Areas, boxes and open critical alert counts per community, all in scope."""
        async with self.tx() as c:
            areas = await c.fetch(
                "SELECT a.id, a.parent_id, a.level, a.name, a.path, a.lat, a.lon FROM areas a"
                f" WHERE {in_scope(scope)} ORDER BY a.path",
                scope,
            )
            boxes = await c.fetch(
                "SELECT b.id, b.community_id, b.name, b.revoked_at, b.last_seen_at,"
                " b.software_version, b.devices, b.outbox_rows, b.outbox_bytes FROM boxes b"
                f" JOIN areas a ON a.id = b.community_id WHERE {in_scope(scope)} ORDER BY b.id",
                scope,
            )
            cond, scope_arg = await self.scope_filter(c, scope)
            critical = await c.fetch(
                "SELECT b.community_id, count(*) AS n FROM records r"
                " JOIN boxes b ON b.id = r.box_id"
                " LEFT JOIN alert_acks k ON k.box_id = r.box_id AND k.seq = r.seq"
                f" WHERE {cond} AND r.kind = 'alert'"
                f" AND {self.jtext('r.payload', 'level')} = 'critical'"
                " AND (k.state IS NULL OR k.state <> 'closed')"
                " GROUP BY b.community_id",
                scope_arg,
            )
        for b in boxes:
            b["devices"] = json.loads(b["devices"]) if isinstance(b["devices"], str) else []
        return areas, boxes, critical

    # --- alerts: live feed, acknowledgements ---------------------------------------------------

    async def alerts_since(
        self, scope: str, received_after: str, limit: int
    ) -> list[dict[str, Any]]:
        """Alerts that arrived after ``received_after``, oldest arrival first."""
        async with self.tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            rows = await c.fetch(
                "SELECT r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload, r.received_at,"
                " b.community_id FROM records r JOIN boxes b ON b.id = r.box_id"
                f" WHERE {cond} AND r.kind = 'alert' AND r.received_at > $2"
                " ORDER BY r.received_at, r.box_id, r.seq LIMIT $3",
                scope_arg,
                received_after,
                limit,
            )
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    async def alert_acks(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict]:
        if not keys:
            return {}
        out: dict[tuple[str, int], dict] = {}
        async with self.tx() as c:
            for box_id in {k[0] for k in keys}:
                seqs = [k[1] for k in keys if k[0] == box_id]
                rows = await c.fetch(
                    "SELECT * FROM alert_acks WHERE box_id = $1 AND seq >= $2 AND seq <= $3",
                    box_id,
                    min(seqs),
                    max(seqs),
                )
                for r in rows:
                    out[(r["box_id"], r["seq"])] = r
        return out

    async def alert_in_scope(self, box_id: str, seq: int, scope: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            return await c.fetchrow(
                "SELECT r.box_id, r.seq, r.payload, a.path AS area_path FROM records r"
                " JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
                f" WHERE {in_scope(scope)} AND r.kind = 'alert' AND r.box_id = $2 AND r.seq = $3",
                scope,
                box_id,
                seq,
            )

    async def alert_ack(
        self, box_id: str, seq: int, state: str, assignee: str | None, note: str, by: str
    ) -> dict[str, Any]:
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO alert_acks (box_id, seq, state, assignee, note, by_user, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (box_id, seq) DO UPDATE SET"
                " state = excluded.state, assignee = excluded.assignee, note = excluded.note,"
                " by_user = excluded.by_user, at = excluded.at",
                box_id,
                seq,
                state,
                assignee,
                note,
                by,
                utcnow(),
            )
            return await c.fetchrow(  # type: ignore[return-value]
                "SELECT * FROM alert_acks WHERE box_id = $1 AND seq = $2", box_id, seq
            )

    # --- tickets board -------------------------------------------------------------------------

    async def tickets_latest(self, scope: str, limit: int) -> list[dict[str, Any]]:
        """Each ticket's latest record in scope (a box sends one record per change)."""
        async with self.tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            rows = await c.fetch(
                "SELECT box_id, seq, record_id, ts, payload, community_id FROM ("
                " SELECT r.box_id, r.seq, r.record_id, r.ts, r.payload, b.community_id,"
                " row_number() OVER (PARTITION BY r.box_id, r.record_id ORDER BY r.seq DESC)"
                f" AS rn FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond}"
                " AND r.kind = 'repair_ticket') t WHERE rn = 1 ORDER BY ts DESC LIMIT $2",
                scope_arg,
                limit,
            )
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    async def record_history(self, kind: str, record_id: str, scope: str) -> list[dict[str, Any]]:
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT r.box_id, r.seq, r.ts, r.payload, b.community_id FROM records r"
                " JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
                f" WHERE {in_scope(scope)} AND r.kind = $2 AND r.record_id = $3 ORDER BY r.seq",
                scope,
                kind,
                record_id,
            )
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    async def feed_published(self, box_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """What was published to a box for its screens, oldest first (action, at, args)."""
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT action, created_at, args FROM feed WHERE box_id = $1 AND action IN"
                " ('content', 'playlist', 'schedule', 'emergency', 'emergency_cancel')"
                " ORDER BY id",
                box_id,
            )
        return [
            (r["action"], r["created_at"], json.loads(r["args"]) if isinstance(r["args"], str)
             else r["args"])
            for r in rows
        ]  # fmt: skip
