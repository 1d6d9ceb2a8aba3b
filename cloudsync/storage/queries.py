"""What ops read: records, counts, which box holds a ticket."""

from __future__ import annotations

import json
from typing import Any

from cloudsync.storage.base import StorageBase
from cloudsync.storage.rollups import ROLLUP_SETTINGS, ROLLUPS, Rollup, by_boxes, totals_sql


def ts_window(args: list[Any], since: str, until: str, col: str = "r.ts") -> str:
    """" AND col >= $n AND col < $m" for the bounds given, appending them to args. Only the
    bounds given, as plain comparisons: PostgreSQL then prunes the months outside them (a
    "$3 = '' OR ts >= $3" form keeps every month in a generic plan)."""
    cond = ""
    for op, value in ((">=", since), ("<", until)):
        if value:
            args.append(value)
            cond += f" AND {col} {op} ${len(args)}"
    return cond


class OpsQueryStorage(StorageBase):
    # --- queries for ops ------------------------------------------------------------------

    SEARCH_WINDOW = 2000  # newest reports a search reads before it asks the text index

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
        record id exactly or a substring of the payload's text.

        A search first reads the newest :attr:`SEARCH_WINDOW` reports in scope: a common
        word fills the page there (those are the newest matches of all). Only when it does
        not does it ask the text index (migrations postgres 0007, sqlite 0006), which finds a
        rare term among a million reports at once but would hand a common word's every match
        to a sort. Deciding in code keeps that choice away from the planner's estimates of
        the index expression, which it cannot make for a partial index."""
        async with self.tx() as c:
            cond, scope_arg = await self.record_scope(c, scope, kinds)
        args: list[Any] = [scope_arg]
        conds = [cond, " AND r.kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"]
        def add(sql: str, value: Any) -> None:
            args.append(value)
            conds.append(sql.replace("?", f"${len(args)}"))

        if box_id:
            add(" AND r.box_id = ?", box_id)
        if since:
            add(" AND r.ts >= ?", since)
        if until:
            add(" AND r.ts < ?", until)
        if kinds in (["report"], ["repair_ticket"]):
            # A box sends a report or ticket again, whole, on every change (status,
            # correction): only its newest record is it (probe 12: a closed report also
            # listed "received", a resolved ticket "open"; a ticket's history has them all).
            # With ``until``, its newest record before then: its state at that time.
            # Replaced records are marked at upload (migrations postgres 0017, sqlite 0012).
            # With ``until``: found here instead. A newer record is never dated before the
            # one it replaces (a report keeps its ts): "n.ts >= r.ts" lets PostgreSQL probe
            # only the months from r's on.
            if until:
                conds.append(
                    f" AND NOT EXISTS (SELECT 1 FROM records n WHERE n.kind = '{kinds[0]}'"
                    " AND n.record_id = r.record_id AND n.box_id = r.box_id AND n.seq > r.seq"
                    f" AND n.ts >= r.ts AND n.ts < ${len(args)})"
                )
            else:
                conds.append(" AND NOT r.superseded")
        for field, value in where.items():
            add(f" AND {self.jtext('r.payload', field)} = ?", value)
        if after:
            ts, box, seq = after
            args.extend([ts, box, seq])
            n = len(args)
            conds.append(
                f" AND (r.ts < ${n - 2} OR (r.ts = ${n - 2} AND (r.box_id < ${n - 1}"
                f" OR (r.box_id = ${n - 1} AND r.seq < ${n}))))"
            )
        cols = "r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload"
        order = " ORDER BY r.ts DESC, r.box_id DESC, r.seq DESC"
        where_sql = "".join(conds)
        if not search:
            args.append(limit)
            sql = (
                f"SELECT {cols}, b.community_id FROM records r JOIN boxes b ON b.id = r.box_id"
                f" WHERE {where_sql}{order} LIMIT ${len(args)}"
            )
            return await self._fetch_records(sql, args)
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args.extend([search, like, limit])
        term_n, limit_n = len(args) - 2, len(args)
        text = self.jtext("r.payload", "text")
        plain = f"(r.record_id = ${term_n} OR {text} LIKE ${term_n + 1} ESCAPE '\\')"
        indexed = self._text_match(kinds, search, term_n, args)
        if indexed:
            # The window's keys first (an index-only walk in PostgreSQL), then those rows.
            # Joined back on ts and kind too: on (box_id, seq) alone each of the 2,000 rows
            # probed every month of every class (~10 s at 40 M rows, bench/stats100m.py).
            keys = (
                f"(SELECT r.box_id, r.seq, r.ts FROM records r WHERE {where_sql}{order}"
                f" LIMIT {self.SEARCH_WINDOW}) w"
            )
            if self.dialect == "postgres":
                # Each key looked up by itself (LATERAL; OFFSET 0 keeps it from being
                # flattened into a join): the planner, expecting few matches of the LIKE,
                # otherwise merge-joined the keys with a scan of every report for the term
                # (300,000 at 20 M rows: 130-150 ms for a rare term, 10 ms this way).
                rows_of = (
                    f" CROSS JOIN LATERAL (SELECT {cols} FROM records r WHERE r.box_id ="
                    f" w.box_id AND r.seq = w.seq AND r.ts = w.ts AND {plain}{conds[1]}"
                    " OFFSET 0) r JOIN boxes b ON b.id = r.box_id"
                )
            else:
                rows_of = (
                    " JOIN records r ON r.box_id = w.box_id AND r.seq = w.seq AND r.ts = w.ts"
                    f" JOIN boxes b ON b.id = r.box_id WHERE {plain}{conds[1]}"
                )
            window = f"SELECT {cols}, b.community_id FROM {keys}{rows_of}{order} LIMIT ${limit_n}"
            # not the FTS phrase; its plan does not depend on the term (kept as prepared)
            rows = await self._fetch_records(window, args[:limit_n], search="auto")
            if len(rows) == limit:
                return rows
            plain = indexed
        sql = (
            f"SELECT {cols}, b.community_id FROM records r JOIN boxes b ON b.id = r.box_id"
            f" WHERE {where_sql} AND {plain}{order} LIMIT ${limit_n}"
        )
        # A plan for this very term (asyncpg prepares statements; a generic plan would not
        # know how rare it is).
        return await self._fetch_records(sql, args, search="force_custom_plan")

    async def _fetch_records(
        self, sql: str, args: list[Any], search: str = ""
    ) -> list[dict[str, Any]]:
        """``search``: the statement is a search's, run with this ``plan_cache_mode`` and
        without JIT in PostgreSQL (the window's 2,000 lookups, estimated as far more rows,
        passed jit_above_cost, and compiling took ~55 of its 65 ms at 20 M rows,
        bench/stats100m.py); "": a plain list, no settings (no extra round trip)."""
        async with self.read_tx() as c:
            if search and self.dialect == "postgres":
                await c.execute(
                    "SELECT set_config('jit', 'off', true),"
                    f" set_config('plan_cache_mode', '{search}', true)"
                )
            rows = await c.fetch(sql, *args)
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows

    def _text_match(self, kinds: list[str], term: str, term_n: int, args: list[Any]) -> str:
        """SQL through the reports' text index: the record is the term's report (by id, for
        a term that can be one) or its text contains the term (``$term_n``; ``$term_n + 1``
        is its LIKE pattern); "" when no index serves the term. Character pairs in
        PostgreSQL (terms of 2+ characters), FTS5 trigrams in SQLite (3+); the LIKE keeps
        only true substrings either way."""
        if kinds != ["report"]:
            return ""
        text = self.jtext("r.payload", "text")
        like = f"{text} LIKE ${term_n + 1} ESCAPE '\\'"
        if self.dialect == "postgres" and len(term) >= 2:
            found = f"(qilu_bigrams({text}) @> qilu_bigrams(CAST(${term_n} AS TEXT)) AND {like})"
        elif self.dialect == "sqlite" and len(term) >= 3:
            args.append('"' + term.replace('"', '""') + '"')  # one FTS5 phrase: a substring
            found = (
                "((r.box_id, r.seq) IN (SELECT s.box_id, s.seq FROM report_fts f"
                f" JOIN report_search s ON s.id = f.rowid WHERE report_fts MATCH ${len(args)})"
                f" AND {like})"
            )
        else:
            return ""
        # Record ids are ASCII: for any other term the id test would only stop the index
        # conditions from being used as such (an OR around them), so it is left out.
        return f"(r.record_id = ${term_n} OR {found})" if term.isascii() else found

    async def count_by(
        self,
        kind: str,
        scope: str,
        since: str | None,
        until: str | None,
        fields: list[str],
        sum_field: str | None = None,
    ) -> list[dict[str, Any]]:
        spec = ROLLUPS.get(kind)
        if (
            self.rollups
            and spec is not None
            and tuple(fields) == spec.dims
            and (sum_field is None) == (not spec.sums)
            and (sum_field is None or sum_field == spec.sums[0][1])
        ):
            return await self._count_rolled(spec, scope, since or "", until or "", fields)
        cols = [f"{self.jtext('r.payload', f)} AS {f}" for f in fields]
        total = ""
        if sum_field:
            total = f", sum(CAST({self.jtext('r.payload', sum_field)} AS BIGINT)) AS total"
        async with self.read_tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            args: list[Any] = [scope_arg, kind]
            cond += ts_window(args, since, until)
            sql = (
                f"SELECT {', '.join(cols)}, count(*) AS count{total}"
                f" FROM records r WHERE {cond} AND r.kind = $2"
                f" GROUP BY {', '.join(str(i + 1) for i in range(len(fields)))}"
                f" ORDER BY {', '.join(str(i + 1) for i in range(len(fields)))}"
            )
            return await c.fetch(sql, *args)

    async def _count_rolled(
        self, spec: Rollup, scope: str, since: str, until: str, fields: list[str]
    ) -> list[dict[str, Any]]:
        """count_by from the daily roll-ups (whole days) and the records (partial days)."""
        args: list[Any] = []
        total = f", {spec.sums[0][0]} AS total" if spec.sums else ""
        order = ", ".join(str(i + 1) for i in range(len(fields)))
        async with self.read_tx() as c:
            boxes = (await self.scope_filter(c, scope))[1] if by_boxes(scope, False) else None
            inner = totals_sql(
                spec, scope, since, until, False, args, boxes=boxes,
                **await self.rollup_options(False),
            )
            sql = f"SELECT {', '.join(fields)}, n AS count{total} FROM ({inner}) t ORDER BY {order}"
            await c.execute(ROLLUP_SETTINGS)
            return await c.fetch(sql, *args)

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
