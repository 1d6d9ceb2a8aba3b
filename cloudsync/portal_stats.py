"""Ops view of the resident portal (issue 9): reading reach per content item and per area.

Boxes upload ``reading_stats`` records, each counting reads, first-time readers,
acknowledgements and dwell exactly once, so sums over them are the totals; no per-person data
ever reaches the cloud. Scoped like every ops route: a user sees only their area.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from cloudsync.context import CLOUD
from cloudsync.ops_api import FREE, scope
from cloudsync.routing import Api, ok
from cloudsync.storage.queries import ts_window
from cloudsync.storage.rollups import ROLLUP_SETTINGS, ROLLUPS, by_boxes, totals_sql

api = Api()  # this module's route table (cloudsync/app.py includes it)
PAGE = 500  # rows per page unless asked (the console's community table shows 500)


class ReadingQuery(BaseModel):
    group: Literal["content", "community", "content_community"] = "content"
    since: str | None = Field(None, max_length=40, pattern=FREE)
    until: str | None = Field(None, max_length=40, pattern=FREE)
    # A page of rows (a network has 10,000 communities): by the group's keys, or by reads
    # (most first); ``next_offset`` in the answer asks for the next page.
    order: Literal["key", "reads"] = "key"
    limit: int = Field(PAGE, ge=1, le=10000)
    offset: int = Field(0, ge=0, le=10_000_000)


async def reading_totals(
    storage, scope_path: str, group: str, since: str, until: str, page: str = ""
) -> list:
    """Rows per group; ``page``: SQL after the GROUP BY (order, limit, offset; default by
    the group's keys, all rows)."""
    if storage.rollups:
        rows = await _rolled(storage, scope_path, group, since, until, page)
    else:
        rows = await _raw(storage, scope_path, group, since, until, page)
    for r in rows:
        for f in ("reads", "new_readers", "acks"):
            r[f] = int(r[f] or 0)
        r["dwell_s"] = round(float(r["dwell_s"] or 0), 3)
    return rows


async def _rolled(storage, scope_path: str, group: str, since: str, until: str, page: str) -> list:
    """From the daily roll-ups (whole days) and the records (partial days)."""
    args: list[Any] = []
    by_community = group != "content"
    boxes = None
    if by_boxes(scope_path, by_community):
        async with storage.read_tx() as c:
            boxes = (await storage.scope_filter(c, scope_path))[1]
    inner = totals_sql(
        ROLLUPS["reading_stats"], scope_path, since, until, by_community, args,
        grouped=group != "community", boxes=boxes, **await storage.rollup_options(by_community),
    )  # fmt: skip
    keys = {
        "content": ["t.content_id"],
        "community": ["a.id AS community_id", "a.path AS area_path"],
        "content_community": ["t.content_id", "a.id AS community_id", "a.path AS area_path"],
    }[group]
    join = " JOIN areas a ON a.path = t.area" if by_community else ""
    by = ", ".join(str(i + 1) for i in range(len(keys)))
    sql = (
        f"SELECT {', '.join(keys)}, t.reads, t.new_readers, t.acks, t.dwell_s"
        f" FROM ({inner}) t{join} {page or 'ORDER BY ' + by}"
    )
    async with storage.read_tx() as c:
        await c.execute(ROLLUP_SETTINGS)
        return await c.fetch(sql, *args)


async def _raw(storage, scope_path: str, group: str, since: str, until: str, page: str) -> list:
    j = storage.jtext
    keys = {
        "content": [f"{j('r.payload', 'content_id')} AS content_id"],
        "community": ["a.id AS community_id", "a.path AS area_path"],
        "content_community": [
            f"{j('r.payload', 'content_id')} AS content_id",
            "a.id AS community_id",
            "a.path AS area_path",
        ],
    }[group]
    sums = ", ".join(
        f"sum(CAST({j('r.payload', f)} AS {t})) AS {f}"
        for f, t in (
            ("reads", "BIGINT"), ("new_readers", "BIGINT"), ("acks", "BIGINT"),
            ("dwell_s", "DOUBLE PRECISION"),
        )
    )  # fmt: skip
    by = ", ".join(str(i + 1) for i in range(len(keys)))
    args: list[Any] = [scope_path]
    window = ts_window(args, since, until)  # only the bounds given: months are pruned
    sql = (
        f"SELECT {', '.join(keys)}, {sums}"
        " FROM records r JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
        " WHERE substr(a.path, 1, length($1)) = $1 AND r.kind = 'reading_stats'"
        f"{window} GROUP BY {by} {page or 'ORDER BY ' + by}"
    )
    async with storage.tx() as c:
        return await c.fetch(sql, *args)


@api.route(
    "GET",
    "/api/v1/ops/stats/reading",
    summary="Portal reading reach (reads, first-time readers, acks, dwell) per item / community",
    tag="stats",
    auth="ops",
    query=ReadingQuery,
)
async def stats_reading(request: web.Request, q: ReadingQuery, body: None) -> web.Response:
    # Sorted and cut in SQL: the whole listing of a network's communities took longer to
    # send than to sum (bench/stats100m.py). One more row tells whether a next page exists.
    keys = {"content": "1", "community": "1, 2", "content_community": "1, 2, 3"}[q.group]
    order = keys if q.order == "key" else f"reads DESC, {keys}"
    page = f"ORDER BY {order} LIMIT {q.limit + 1} OFFSET {q.offset}"  # validated integers
    storage = request.app[CLOUD].storage
    rows = await reading_totals(
        storage, scope(request), q.group, q.since or "", q.until or "", page
    )
    more = len(rows) > q.limit
    return ok({"items": rows[: q.limit], "next_offset": q.offset + q.limit if more else None})
