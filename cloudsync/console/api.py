"""Ops API endpoints the console needs beyond cloudsync/ops_api.py: the overview's health, the
audit log, alert acknowledgement and the live alert stream. Scripts may call them too (bearer
token); every one reads and acts only inside the caller's area, like the rest of the ops API.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError

from cloudsync.console.auth import SETTINGS, VIA, session_user
from cloudsync.context import CLOUD, err
from cloudsync.ops_api import (
    AREA_ID,
    FREE,
    SHORT,
    area_in_scope,
    attach_acks,
    box_in_scope,
    require_admin,
    scope,
)
from cloudsync.routing import AUDIT_AREA, AUTH_OF, OPS_USER, Api, explain, ok
from common import playout

api = Api()  # this module's route table (cloudsync/app.py includes it)
STREAM_PATH = "/api/v1/ops/alerts/stream"
LATE_S = 30.0  # the live alert stream looks back this far for uploads that committed late
LOOK_BACK_PAGE, LOOK_BACK_PAGES = 500, 40  # its look-back reads up to 20,000 alerts a look


def box_health(box: dict[str, Any], now: datetime, offline_after_s: float) -> dict[str, Any]:
    seen = box["last_seen_at"]
    age = (now - datetime.fromisoformat(seen)).total_seconds() if seen else None
    online = not box["revoked_at"] and age is not None and age <= offline_after_s
    devices = box["devices"] or []
    return {
        "id": box["id"],
        "name": box["name"],
        "state": "revoked" if box["revoked_at"] else "online" if online else "offline",
        "last_seen_at": seen,
        "seen_s_ago": round(age, 1) if age is not None else None,
        "version": box["software_version"],
        "backlog_rows": box["outbox_rows"],
        "backlog_bytes": box["outbox_bytes"],
        "devices": len(devices),
        "devices_offline": sum(1 for d in devices if d.get("state") != "online"),
    }


# Up to this many communities in scope the overview lists them all (a district, a city of a
# few hundred); above it, the areas above them with their counts, and one area's communities.
LIST_ALL_UP_TO = 300


class OverviewQuery(BaseModel):
    area: str | None = Field(None, pattern=AREA_ID)  # list this area's communities


@api.route(
    "GET",
    "/api/v1/ops/overview",
    summary="Area tree in scope with counts (communities, boxes online, open critical alerts)"
    " per area, and each listed community's health (boxes online, last seen, version,"
    " backlog, devices offline, open critical alerts): all communities up to"
    f" {LIST_ALL_UP_TO}, else those of ?area=",
    tag="console",
    auth="ops",
    query=OverviewQuery,
    responses={404: "No such area in scope"},
)
async def overview(request: web.Request, q: OverviewQuery, body: None) -> web.Response:
    settings = request.app[SETTINGS]
    storage = request.app[CLOUD].storage
    focus = (await area_in_scope(request, q.area))["path"] if q.area else None
    now = datetime.now(UTC)
    total = await storage.area_count(scope(request), "community")
    list_all = total <= LIST_ALL_UP_TO
    # box_health's "online" in SQL: last_seen_at is utcnow()'s ISO text, which sorts as time.
    cutoff = now - timedelta(seconds=settings.offline_after_s)
    seen_after = cutoff.isoformat(timespec="microseconds")
    rows = await storage.overview_rows(scope(request), seen_after, focus, list_all)
    by_community: dict[str, list[dict[str, Any]]] = {}
    for b in rows["boxes"]:
        by_community.setdefault(b["community_id"], []).append(
            box_health(b, now, settings.offline_after_s)
        )
    crit = {r["community_id"]: int(r["n"]) for r in rows["critical"]}
    # Per-parent counts, rolled up each area's ancestors (parents come before children).
    parent = {a["id"]: a["parent_id"] for a in rows["areas"] if a["level"] != "community"}
    zero = {"communities": 0, "boxes": 0, "boxes_online": 0, "open_critical": 0}
    counts: dict[str, dict[str, int]] = {a: dict(zero) for a in parent}
    place: dict[str, tuple[float, float]] = {}

    def add(area: str | None, key: str, n: int) -> None:
        while area in counts:
            counts[area][key] += n
            area = parent[area]

    for r in rows["communities"]:
        add(r["parent_id"], "communities", int(r["n"]))
        if r["lat"] is not None and r["lon"] is not None:
            place[r["parent_id"]] = (float(r["lat"]), float(r["lon"]))
    for r in rows["online"]:
        add(r["parent_id"], "boxes", int(r["n"]))
        add(r["parent_id"], "boxes_online", int(r["online"] or 0))
    for r in rows["critical"]:
        add(r["parent_id"], "open_critical", int(r["n"]))
    out = []
    for a in rows["areas"]:
        item = dict(a)
        if a["level"] == "community":
            bx = by_community.get(a["id"], [])
            item["boxes"] = bx
            item["open_critical"] = crit.get(a["id"], 0)
            item["health"] = (
                "none"
                if not bx
                else "online"
                if all(b["state"] == "online" for b in bx)
                else "offline"
            )
        else:
            item |= counts[a["id"]]
            if item["lat"] is None and a["id"] in place:  # its communities' middle, for the map
                item["lat"], item["lon"] = place[a["id"]]
        out.append(item)
    boxes = sum(int(r["n"]) for r in rows["online"])
    online = sum(int(r["online"] or 0) for r in rows["online"])
    totals = {"communities": total, "boxes": boxes, "boxes_online": online,
              "boxes_offline": boxes - online,
              "open_critical": sum(int(r["n"]) for r in rows["critical"])}  # fmt: skip
    return ok({"now": now.isoformat(), "offline_after_s": settings.offline_after_s,
               "totals": totals, "communities_listed": "all" if list_all else
               "area" if focus else "none", "areas": out})  # fmt: skip


class AuditQuery(BaseModel):
    actor: str | None = Field(None, max_length=100, pattern=FREE)
    before: int = Field(0, ge=0, lt=2**63)  # an audit row id (BIGINT)
    limit: int = Field(100, ge=1, le=500)


@api.route(
    "GET",
    "/api/v1/ops/audit",
    summary="Audit log of writes in scope, newest first (who, what, which area, status)",
    tag="console",
    auth="ops",
    query=AuditQuery,
)
async def audit_log(request: web.Request, q: AuditQuery, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.audit_list(scope(request), q.actor, q.before, q.limit)
    return ok({"items": rows, "next_before": rows[-1]["id"] if len(rows) == q.limit else None})


class AlertAck(BaseModel):
    state: Literal["acknowledged", "assigned", "closed"] = "acknowledged"
    assignee: str | None = Field(None, max_length=100, pattern=FREE)
    note: str = Field("", max_length=2000, pattern=FREE)


@api.route(
    "POST",
    "/api/v1/ops/alerts/{box_id}/{seq}/ack",
    summary="Acknowledge, assign or close an alert, with a note",
    tag="console",
    auth="ops",
    body=AlertAck,
    responses={404: "No such alert in scope"},
)
async def alert_ack(request: web.Request, q: None, body: AlertAck) -> web.Response:
    by = require_admin(request)
    box_id, seq_text = request.match_info["box_id"], request.match_info["seq"]
    if not seq_text.isdigit() or len(seq_text) > 18:
        return err(400, "seq: not a record number", field="seq")
    storage = request.app[CLOUD].storage
    alert = await storage.alert_in_scope(box_id, int(seq_text), scope(request))
    if alert is None:
        return err(404, f"no alert {box_id}/{seq_text} in your scope")
    request[AUDIT_AREA] = alert["area_path"]
    if body.state == "assigned" and not body.assignee:
        return err(400, "assignee: name who takes the alert", field="assignee")
    row = await storage.alert_ack(box_id, int(seq_text), body.state, body.assignee, body.note, by)
    return ok(row)


class ReportStatsQuery(BaseModel):
    area: str | None = Field(None, pattern=AREA_ID)
    weeks: int = Field(12, ge=1, le=104)


@api.route(
    "GET",
    "/api/v1/ops/stats/reports",
    summary="Reports per ISO week (count, mean sentiment), per category, and a community x"
    " category table, for the last N weeks in scope",
    tag="stats",
    auth="ops",
    responses={404: "No such area in scope"},
    query=ReportStatsQuery,
)
async def report_stats(request: web.Request, q: ReportStatsQuery, body: None) -> web.Response:
    within = (await area_in_scope(request, q.area))["path"] if q.area else scope(request)
    today = datetime.now(UTC).date()
    start = today - timedelta(days=today.weekday() + 7 * (q.weeks - 1))  # a Monday
    # The weekly roll-up a trigger keeps as reports arrive (migrations postgres 0007, sqlite
    # 0006): ~100x fewer rows than the reports themselves (bench/console.py).
    weeks, cells = await request.app[CLOUD].storage.report_weekly(within, start.isoformat())
    got = {w["week"]: w for w in weeks}
    line = []
    for i in range(q.weeks):  # every week, also the empty ones (the line has no holes)
        monday = start + timedelta(days=7 * i)
        y, w, _ = monday.isocalendar()
        row = got.get(monday.isoformat())
        n, mood_n = (int(row["n"]), int(row["mood_n"])) if row else (0, 0)
        mood = round(float(row["mood_sum"]) / mood_n, 3) if row and mood_n else None
        line.append({"week": f"{y}-W{w:02d}", "start": monday.isoformat(), "n": n, "mood": mood})
    by_cat: dict[str, int] = {}
    communities: list[str] = []
    table: dict[str, dict[str, int]] = {}
    for c in cells:
        cat = c["category"] or "other"
        by_cat[cat] = by_cat.get(cat, 0) + int(c["n"])
        if c["community_id"] not in table:
            communities.append(c["community_id"])
        counts = table.setdefault(c["community_id"], {})
        counts[cat] = counts.get(cat, 0) + int(c["n"])  # '' and 'other' are one column
    cats = sorted(by_cat, key=lambda k: -by_cat[k])
    return ok(
        {
            "since": start.isoformat(),
            "weeks": line,
            "categories": [{"category": k, "n": by_cat[k]} for k in cats],
            "heat": {
                "categories": cats,
                "rows": [
                    {"community_id": cid, "counts": [table[cid].get(k, 0) for k in cats]}
                    for cid in communities
                ],
            },
        }
    )


AREAS_SHOWN = 500  # the content statistics' community table: its first rows by plays, reads
ITEMS_SHOWN = 200  # and its content items


class ContentStatsQuery(BaseModel):
    area: str | None = Field(None, pattern=AREA_ID)
    days: int = Field(30, ge=1, le=366)


@api.route(
    "GET",
    "/api/v1/ops/stats/content",
    summary="Proof of play (plays, seconds shown) and portal reading (reads, first-time"
    " readers, acknowledgements) per content item and per community in scope, since the"
    " start of the UTC day N days ago",
    tag="stats",
    auth="ops",
    responses={404: "No such area in scope"},
    query=ContentStatsQuery,
)
async def content_stats(request: web.Request, q: ContentStatsQuery, body: None) -> web.Response:
    within = (await area_in_scope(request, q.area))["path"] if q.area else scope(request)
    # From the start of the (UTC, as the boxes' ts) day ``days`` ago: at least ``days`` x 24
    # hours, less than a day more, and every piece of the window a whole day or coarser, so
    # no per-community hours or records of a first partial day are read (those grew with
    # the rows: a year's first day came from the records, its hours pruned; stats7).
    since = (datetime.now(UTC) - timedelta(days=q.days)).date().isoformat()
    storage = request.app[CLOUD].storage
    if storage.rollups:
        # PostgreSQL: the whole answer from one statement (as below, ranked the same way).
        body = await storage.content_console_json(within, since, ITEMS_SHOWN, AREAS_SHOWN)
        return web.Response(text=body, content_type="application/json")
    # SQLite (the small install): summed from the records, merged and ranked here.
    zero = {"plays": 0, "play_s": 0.0, "reads": 0, "readers": 0, "acks": 0}
    items: dict[str, dict[str, Any]] = {}
    areas: dict[str, dict[str, Any]] = {}
    tables = [("content", items, "content_id"), ("community", areas, "community_id")]
    totals = await storage.content_stats(within, since, "")
    for by, table, name in tables:
        for what, fields in (("plays", ("plays", "ms")), ("reads", ("reads", "readers", "acks"))):
            for r in totals[f"{what}_by_{by}"]:
                key = (r[name] or "?") if by == "content" else r[name]
                acc = table.setdefault(key, {name: key, **zero})
                for f in fields:
                    if f == "ms":
                        acc["play_s"] += int(r["ms"] or 0) / 1000
                    else:
                        acc[f] += int(r[f] or 0)
    names = await storage.community_names(list(areas))
    for cid, a in areas.items():
        a.setdefault("name", names.get(cid, cid))
    for table in (items, areas):
        for acc in table.values():
            acc["play_s"] = round(acc["play_s"], 1)

    def order(acc: dict[str, Any]) -> tuple[int, int]:
        return (-acc["plays"], -acc["reads"])

    return ok(
        {
            "since": since,
            "items": sorted(items.values(), key=order)[:ITEMS_SHOWN],
            "areas": sorted(areas.values(), key=order)[:AREAS_SHOWN],
        }
    )


BOARD_COLUMNS = ("open", "assigned", "in_progress", "resolved", "confirmed")
URGENCY_RANK = {"immediate": 0, "high": 1, "normal": 2, "low": 3}
DONE = ("resolved", "confirmed")


class BoardQuery(BaseModel):
    area: str | None = Field(None, pattern=AREA_ID)
    limit: int = Field(2000, ge=1, le=10000)


@api.route(
    "GET",
    "/api/v1/ops/tickets/board",
    summary="Repair tickets by state (each ticket's latest record), overdue first, then by"
    " urgency and age",
    tag="records",
    auth="ops",
    responses={404: "No such area in scope"},
    query=BoardQuery,
)
async def tickets_board(request: web.Request, q: BoardQuery, body: None) -> web.Response:
    within = (await area_in_scope(request, q.area))["path"] if q.area else scope(request)
    rows = await request.app[CLOUD].storage.tickets_latest(within, q.limit)
    now = datetime.now(UTC)
    columns: dict[str, list[dict[str, Any]]] = {c: [] for c in BOARD_COLUMNS}
    for r in rows:
        p = r["payload"]
        status = "open" if p.get("status") == "reopened" else p.get("status", "open")
        due = p.get("due_at")
        due_at = _parse(due) if due else None
        r["overdue"] = bool(due_at and status not in DONE and due_at < now)
        columns.setdefault(status, []).append(r)
    for items in columns.values():
        items.sort(
            key=lambda r: (
                not r["overdue"],
                URGENCY_RANK.get(r["payload"].get("urgency", "normal"), 2),
                r["payload"].get("ts") or r["ts"],
            )
        )
    columns["confirmed"] = columns["confirmed"][-50:]  # done long ago: the newest few only
    return ok({"columns": columns, "now": now.isoformat()})


def _parse(text: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@api.route(
    "GET",
    "/api/v1/ops/tickets/{ticket_id}/history",
    summary="Every record of one ticket as its box sent them (its history), oldest first",
    tag="records",
    auth="ops",
    responses={404: "No such ticket in scope"},
)
async def ticket_history(request: web.Request, q: None, body: None) -> web.Response:
    tid = request.match_info["ticket_id"]
    rows = await request.app[CLOUD].storage.record_history("repair_ticket", tid, scope(request))
    if not rows:
        return err(404, f"no ticket {tid!r} in your scope")
    return ok({"items": rows})


class PreviewQuery(BaseModel):
    screen: str = Field("preview", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    tags: str = Field("", max_length=500, pattern=r"^[A-Za-z0-9_.:, -]*$")  # comma separated
    at: datetime | None = None  # default: now
    hours: float = Field(24, gt=0, le=24 * 14)
    tz: str = Field("Asia/Shanghai", max_length=64, pattern=r"^[A-Za-z0-9_/+-]+$")


@api.route(
    "GET",
    "/api/v1/ops/boxes/{box_id}/preview",
    summary="What a screen of this box plays at a time and after, from what was published to"
    " the box, by the box's own resolver (common/playout.py); files count as cached",
    tag="content",
    auth="ops",
    query=PreviewQuery,
    responses={404: "No such box in scope"},
)
async def preview(request: web.Request, q: PreviewQuery, body: None) -> web.Response:
    box = await box_in_scope(request, request.match_info["box_id"])
    try:
        tz = ZoneInfo(q.tz)
    except (ZoneInfoNotFoundError, ValueError):
        return err(400, f"tz: unknown time zone {q.tz!r}", field="tz")
    at = q.at or datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=tz)
    cat = playout.catalog_from_published(
        await request.app[CLOUD].storage.feed_published(box["id"]), tz
    )
    screen = playout.ScreenRef(q.screen, tuple(t for t in q.tags.split(",") if t.strip()))
    segments = playout.plan(cat, screen, at, at + timedelta(hours=q.hours))
    now = playout.item_in(segments[0], at)
    titles = {i.id: i.title for i in cat.items.values()}
    titles |= {e.id: e.title for e in cat.emergencies}
    return ok(
        {
            "at": at.isoformat(),
            "playing": {
                "content_id": now.content_id,
                "title": titles.get(now.content_id, ""),
                "source": now.source,
                "started_at": now.started_at.isoformat(),
                "ends_at": now.ends_at.isoformat(),
                "layout": now.layout,
            },
            "segments": [
                {
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                    "source": s.source,
                    "layout": s.layout,
                    "items": [
                        {"content_id": c, "title": titles.get(c, ""), "ms": ms} for c, ms in s.items
                    ],
                }
                for s in segments[:50]
            ],
        }
    )


class StreamQuery(BaseModel):
    level: Literal["critical", "warning", "info"] | None = None
    type: str | None = SHORT
    max_s: float = Field(600, gt=0, le=3600)  # the browser's EventSource reconnects after
    # Start at this arrival time (the alert list's ``as_of``) instead of now; a reconnect's
    # Last-Event-ID wins over it.
    since: str | None = Field(
        None, max_length=40, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.+]+$"
    )


async def _not_sent(
    storage: Any, scope: str, horizon: str, cursor: tuple[str, str, int],
    skip: set[tuple[str, int]],
) -> list[dict[str, Any]]:
    """The look-back: alerts that arrived after ``horizon`` up to ``cursor`` and are not in
    ``skip``. Read page by page: in a flood the window's first page is all alerts already
    sent, and a late one behind them must still be found."""
    out: list[dict[str, Any]] = []
    since, after = horizon, None
    for _ in range(LOOK_BACK_PAGES):  # bounded; beyond it the next look goes on
        page = await storage.alerts_since(scope, since, LOOK_BACK_PAGE, after)
        out += [r for r in page
                if (r["received_at"], r["box_id"], r["seq"]) <= cursor  # later: next look
                and (r["box_id"], r["seq"]) not in skip]
        if len(page) < LOOK_BACK_PAGE or (
            (page[-1]["received_at"], page[-1]["box_id"], page[-1]["seq"]) > cursor
        ):
            break
        since, after = page[-1]["received_at"], (page[-1]["box_id"], page[-1]["seq"])
    return out


async def alert_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each alert that arrives in scope from now on (``event: alert``).
    The stream re-checks the session now and then and ends when it has expired."""
    try:
        q = StreamQuery.model_validate(dict(request.query))
    except ValidationError as e:
        bad = explain(e, "query")  # as the routes of the document answer
        return err(400, str(bad), field=bad.field)
    settings = request.app[SETTINGS]
    storage = request.app[CLOUD].storage
    user = request[OPS_USER]
    # Resume after the last event the browser saw: Last-Event-ID is "<arrival time> <box id>
    # <seq>" (an arrival time alone, from before: strictly after it).
    last = request.headers.get("Last-Event-ID", "").split(" ")
    if not last[0] and q.since:
        last = [q.since]  # as a reconnect after it: with the look-back for late commits
    since = last[0] or datetime.now(UTC).isoformat(timespec="microseconds")
    # (a seq past 64 bits, as from a forged id, is no seq: probe 12, it broke the stream)
    seq_ok = len(last) == 3 and last[2].isascii() and last[2].isdigit() and len(last[2]) <= 18
    after = (last[1], int(last[2])) if seq_ok else None
    start = since
    if last[0]:
        # A reconnect: an alert stamped before the last event the browser saw may commit only
        # now, so look back LATE_S before it too. What the browser already has comes again
        # with its old id (the console drops repeats by box id and seq).
        try:
            start = (datetime.fromisoformat(since) - timedelta(seconds=LATE_S)).isoformat(
                timespec="microseconds")
        except ValueError:
            return err(400, "Last-Event-ID: not an event id of this stream")
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    await resp.write(b"retry: 2000\n\n")
    sent = dict[tuple[str, int], str]()  # keys within the look-back
    end = time.monotonic() + q.max_s
    next_check = next_ping = time.monotonic() + 15
    while time.monotonic() < end:
        # aiohttp does not cancel a handler when its client goes away: stop polling then.
        if request.transport is None or request.transport.is_closing():
            break
        rows = await storage.alerts_since(user["scope"], since, 200, after)
        if rows:
            # The whole key: the rest of a batch shares its last row's arrival time.
            since, after = rows[-1]["received_at"], (rows[-1]["box_id"], rows[-1]["seq"])
        # An upload is stamped with its arrival time before it commits: on PostgreSQL one
        # waiting for its box row committed after later ones the stream had passed. Look
        # back LATE_S for alerts not sent yet.
        horizon = max(start, (datetime.fromisoformat(since) - timedelta(seconds=LATE_S))
                      .isoformat(timespec="microseconds"))
        sent = {k: t for k, t in sent.items() if t > horizon}
        cursor = (since, *after) if after else (since, "\U0010ffff", 0)
        new = {(r["box_id"], r["seq"]) for r in rows}
        rows += await _not_sent(storage, user["scope"], horizon, cursor, sent.keys() | new)
        if rows:
            await attach_acks(request, rows)
            for r in rows:
                sent[(r["box_id"], r["seq"])] = r["received_at"]
                p = r["payload"]
                if (q.level and p.get("level") != q.level) or (q.type and p.get("type") != q.type):
                    continue
                data = json.dumps(r, ensure_ascii=False)
                event_id = f"{r['received_at']} {r['box_id']} {r['seq']}"
                await resp.write(f"id: {event_id}\nevent: alert\ndata: {data}\n\n".encode())
        now = time.monotonic()
        if now > next_ping:
            await resp.write(b": ping\n\n")
            next_ping = now + 15
        if now > next_check:
            # The credential it began with must still hold: a session that ended, and a token
            # that was rotated or whose user was removed, stop the stream.
            if not await still_signed_in(request, user):
                await resp.write(b"event: expired\ndata: {}\n\n")
                break
            next_check = now + 10
        await asyncio.sleep(settings.alert_poll_s)
    return resp


async def still_signed_in(request: web.Request, user: dict[str, Any]) -> bool:
    """Whether the request's credential still names ``user`` with the same role and scope."""
    from cloudsync.app import token_hash  # app.py imports this module

    if request.get(VIA) == "session":
        now = await session_user(request)
    else:
        header = request.headers.get("Authorization", "")
        now = await request.app[CLOUD].storage.ops_user_by_token(token_hash(header[7:].strip()))
    return now is not None and all(now[k] == user[k] for k in ("name", "role", "scope"))


def install(app: web.Application) -> None:
    """The stream is outside the OpenAPI document (an endless answer is not fuzzable)."""
    app.router.add_get(STREAM_PATH, alert_stream)
    app.setdefault(AUTH_OF, {})[("GET", STREAM_PATH)] = "ops"
