"""What ops read: records, counts, which box holds a ticket."""

from __future__ import annotations

import json
from typing import Any

from cloudsync.storage.base import StorageBase


class OpsQueryStorage(StorageBase):
    # --- queries for ops ------------------------------------------------------------------

    async def records_query(
        self,
        kinds: list[str],
        scope: str,
        box_id: str | None,
        since: str | None,
        until: str | None,
        where: dict[str, str],
        after: tuple[str, str, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Records newest first, keyset-paginated on (ts, box_id, seq)."""
        args: list[Any] = [scope]
        sql = [
            "SELECT r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload, b.community_id"
            " FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
            " WHERE substr(a.path, 1, length($1)) = $1"
        ]

        def add(cond: str, value: Any) -> None:
            args.append(value)
            sql.append(cond.replace("?", f"${len(args)}"))

        sql.append(" AND r.kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")")
        if box_id:
            add(" AND r.box_id = ?", box_id)
        if since:
            add(" AND r.ts >= ?", since)
        if until:
            add(" AND r.ts < ?", until)
        for field, value in where.items():
            add(f" AND {self.jtext('r.payload', field)} = ?", value)
        if after:
            ts, box, seq = after
            args.extend([ts, box, seq])
            n = len(args)
            sql.append(
                f" AND (r.ts < ${n - 2} OR (r.ts = ${n - 2} AND (r.box_id < ${n - 1}"
                f" OR (r.box_id = ${n - 1} AND r.seq < ${n}))))"
            )
        args.append(limit)
        sql.append(f" ORDER BY r.ts DESC, r.box_id DESC, r.seq DESC LIMIT ${len(args)}")
        async with self.read_tx() as c:
            rows = await c.fetch("".join(sql), *args)
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    async def count_by(
        self,
        kind: str,
        scope: str,
        since: str | None,
        until: str | None,
        fields: list[str],
        sum_field: str | None = None,
    ) -> list[dict[str, Any]]:
        cols = [f"{self.jtext('r.payload', f)} AS {f}" for f in fields]
        total = ""
        if sum_field:
            total = f", sum(CAST({self.jtext('r.payload', sum_field)} AS BIGINT)) AS total"
        sql = (
            f"SELECT {', '.join(cols)}, count(*) AS count{total}"
            " FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
            " WHERE substr(a.path, 1, length($1)) = $1 AND r.kind = $2"
            " AND ($3 = '' OR r.ts >= $3) AND ($4 = '' OR r.ts < $4)"
            f" GROUP BY {', '.join(str(i + 1) for i in range(len(fields)))}"
            f" ORDER BY {', '.join(str(i + 1) for i in range(len(fields)))}"
        )
        async with self.read_tx() as c:
            return await c.fetch(sql, scope, kind, since or "", until or "")

    async def ticket_box(self, ticket_id: str, scope: str) -> str | None:
        async with self.tx() as c:
            row = await c.fetchrow(
                "SELECT r.box_id FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a"
                " ON a.id = b.community_id WHERE r.kind = 'repair_ticket' AND r.record_id = $1"
                " AND substr(a.path, 1, length($2)) = $2 LIMIT 1",
                ticket_id,
                scope,
            )
        return row["box_id"] if row else None
