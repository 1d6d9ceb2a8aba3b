"""What the console adds: ops users' passwords and sessions, the audit log, the overview's
health rows, the live alert feed and alert acknowledgements (docs/console.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from cloudsync.storage.base import StorageBase, StorageError, in_scope, utcnow
from cloudsync.storage.queries import ts_window
from cloudsync.storage.rollups import ROLLUP_SETTINGS, ROLLUPS, by_boxes, totals_sql


class ConsoleStorage(StorageBase):
    json_param: Callable[[int], str]  # BoxStorage's (the backends' JSON parameter cast)

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

    async def login_failures(self, name: str, since: str, pair: str
                             ) -> tuple[int, int, str | None]:
        """Failed sign-ins of ``name`` since ``since``: from ``pair`` (the audit row's target:
        ``ip=<address>`` or ``device=<hash>``), from anywhere, and the newest one's time."""
        async with self.tx() as c:
            row = await c.fetchrow(
                "SELECT count(*) FILTER (WHERE target = $3) AS n_pair, count(*) AS n_name,"
                " max(ts) AS last FROM audit_log WHERE actor = $1 AND action = 'login_failed'"
                " AND ts > $2",
                name,
                since,
                pair,
            )
        if row is None:
            return 0, 0, None
        return int(row["n_pair"]), int(row["n_name"]), row["last"]

    # --- overview ------------------------------------------------------------------------------

    async def area_set_position(self, area_id: str, lat: float, lon: float) -> None:
        async with self.tx() as c:
            await c.execute("UPDATE areas SET lat = $1, lon = $2 WHERE id = $3", lat, lon, area_id)

    async def overview_rows(
        self, scope: str, seen_after: str, focus: str | None, list_all: bool
    ) -> dict[str, Any]:
        """What the overview shows, in proportion to what it shows: every area above the
        communities; the communities (with their boxes and open critical alerts) of ``focus``
        (an area path in scope), or all of them when ``list_all``; and per parent area the
        number of communities, boxes, boxes online (seen after ``seen_after``, not revoked)
        and open critical alerts, which the caller rolls up the tree."""
        inc = "TRUE" if list_all else "substr(a.path, 1, length($2)) = $2" if focus else "FALSE"
        arg = [focus] if focus and not list_all else []
        async with self.tx() as c:
            areas = await c.fetch(
                "SELECT a.id, a.parent_id, a.level, a.name, a.path, a.lat, a.lon FROM areas a"
                f" WHERE {in_scope(scope)} AND (a.level <> 'community' OR {inc}) ORDER BY a.path",
                scope,
                *arg,
            )
            boxes = await c.fetch(
                "SELECT b.id, b.community_id, b.name, b.revoked_at, b.last_seen_at,"
                " b.software_version, b.devices, b.outbox_rows, b.outbox_bytes FROM boxes b"
                f" JOIN areas a ON a.id = b.community_id WHERE {in_scope(scope)} AND {inc}"
                " ORDER BY b.id",
                scope,
                *arg,
            )
            # One row per parent area (a street): a few hundred for a province, not 10,000.
            communities = await c.fetch(
                "SELECT a.parent_id, count(*) AS n, avg(a.lat) AS lat, avg(a.lon) AS lon"
                f" FROM areas a WHERE {in_scope(scope)} AND a.level = 'community'"
                " GROUP BY a.parent_id",
                scope,
            )
            online = await c.fetch(
                "SELECT a.parent_id, count(*) AS n, sum(CASE WHEN b.revoked_at IS NULL AND"
                " b.last_seen_at >= $2 THEN 1 ELSE 0 END) AS online FROM boxes b"
                f" JOIN areas a ON a.id = b.community_id WHERE {in_scope(scope)}"
                " GROUP BY a.parent_id",
                scope,
                seen_after,
            )
            # The counts kept per box and month (postgres 0010, sqlite 0008): a row per box
            # and month with open critical alerts, not every critical alert stored (reading
            # the alert records took 2-3x as long at 50,000 alerts, docs/deploy.md).
            critical = await c.fetch(
                "SELECT b.community_id, a.parent_id, sum(k.n) AS n FROM alert_counts k"
                " JOIN boxes b ON b.id = k.box_id JOIN areas a ON a.id = b.community_id"
                f" WHERE {in_scope(scope)} AND k.n > 0 GROUP BY b.community_id, a.parent_id",
                scope,
            )
        for b in boxes:
            b["devices"] = json.loads(b["devices"]) if isinstance(b["devices"], str) else []
        return {"areas": areas, "boxes": boxes, "communities": communities,
                "online": online, "critical": critical}  # fmt: skip

    # --- alerts: live feed, acknowledgements ---------------------------------------------------

    async def alerts_since(
        self, scope: str, received_after: str, limit: int,
        after: tuple[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Alerts that arrived after ``received_after``, oldest arrival first; with ``after``
        (box id, seq of the last alert read at that arrival time), the rest of that arrival
        time too: one upload stores a whole batch with one arrival time."""
        async with self.tx() as c:
            cond, scope_arg = await self.record_scope(c, scope, ["alert"])
            since = "r.received_at > $2"
            args: list[Any] = [scope_arg, received_after, limit]
            if after is not None:
                since = "r.received_at >= $2 AND (r.received_at, r.box_id, r.seq) > ($2, $4, $5)"
                args += list(after)
            rows = await c.fetch(
                "SELECT r.box_id, r.seq, r.kind, r.record_id, r.ts, r.payload, r.received_at,"
                " b.community_id FROM records r JOIN boxes b ON b.id = r.box_id"
                f" WHERE {cond} AND r.kind = 'alert' AND {since}"
                " ORDER BY r.received_at, r.box_id, r.seq LIMIT $3",
                *args,
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
        """Acknowledge, assign or close. An ack or close that names nobody keeps who the alert
        was assigned to (and an ack keeps it assigned), an empty note keeps the note: the
        console's 确认 / 关闭 buttons send neither, and a colleague's click wiped the
        assignment (probe 12). Assigning names the new assignee; an ack reopens a closed one."""
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO alert_acks (box_id, seq, state, assignee, note, by_user, at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (box_id, seq) DO UPDATE SET"
                " state = CASE WHEN excluded.state = 'acknowledged'"
                " AND alert_acks.state = 'assigned' THEN 'assigned' ELSE excluded.state END,"
                " assignee = coalesce(excluded.assignee, alert_acks.assignee),"
                " note = CASE WHEN excluded.note = '' THEN alert_acks.note ELSE excluded.note END,"
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
        """Each ticket's latest record in scope (a box sends one record per change): those
        not finished first, then the newest, up to ``limit`` (probe 12: the newest alone let
        the oldest open tickets, the overdue ones, fall off behind newer finished ones)."""
        status = self.jtext("r.payload", "status")
        async with self.tx() as c:
            cond, scope_arg = await self.record_scope(c, scope, ["repair_ticket"])
            rows = await c.fetch(
                "SELECT box_id, seq, record_id, ts, payload, community_id FROM ("
                " SELECT r.box_id, r.seq, r.record_id, r.ts, r.payload, b.community_id,"
                f" CASE WHEN {status} IN ('resolved', 'confirmed') THEN 1 ELSE 0 END AS done,"
                " row_number() OVER (PARTITION BY r.box_id, r.record_id ORDER BY r.seq DESC)"
                f" AS rn FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond}"
                " AND r.kind = 'repair_ticket') t WHERE rn = 1 ORDER BY done, ts DESC LIMIT $2",
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

    # --- report charts: the weekly roll-up (migrations postgres 0007, sqlite 0006) ------------

    async def report_weekly(
        self, scope: str, since_week: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Reports per week (count, sentiment sum and count) and per community x category since
        the week starting ``since_week`` (a Monday), from the roll-up a trigger keeps."""
        async with self.read_tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)

        async def query(sql: str) -> list[dict[str, Any]]:
            async with self.read_tx() as c:
                return await c.fetch(sql, scope_arg, since_week)

        # Two connections at once (PostgreSQL): each query reads the weeks in scope.
        weeks, cells = await asyncio.gather(
            query(
                "SELECT r.week, sum(r.n) AS n, sum(r.mood_sum) AS mood_sum,"
                f" sum(r.mood_n) AS mood_n FROM report_weekly r WHERE {cond} AND r.week >= $2"
                " GROUP BY r.week ORDER BY r.week"
            ),
            query(
                "SELECT b.community_id, r.category, sum(r.n) AS n FROM report_weekly r"
                f" JOIN boxes b ON b.id = r.box_id WHERE {cond} AND r.week >= $2"
                " GROUP BY b.community_id, r.category HAVING sum(r.n) <> 0"
                " ORDER BY b.community_id, r.category"
            ),
        )
        return weeks, cells

    # --- content statistics and library -------------------------------------------------------

    async def content_stats(self, scope: str, since: str, until: str) -> dict[str, list]:
        """Proof of play (play_record) and portal reading (reading_stats) in scope, summed per
        content item and per community: ``plays_by_content`` (content_id, plays, ms),
        ``plays_by_community`` (community_id, plays, ms), ``reads_by_content`` and
        ``reads_by_community`` (reads, readers, acks). From the roll-ups when the backend
        keeps them (the console's own answer there: :meth:`content_console_json`)."""
        if self.rollups:
            return await self._content_rolled(scope, since, until)
        j = self.jtext
        async with self.read_tx() as c:
            cond, scope_arg = await self.scope_filter(c, scope)
            args: list[Any] = [scope_arg]
            window = ts_window(args, since, until)
            plays = await c.fetch(
                f"SELECT {j('r.payload', 'content_id')} AS content_id, b.community_id,"
                f" count(*) AS plays, sum(CAST({j('r.payload', 'duration_ms')} AS BIGINT)) AS ms"
                f" FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond}"
                f" AND r.kind = 'play_record'{window} GROUP BY 1, 2",
                *args,
            )
            reads = await c.fetch(
                f"SELECT {j('r.payload', 'content_id')} AS content_id, b.community_id,"
                f" sum(CAST({j('r.payload', 'reads')} AS BIGINT)) AS reads,"
                f" sum(CAST({j('r.payload', 'new_readers')} AS BIGINT)) AS readers,"
                f" sum(CAST({j('r.payload', 'acks')} AS BIGINT)) AS acks"
                f" FROM records r JOIN boxes b ON b.id = r.box_id WHERE {cond}"
                f" AND r.kind = 'reading_stats'{window} GROUP BY 1, 2",
                *args,
            )

        def fold(rows: list[dict[str, Any]], key: str, fields: tuple[str, ...]) -> list:
            out: dict[Any, dict[str, Any]] = {}
            for r in rows:
                acc = out.setdefault(r[key], {key: r[key], **dict.fromkeys(fields, 0)})
                for f in fields:
                    acc[f] += int(r[f] or 0)
            return list(out.values())

        return {
            f"{what}_by_{by}": fold(rows, f"{by}_id", fields)
            for what, rows, fields in (
                ("plays", plays, ("plays", "ms")), ("reads", reads, ("reads", "readers", "acks"))
            )
            for by in ("content", "community")
        }  # fmt: skip

    async def _content_rolled(self, scope: str, since: str, until: str) -> dict[str, list]:
        boxes = None
        if by_boxes(scope, False):
            async with self.read_tx() as c:
                boxes = (await self.scope_filter(c, scope))[1]
        by_content = await self.rollup_options(False)
        by_community = await self.rollup_options(True)
        queries = {}
        for what, kind, sums in (
            ("plays", "play_record", "n AS plays, coalesce(ms, 0) AS ms"),
            ("reads", "reading_stats", "coalesce(reads, 0) AS reads,"
             " coalesce(new_readers, 0) AS readers, coalesce(acks, 0) AS acks"),
        ):  # fmt: skip
            spec = ROLLUPS[kind]
            args: list[Any] = []
            inner = totals_sql(spec, scope, since, until, False, args, boxes=boxes, **by_content)
            queries[f"{what}_by_content"] = (f"SELECT content_id, {sums} FROM ({inner}) t", args)
            args = []
            inner = totals_sql(spec, scope, since, until, True, args, grouped=False, **by_community)
            queries[f"{what}_by_community"] = (
                f"SELECT a.id AS community_id, {sums} FROM ({inner}) t"
                " JOIN areas a ON a.path = t.area",
                args,
            )

        async def run(sql: str, args: list[Any]) -> list[dict[str, Any]]:
            async with self.read_tx() as c:
                await c.execute(ROLLUP_SETTINGS)
                return await c.fetch(sql, *args)

        # Four connections at once: each query reads its own roll-up rows.
        rows = await asyncio.gather(*(run(*q) for q in queries.values()))
        return dict(zip(queries, rows, strict=True))

    async def content_console_json(self, scope: str, since: str, items: int, areas: int) -> str:
        """The console's content statistics (``/api/v1/ops/stats/content``) as the JSON text
        of its answer, from the roll-ups: the first ``items`` content items (plays, play_s,
        reads, readers, acks; a missing id as "?") and ``areas`` communities (with their
        names), each by plays then reads (then id / path), and ``since``: one statement on
        one connection whose two lists PostgreSQL builds as JSON. Was three queries on three
        connections (four round trips each) whose ~850 rows were turned into dicts, merged,
        sorted and encoded in the worker; two statements on two connections at once timed
        the same as one on 2 cores (bench/stats100m.py, docs/deploy.md)."""

        options = {b: await self.rollup_options(b) for b in (False, True)}

        def totals(
            kind: str, by_community: bool, args: list[Any], boxes: Any, areas_in: str = ""
        ) -> str:
            return totals_sql(
                ROLLUPS[kind], scope, since, "", by_community, args,
                grouped=not by_community, boxes=boxes, areas_in=areas_in,
                **options[by_community],
            )  # fmt: skip

        def item_sql(args: list[Any], boxes: Any) -> str:
            return (
                # Plays and reads side by side, NULL and "" ids as "?" (as before).
                "SELECT coalesce(json_agg(json_build_object('content_id', content_id,"
                " 'plays', plays, 'play_s', round(ms / 1000.0, 1), 'reads', reads,"
                " 'readers', readers, 'acks', acks) ORDER BY plays DESC, reads DESC,"
                " content_id), '[]') FROM (SELECT coalesce(nullif(content_id, ''), '?')"
                " AS content_id, sum(plays)::bigint AS plays, sum(ms)::bigint AS ms,"
                " sum(reads)::bigint AS reads, sum(readers)::bigint AS readers,"
                " sum(acks)::bigint AS acks FROM (SELECT content_id, n AS plays,"
                " coalesce(ms, 0) AS ms, 0 AS reads, 0 AS readers, 0 AS acks"
                f" FROM ({totals('play_record', False, args, boxes)}) p"
                " UNION ALL SELECT content_id, 0, 0, coalesce(reads, 0),"
                " coalesce(new_readers, 0), coalesce(acks, 0)"
                f" FROM ({totals('reading_stats', False, args, boxes)}) r) u"
                f" GROUP BY 1 ORDER BY 2 DESC, 4 DESC, 1 LIMIT {int(items)}) i"
            )  # fmt: skip

        def community_sql(args: list[Any]) -> str:
            plays = f"({totals('play_record', True, args, None)})"
            reads = f"({totals('reading_stats', True, args, None)})"
            head = ""
            if areas > 0:
                # Reads only for the communities that can make the table: those with at
                # least the plays of the areas-th by plays (ties included; every other
                # community has fewer plays, so ranks below all of them whatever it reads).
                # Fewer communities with plays than rows shown: every community's reads.
                # A network's year: ~560 communities' monthly reading rows summed, not
                # 10,000's (the smaller pieces still sum all: exact for those listed, and
                # the others rank below them by plays).
                some = "SELECT p.area FROM p WHERE p.n >= (SELECT n FROM t)"
                head = (
                    f"WITH p AS MATERIALIZED {plays}, t AS (SELECT n FROM p ORDER BY n DESC"
                    f" LIMIT 1 OFFSET {int(areas) - 1}), r AS (SELECT * FROM"
                    f" ({totals('reading_stats', True, args, None, some)}) r0 WHERE EXISTS"
                    f" (SELECT FROM t) UNION ALL SELECT * FROM {reads} r1"
                    " WHERE NOT EXISTS (SELECT FROM t)) "
                )
                plays, reads = "p", "r"
            return (
                # Ranked here, not in the worker (10,000 for a network), and named after
                # the cut (ties by path: a community's path ends with its id).
                f"{head}SELECT coalesce(json_agg(json_build_object('community_id', x.id,"
                " 'name', x.name, 'plays', plays, 'play_s', round(ms / 1000.0, 1), 'reads',"
                " reads, 'readers', readers, 'acks', acks) ORDER BY plays DESC, reads DESC,"
                " area), '[]') FROM (SELECT coalesce(p.area, r.area) AS area, coalesce(p.n, 0)"
                " AS plays, coalesce(p.ms, 0) AS ms, coalesce(r.reads, 0) AS reads,"
                " coalesce(r.new_readers, 0) AS readers, coalesce(r.acks, 0) AS acks"
                f" FROM {plays} p FULL JOIN {reads} r"
                " ON r.area = p.area ORDER BY 2 DESC, 4 DESC, 1"
                f" LIMIT {int(areas)}) a JOIN areas x ON x.path = a.area"
            )  # fmt: skip

        async with self.read_tx() as c:
            await c.execute(ROLLUP_SETTINGS)
            boxes = None
            if by_boxes(scope, False):  # a street or community: its boxes' records
                boxes = (await self.scope_filter(c, scope))[1]
            args: list[Any] = []
            items_sql = item_sql(args, boxes)
            row = await c.fetchrow(
                f"SELECT ({items_sql})::text AS items, ({community_sql(args)})::text AS areas",
                *args,
            )
        assert row is not None
        item_json, area_json = row["items"], row["areas"]
        return f'{{"since": {json.dumps(since)}, "items": {item_json}, "areas": {area_json}}}'

    async def community_names(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        async with self.read_tx() as c:
            rows = await c.fetch(
                f"SELECT id, name FROM areas WHERE {self.in_list('id', 1)}", self.text_list(ids)
            )
        return {r["id"]: r["name"] for r in rows}

    # --- update roll-outs in waves (cloudsync/console/rollout.py) -----------------------------

    async def rollout_boxes_in_scope(self, scope: str, box_ids: list[str]) -> list[dict[str, Any]]:
        """The named boxes that exist, are not revoked and lie in scope, with their area path
        and last heartbeat (the first wave takes boxes heard from most recently)."""
        async with self.tx() as c:
            return await c.fetch(
                "SELECT b.id, b.software_version, b.last_seen_at, a.path AS area_path"
                " FROM boxes b JOIN areas a ON a.id = b.community_id"
                f" WHERE {in_scope(scope)} AND b.revoked_at IS NULL AND {self.in_list('b.id', 2)}",
                scope,
                self.text_list(box_ids),
            )

    async def rollout_create(
        self,
        rid: str,
        version: str,
        args: dict[str, Any],
        waves: list[int],
        timeout_s: float,
        area_path: str,
        by: str,
        boxes: list[tuple[str, int]],
    ) -> None:
        now = utcnow()
        async with self.tx() as c:
            await c.execute(
                "INSERT INTO rollouts (id, version, args, waves, state, wave_timeout_s, area_path,"
                " created_by, created_at, updated_at) VALUES ($1, $2,"
                f" {self.json_param(3)}, {self.json_param(4)}, 'running', $5, $6, $7, $8, $8)",
                rid,
                version,
                json.dumps(args, ensure_ascii=False),
                json.dumps(waves),
                timeout_s,
                area_path,
                by,
                now,
            )
            for box_id, wave in boxes:
                await c.execute(
                    "INSERT INTO rollout_boxes (rollout_id, box_id, wave) VALUES ($1, $2, $3)",
                    rid,
                    box_id,
                    wave,
                )

    ROLLOUT_COUNTS = (
        "SELECT o.*, (SELECT count(*) FROM rollout_boxes x WHERE x.rollout_id = o.id) AS boxes,"
        " (SELECT count(*) FROM rollout_boxes x WHERE x.rollout_id = o.id"
        " AND x.sent_at IS NOT NULL) AS sent,"
        " (SELECT count(*) FROM rollout_boxes x WHERE x.rollout_id = o.id"
        " AND x.done_at IS NOT NULL) AS done FROM rollouts o"
    )

    async def rollout_list(self, scope: str, limit: int) -> list[dict[str, Any]]:
        """Roll-outs whose boxes all lie in scope, newest first, with their progress counts."""
        async with self.read_tx() as c:
            rows = await c.fetch(
                self.ROLLOUT_COUNTS + f" WHERE {in_scope(scope, 1, 'o.area_path')}"
                " ORDER BY o.created_at DESC LIMIT $2",
                scope,
                limit,
            )
        return [_rollout_row(r) for r in rows]

    async def rollout_get(self, rid: str, scope: str) -> dict[str, Any] | None:
        async with self.tx() as c:
            row = await c.fetchrow(
                self.ROLLOUT_COUNTS + f" WHERE o.id = $2 AND {in_scope(scope, 1, 'o.area_path')}",
                scope,
                rid,
            )
            if row is None:
                return None
            row["box_list"] = await c.fetch(
                "SELECT x.box_id, x.wave, x.sent_at, x.feed_id, x.done_at, b.community_id,"
                " b.software_version, b.last_seen_at FROM rollout_boxes x"
                " JOIN boxes b ON b.id = x.box_id WHERE x.rollout_id = $1"
                " ORDER BY x.wave, x.box_id",
                rid,
            )
        return _rollout_row(row)

    async def rollouts_running(self) -> list[str]:
        async with self.tx() as c:
            rows = await c.fetch("SELECT id FROM rollouts WHERE state = 'running' ORDER BY id")
        return [r["id"] for r in rows]

    async def rollout_mark_done(self, rid: str, version: str) -> None:
        """Boxes sent the update whose heartbeat now reports the version are done."""
        async with self.tx() as c:
            await c.execute(
                "UPDATE rollout_boxes SET done_at = $3 WHERE rollout_id = $1"
                " AND done_at IS NULL AND sent_at IS NOT NULL AND box_id IN"
                " (SELECT id FROM boxes WHERE software_version = $2)",
                rid,
                version,
                utcnow(),
            )

    async def rollout_wave_boxes(self, rid: str, wave: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT x.box_id, x.sent_at, x.done_at, b.software_version, b.revoked_at"
                " FROM rollout_boxes x JOIN boxes b ON b.id = x.box_id"
                " WHERE x.rollout_id = $1 AND x.wave = $2 ORDER BY x.box_id",
                rid,
                wave,
            )

    async def rollout_claim_wave(self, rid: str, wave: int) -> bool:
        """Move a running roll-out from wave ``wave - 1`` to ``wave``; False if another worker
        (or a pause) got there first. The conditional UPDATE is the guard across workers."""
        now = utcnow()
        async with self.tx() as c:
            n = await c.execute(
                "UPDATE rollouts SET wave = $2, wave_sent_at = $3, updated_at = $3"
                " WHERE id = $1 AND wave = $2 - 1 AND state = 'running'",
                rid,
                wave,
                now,
            )
        return n == 1

    async def rollout_sent(
        self, rid: str, sent: list[tuple[str, int | None]], done: list[str]
    ) -> None:
        """Record the update command sent to boxes (feed id), and boxes already at the version
        (done without a command)."""
        now = utcnow()
        async with self.tx() as c:
            for box_id, feed_id in sent:
                await c.execute(
                    "UPDATE rollout_boxes SET sent_at = $3, feed_id = $4"
                    " WHERE rollout_id = $1 AND box_id = $2",
                    rid,
                    box_id,
                    now,
                    feed_id,
                )
            for box_id in done:
                await c.execute(
                    "UPDATE rollout_boxes SET sent_at = coalesce(sent_at, $3), done_at = $3"
                    " WHERE rollout_id = $1 AND box_id = $2",
                    rid,
                    box_id,
                    now,
                )

    async def rollout_set_state(
        self, rid: str, state: str, note: str, from_states: tuple[str, ...]
    ) -> bool:
        """Change the state if it is one of ``from_states``; resuming restarts the wave's
        clock. False if the roll-out was not in one of them."""
        now = utcnow()
        allowed = ", ".join(f"'{s}'" for s in from_states)  # fixed words from the caller
        async with self.tx() as c:
            n = await c.execute(
                f"UPDATE rollouts SET state = $2, note = $3, updated_at = $4,"
                f" wave_sent_at = CASE WHEN $2 = 'running' THEN $4 ELSE wave_sent_at END"
                f" WHERE id = $1 AND state IN ({allowed})",
                rid,
                state,
                note,
                now,
            )
        return n == 1


def _rollout_row(r: dict[str, Any]) -> dict[str, Any]:
    for k in ("args", "waves"):
        if isinstance(r.get(k), str):
            r[k] = json.loads(r[k])
    for k in ("boxes", "sent", "done"):
        if k in r:
            r[k] = int(r[k])
    return r
