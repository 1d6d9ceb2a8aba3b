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
        search: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records newest first, keyset-paginated on (ts, box_id, seq); ``search`` matches the
        record id exactly or a substring of the payload's text."""
        async with self.tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
        args: list[Any] = [scope_arg]
        sql = [
            "SELECT r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload, b.community_id"
            f" FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond}"
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
        if search:
            like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            args.append(search)
            add(
                f" AND (r.record_id = ${len(args)} OR {self.jtext('r.payload', 'text')}"
                " LIKE ? ESCAPE '\\')",
                like,
            )
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
        async with self.read_tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            args: list[Any] = [scope_arg, kind]
            # Only the bounds given, as plain comparisons: PostgreSQL then prunes the months
            # outside them (a "$3 = '' OR ts >= $3" form keeps every month in a generic plan).
            for op, value in ((">=", since), ("<", until)):
                if value:
                    args.append(value)
                    cond += f" AND r.ts {op} ${len(args)}"
            sql = (
                f"SELECT {', '.join(cols)}, count(*) AS count{total}"
                f" FROM records r WHERE {cond} AND r.kind = $2"
                f" GROUP BY {', '.join(str(i + 1) for i in range(len(fields)))}"
                f" ORDER BY {', '.join(str(i + 1) for i in range(len(fields)))}"
            )
            return await c.fetch(sql, *args)

    async def report_stats(
        self, scope: str, since: str, until: str | None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Reports per day (count, mean sentiment) and per community x category, by the
        report's own time (payload ts); the outbox time (r.ts, indexed, never earlier than
        the report's) narrows the scan first."""
        sentiment = f"CAST({self.jtext('r.payload', 'sentiment')} AS DOUBLE PRECISION)"
        when = self.jtext("r.payload", "ts")
        async with self.read_tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            base = (
                " FROM records r JOIN boxes b ON b.id = r.box_id"
                f" WHERE {cond} AND r.kind = 'report'"
                f" AND r.ts >= $2 AND {when} >= $2 AND ($3 = '' OR {when} < $3)"
            )
            days = await c.fetch(
                f"SELECT substr({when}, 1, 10) AS day, count(*) AS n, avg({sentiment}) AS mood"
                f"{base} GROUP BY 1 ORDER BY 1",
                scope_arg,
                since,
                until or "",
            )
            cells = await c.fetch(
                f"SELECT b.community_id, {self.jtext('r.payload', 'category')} AS category,"
                f" count(*) AS n{base} GROUP BY 1, 2 ORDER BY 1, 2",
                scope_arg,
                since,
                until or "",
            )
        return days, cells

    async def record_box(self, kind: str, record_id: str, scope: str) -> str | None:
        """The box holding a record of this kind and id, if it is in scope."""
        async with self.tx() as c:
            row = await c.fetchrow(
                "SELECT r.box_id FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a"
                " ON a.id = b.community_id WHERE r.kind = $1 AND r.record_id = $2"
                " AND substr(a.path, 1, length($3)) = $3 LIMIT 1",
                kind,
                record_id,
                scope,
            )
        return row["box_id"] if row else None
