"""The storage interface of the cloud service, written once over two SQL backends.

All SQL is written with ``$n`` placeholders (asyncpg's style); the SQLite backend rewrites
them to ``?n``. Backends provide a connection (``tx()``) with ``fetch``/``fetchrow``/
``execute``/``insert_records`` and a few dialect hooks (JSON extraction, migration lock).
Timestamps are ISO 8601 UTC text, so both backends answer with identical rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Protocol

import orjson

from cloudsync.protocol import UploadRecord

log = logging.getLogger(__name__)
LEVELS = ("city", "district", "street", "community")
PARENT_LEVEL = {"district": "city", "street": "district", "community": "street"}


# Statements of the per-request path that backends may run their own way (fewer round trips).
BOX_GET = (
    "SELECT b.*, a.path AS area_path FROM boxes b JOIN areas a"
    " ON a.id = b.community_id WHERE b.id = $1"
)
NONCE_INSERT = "INSERT INTO nonces (box_id, nonce, ts) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
NONCE_PRUNE = "DELETE FROM nonces WHERE ts < $1"


async def prune_nonces(c: Any, ts: int, older_than: int) -> None:
    """Forget nonces outside the window now and then (one request in 16), not every time."""
    if ts % 16 == 0:
        await c.execute(NONCE_PRUNE, older_than)


class StorageError(ValueError):
    """A request the data does not allow (unknown parent, used claim code...); names why."""


class NotFound(StorageError):
    pass


class Replayed(StorageError):
    """The request's nonce was used before (a replayed signed request)."""


class BadRecord(StorageError):
    """One record of an upload batch the database refuses; names it by index (and seq), so
    the box can quarantine that record and send the rest (edge/sync/service.py)."""

    def __init__(self, index: int, seq: int, field: str, reason: str) -> None:
        super().__init__(f"body.records.{index}.{field}: {reason} (seq {seq})")
        self.index, self.seq, self.field = index, seq, f"body.records.{index}.{field}"


def find_bad_record(rows: Sequence[UploadRecord]) -> BadRecord | None:
    """The first record a backend would refuse, checked in Python; run only after the batch
    insert failed (the hot path leaves the checks to the database). Covers what either
    backend refuses: malformed JSON or a non-object payload, and NUL characters (PostgreSQL
    text and jsonb cannot hold them)."""
    for i, r in enumerate(rows):
        for name in ("kind", "record_id", "ts", "payload"):
            if "\x00" in r[name]:  # type: ignore[literal-required]
                return BadRecord(i, r["seq"], name, "contains a NUL character")
        try:
            value = orjson.loads(r["payload"])
        except orjson.JSONDecodeError as e:
            return BadRecord(i, r["seq"], "payload", f"not valid JSON ({e})")
        if not isinstance(value, dict):
            return BadRecord(i, r["seq"], "payload", "not a JSON object")
        if "\\u0000" in r["payload"] and _has_nul(value):
            return BadRecord(i, r["seq"], "payload", "contains an escaped NUL (\\u0000)")
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Conn(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]: ...
    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any] | None: ...
    async def execute(self, sql: str, *args: Any) -> int: ...  # rows affected
    async def insert_records(self, box_id: str, now: str, rows: Sequence[UploadRecord]) -> int: ...


class Storage:
    """Backend-neutral operations; subclasses implement the connection primitives."""

    dialect = ""
    listens = False  # True when feed notifications cross worker processes (PG NOTIFY)

    # --- backend primitives -------------------------------------------------------------

    def tx(self) -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    def jtext(self, column: str, field: str) -> str:
        """SQL for the text value of a JSON field (field names are whitelisted by callers)."""
        raise NotImplementedError

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def lock_migrations(self, c: Conn) -> None:
        pass

    async def notify_feed(self, c: Conn, box_ids: list[str]) -> None:
        pass

    async def listen_feed(self, callback: Any) -> None:
        pass

    async def run_script(self, c: Conn, sql: str) -> None:
        raise NotImplementedError

    async def relax_commit(self, c: Conn) -> None:
        """This transaction need not wait for its commit to reach disk (nonces only)."""

    # --- schema ---------------------------------------------------------------------------

    async def migrate(self) -> list[int]:
        files = []
        for entry in resources.files("cloudsync").joinpath("migrations", self.dialect).iterdir():
            if entry.name.endswith(".sql"):
                files.append((int(entry.name.partition("_")[0]), entry.name, entry.read_text()))
        files.sort()
        applied = []
        async with self.tx() as c:
            await self.lock_migrations(c)
            await c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {r["version"] for r in await c.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in files:
                if version in done:
                    continue
                await self.run_script(c, sql)
                await c.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2, $3)", version, name, utcnow()
                )
                applied.append(version)
                log.info("cloud schema: applied %s", name)
        return applied

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

    # --- upload ---------------------------------------------------------------------------

    async def upload(
        self,
        box_id: str,
        floor: int,
        rows: Sequence[UploadRecord],
        nonce: tuple[str, str, int, int] | None = None,
    ) -> tuple[int, int, int]:
        """Store a batch once per (box, seq) in one transaction; (stored, dupes, acked).
        ``nonce`` (box_id, nonce, ts, older_than) is used in the same transaction: Replayed
        if it was seen, and then nothing is stored."""
        now = utcnow()
        async with self.tx() as c:
            box = await self.lock_box(c, box_id, nonce)
            stored = await c.insert_records(box_id, now, rows) if rows else 0
            # Invariant: after every upload acked_seq is the highest contiguous seq, so it can
            # move only if this batch holds acked_seq + 1 or the box's floor lifts it.
            before = box["acked_seq"]  # type: ignore[index]
            acked = max(before, floor - 1)
            seqs = sorted(r["seq"] for r in rows)
            # max_seq: the highest seq stored for the box (every seq of this batch is stored
            # now, new or duplicate). Only when it lies above the watermark can a walk over
            # stored seqs move it further: the in-order case needs no walk query.
            top = max(box["max_seq"], seqs[-1] if seqs else 0)  # type: ignore[index]
            if acked > before or (seqs and acked + 1 in set(seqs)):
                if seqs and seqs[0] == acked + 1 and seqs[-1] - seqs[0] == len(seqs) - 1:
                    acked = seqs[-1]  # the common case: the batch continues the watermark
                if acked < top:
                    acked = await self._walk(c, box_id, acked)
            await c.execute(
                "UPDATE boxes SET acked_seq = $1, max_seq = $2, last_seen_at = $3 WHERE id = $4",
                acked,
                top,
                now,
                box_id,
            )
        return stored, len(rows) - stored, acked

    async def lock_box(
        self, c: Conn, box_id: str, nonce: tuple[str, str, int, int] | None
    ) -> dict[str, Any]:
        """Use the request's nonce (Replayed if seen) and lock the box's row: uploads of one
        box serialise (also across workers), others don't. (PostgreSQL: one round trip.)"""
        if nonce is not None:
            if await c.execute(NONCE_INSERT, *nonce[:3]) != 1:
                raise Replayed("nonce already used")
            await prune_nonces(c, nonce[2], nonce[3])
        return await c.fetchrow(  # type: ignore[return-value]
            "SELECT acked_seq, max_seq FROM boxes WHERE id = $1" + self.for_update(), box_id
        )

    async def _walk(self, c: Conn, box_id: str, acked: int) -> int:
        """Advance the watermark over seqs already stored above it."""
        while True:
            nxt = await c.fetch(
                "SELECT seq FROM records WHERE box_id = $1 AND seq > $2 ORDER BY seq LIMIT 2000",
                box_id,
                acked,
            )
            moved = 0
            for r in nxt:
                if r["seq"] != acked + 1:
                    return acked
                acked += 1
                moved += 1
            if moved < 2000:
                return acked

    def for_update(self) -> str:
        return ""

    async def box_records(self, box_id: str) -> list[dict[str, Any]]:
        async with self.tx() as c:
            return await c.fetch(
                "SELECT seq, kind, record_id, priority FROM records WHERE box_id = $1 ORDER BY seq",
                box_id,
            )

    # --- download feed --------------------------------------------------------------------

    async def feed_add(
        self,
        box_ids: list[str],
        target_kind: str,
        target_id: str,
        action: str,
        args: dict[str, Any],
        by: str,
        expires_at: str | None,
    ) -> list[int]:
        now = utcnow()
        text = json.dumps(args, ensure_ascii=False)
        ids = []
        async with self.tx() as c:
            for box_id in box_ids:
                row = await c.fetchrow(
                    "INSERT INTO feed (box_id, target_kind, target_id, action, args, created_at,"
                    f" expires_at, created_by) VALUES ($1, $2, $3, $4, {self.json_param(5)},"
                    " $6, $7, $8) RETURNING id",
                    box_id,
                    target_kind,
                    target_id,
                    action,
                    text,
                    now,
                    expires_at,
                    by,
                )
                ids.append(row["id"])  # type: ignore
            await self.notify_feed(c, box_ids)
        return ids

    async def feed_after(self, box_id: str, after: int, limit: int) -> list[dict[str, Any]]:
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT id, target_kind, target_id, action, args, created_at, expires_at"
                " FROM feed WHERE box_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                box_id,
                after,
                limit,
            )
        for r in rows:
            r["args"] = json.loads(r["args"])
        return rows

    async def boxes_for_targets(self, scope: str, areas: list[str], boxes: list[str]) -> list[str]:
        """Box ids (not revoked) inside the caller's scope and any of the areas / boxes."""
        async with self.tx() as c:
            rows = await c.fetch(
                "SELECT b.id, b.id AS box, a.path FROM boxes b JOIN areas a"
                " ON a.id = b.community_id WHERE b.revoked_at IS NULL"
                " AND substr(a.path, 1, length($1)) = $1 ORDER BY b.id",
                scope,
            )
        wanted_areas = [f"/{a}/" for a in areas]
        return [
            r["id"] for r in rows if r["id"] in boxes or any(w in r["path"] for w in wanted_areas)
        ]

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
        async with self.tx() as c:
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
        async with self.tx() as c:
            return await c.fetch(sql, scope, kind, since or "", until or "")

    async def record_box(self, kind: str, record_id: str, scope: str) -> str | None:
        """The box that sent a record (a ticket, a report) if it is in the ops user's scope."""
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
