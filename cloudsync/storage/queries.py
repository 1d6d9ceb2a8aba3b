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
            args.extend([search, like])
            term_n = len(args) - 1
            match = self._text_match(kinds, search, term_n, args)
            sql.append(f" AND (r.record_id = ${term_n} OR {match})")
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
            if search and self.dialect == "postgres":
                # Plan for this term: a generic plan (asyncpg prepares statements) cannot tell a
                # rare term, best found by the index, from a common one, best found by walking
                # the newest reports.
                await c.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            rows = await c.fetch("".join(sql), *args)
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def _text_match(self, kinds: list[str], term: str, term_n: int, args: list[Any]) -> str:
        """SQL: the report's text contains the term (``$term_n``; ``$term_n + 1`` is its LIKE
        pattern). Reports' text is indexed (migrations postgres 0007, sqlite 0006): character
        pairs in PostgreSQL (terms of 2+ characters), FTS5 trigrams in SQLite (3+); shorter
        terms and other kinds scan. The LIKE keeps only true substrings either way."""
        text = self.jtext("r.payload", "text")
        like = f"{text} LIKE ${term_n + 1} ESCAPE '\\'"
        if kinds != ["report"]:
            return like
        if self.dialect == "postgres" and len(term) >= 2:
            return f"(qilu_bigrams({text}) @> qilu_bigrams(CAST(${term_n} AS TEXT)) AND {like})"
        if self.dialect == "sqlite" and len(term) >= 3:
            args.append('"' + term.replace('"', '""') + '"')  # one FTS5 phrase: a substring
            return (
                "((r.box_id, r.seq) IN (SELECT s.box_id, s.seq FROM report_fts f"
                f" JOIN report_search s ON s.id = f.rowid WHERE report_fts MATCH ${len(args)})"
                f" AND {like})"
            )
        return like

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
            sql = (
                f"SELECT {', '.join(cols)}, count(*) AS count{total}"
                f" FROM records r WHERE {cond} AND r.kind = $2"
                " AND ($3 = '' OR r.ts >= $3) AND ($4 = '' OR r.ts < $4)"
                f" GROUP BY {', '.join(str(i + 1) for i in range(len(fields)))}"
                f" ORDER BY {', '.join(str(i + 1) for i in range(len(fields)))}"
            )
            return await c.fetch(sql, scope_arg, kind, since or "", until or "")

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
