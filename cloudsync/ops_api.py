"""The ops API (``/api/v1/ops/...``): every ops user sees and acts only inside their area.

Roles: ``viewer`` reads, ``admin`` also writes. An ops user's area is a path prefix
(``/jinan/lixia/``); a user without an area sees the whole network.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from cloudsync import textmodels
from cloudsync.body import read_body
from cloudsync.box_api import serve_blob
from cloudsync.context import CLOUD, err
from cloudsync.routing import AUDIT_AREA, OPS_USER, Api, BadRequest, ok

log = logging.getLogger(__name__)
SLOW_BROADCAST_S = 1.0  # a broadcast slower than this to queue is logged with its parts
api = Api()  # this module's route table (cloudsync/app.py includes it)

AREA_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
BOX_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
SHORT = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
FREE = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def scope(request: web.Request) -> str:
    return request[OPS_USER]["scope"]


def require_admin(request: web.Request) -> str:
    if request[OPS_USER]["role"] != "admin":
        raise web.HTTPForbidden(
            text=json.dumps({"error": "admin role required"}), content_type="application/json"
        )
    return request[OPS_USER]["name"]


async def area_in_scope(request: web.Request, area_id: str) -> dict[str, Any]:
    area = await request.app[CLOUD].storage.area_get(area_id)
    if area is None or not area["path"].startswith(scope(request)):
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no area {area_id!r} in your scope"}),
            content_type="application/json",
        )
    request[AUDIT_AREA] = area["path"]
    return area


async def box_in_scope(request: web.Request, box_id: str) -> dict[str, Any]:
    box = await request.app[CLOUD].storage.box_get(box_id)
    if box is None or not box["area_path"].startswith(scope(request)):
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no box {box_id!r} in your scope"}),
            content_type="application/json",
        )
    request[AUDIT_AREA] = box["area_path"]
    return box


def common_path(paths: list[str]) -> str:
    """The longest area path that is a prefix of every path ('/a/b/' and '/a/c/' -> '/a/')."""
    parts = [p.strip("/").split("/") for p in paths]
    common: list[str] = []
    for segs in zip(*parts, strict=False):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    return "/" + "".join(f"{s}/" for s in common)


class Page(BaseModel):
    after: str = Field("", max_length=128, pattern=FREE)
    limit: int = Field(100, ge=1, le=1000)


# --- who am I, areas, claim codes ---------------------------------------------------------


@api.route(
    "GET", "/api/v1/ops/me", summary="The calling ops user, role and scope", tag="ops", auth="ops"
)
async def me(request: web.Request, q: None, body: None) -> web.Response:
    u = request[OPS_USER]
    return ok({"name": u["name"], "role": u["role"], "area_id": u["area_id"], "scope": u["scope"]})


class AreasQuery(Page):
    level: Literal["city", "district", "street", "community"] | None = None


@api.route(
    "GET",
    "/api/v1/ops/areas",
    summary="Areas in scope (city → district → street → community)",
    tag="areas",
    auth="ops",
    query=AreasQuery,
)
async def areas(request: web.Request, q: AreasQuery, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.areas_list(scope(request), q.level, q.after, q.limit)
    return ok({"items": rows, "next": rows[-1]["id"] if len(rows) == q.limit else None})


class NewArea(BaseModel):
    id: str = Field(pattern=AREA_ID)
    level: Literal["city", "district", "street", "community"]
    name: str = Field(min_length=1, max_length=200, pattern=FREE)
    parent_id: str | None = Field(None, pattern=AREA_ID)
    lat: float | None = Field(None, ge=-90, le=90)  # the console's map places communities
    lon: float | None = Field(None, ge=-180, le=180)


@api.route(
    "POST",
    "/api/v1/ops/areas",
    summary="Create an area under a parent in scope",
    tag="areas",
    auth="ops",
    body=NewArea,
    responses={409: "Area exists", 404: "No such parent area in scope"},
    status=201,
)
async def create_area(request: web.Request, q: None, body: NewArea) -> web.Response:
    require_admin(request)
    if (body.lat is None) != (body.lon is None):  # half a position was dropped (probe 12)
        missing = "lon" if body.lon is None else "lat"
        raise BadRequest(f"body.{missing}: give lat and lon together", f"body.{missing}")
    if body.parent_id is None:
        if scope(request) != "/":
            return err(403, "only network-wide admins create cities")
    else:
        await area_in_scope(request, body.parent_id)
    storage = request.app[CLOUD].storage
    area = await storage.area_create(body.id, body.level, body.name, body.parent_id)
    if body.lat is not None and body.lon is not None:
        await storage.area_set_position(body.id, body.lat, body.lon)
        area = await storage.area_get(body.id)
    request[AUDIT_AREA] = area["path"]
    return ok(area, 201)


class NewClaim(BaseModel):
    ttl_hours: float = Field(72, gt=0, le=24 * 90)


@api.route(
    "POST",
    "/api/v1/ops/communities/{community_id}/claim-codes",
    summary="A one-time claim code to provision a box into this community",
    tag="areas",
    auth="ops",
    body=NewClaim,
    responses={404: "No such community in scope"},
    status=201,
)
async def claim_code(request: web.Request, q: None, body: NewClaim) -> web.Response:
    by = require_admin(request)
    area = await area_in_scope(request, request.match_info["community_id"])
    if area["level"] != "community":
        return err(
            400, f"community_id: boxes belong to a community, {area['id']!r} is a {area['level']}",
            field="community_id",
        )
    code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
    expires = (datetime.now(UTC) + timedelta(hours=body.ttl_hours)).isoformat()
    await request.app[CLOUD].storage.claim_create(
        hashlib.sha256(code.encode()).hexdigest(), area["id"], by, expires
    )
    return ok({"code": code, "community_id": area["id"], "expires_at": expires}, 201)


# --- fleet ----------------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/ops/boxes",
    summary="Fleet: boxes with last seen, software version, device health, outbox backlog",
    tag="fleet",
    auth="ops",
    query=Page,
)
async def boxes(request: web.Request, q: Page, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.boxes_list(scope(request), q.after, q.limit)
    return ok({"items": rows, "next": rows[-1]["id"] if len(rows) == q.limit else None})


def _public_box(box: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in box.items() if k not in ("secret", "prev_secret")}
    if isinstance(out.get("devices"), str):
        out["devices"] = json.loads(out["devices"])
    return out


@api.route(
    "GET",
    "/api/v1/ops/boxes/{box_id}",
    summary="One box",
    tag="fleet",
    auth="ops",
    responses={404: "No such box in scope"},
)
async def box_detail(request: web.Request, q: None, body: None) -> web.Response:
    return ok(_public_box(await box_in_scope(request, request.match_info["box_id"])))


@api.route(
    "POST",
    "/api/v1/ops/boxes/{box_id}/revoke",
    summary="Revoke a box: its requests are refused from now on",
    tag="fleet",
    auth="ops",
    responses={404: "No such box"},
)
async def revoke(request: web.Request, q: None, body: None) -> web.Response:
    require_admin(request)
    box = await box_in_scope(request, request.match_info["box_id"])
    await request.app[CLOUD].storage.box_revoke(box["id"])
    return ok({"id": box["id"], "revoked": True})


class NewCommand(BaseModel):
    target_kind: Literal["box", "door"]
    target_id: str = Field(pattern=BOX_ID)
    action: str = Field(pattern=r"^[a-z_]{1,32}$")
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: float = Field(60, gt=0, le=7 * 86400)


async def _queue(
    request: web.Request,
    box_ids: list[str],
    kind: str,
    target: str,
    action: str,
    args: dict[str, Any],
    ttl_s: float | None,
) -> list[int]:
    expires = (datetime.now(UTC) + timedelta(seconds=ttl_s)).isoformat() if ttl_s else None
    t0 = time.monotonic()
    ids = await request.app[CLOUD].storage.feed_add(
        box_ids, kind, target, action, args, request[OPS_USER]["name"], expires
    )
    if (took := time.monotonic() - t0) > SLOW_BROADCAST_S:  # the boxes wait for its commit
        log.warning("feed: %s to %d boxes took %.2f s to insert and notify", action,
                    len(box_ids), took)  # fmt: skip
    for b in box_ids:
        request.app[CLOUD].feed.wake(b)
    return ids


# Box actions that have their own route with its own checks (who may end an emergency,
# the caller's library, the record's box, waves): as a plain box command they skipped them
# (probe 12: a district admin ended the network's emergency on its boxes).
OWN_ROUTE = {
    "emergency": "/api/v1/ops/emergency",
    "emergency_cancel": "/api/v1/ops/emergency/cancel",
    "content": "/api/v1/ops/publish",
    "playlist": "/api/v1/ops/publish",
    "schedule": "/api/v1/ops/publish",
    "taxonomy": "/api/v1/ops/publish",
    "text_model": "/api/v1/ops/publish",
    "report_correction": "/api/v1/ops/reports/{report_id}/correction",
    "ticket_update": "/api/v1/ops/tickets/{ticket_id}/update",
}


@api.route(
    "POST",
    "/api/v1/ops/boxes/{box_id}/commands",
    summary="Remote command to a box or "
    "one of its devices (e.g. door open), delivered over the long-poll feed",
    tag="fleet",
    auth="ops",
    body=NewCommand,
    responses={404: "No such box"},
    status=201,
)
async def command(request: web.Request, q: None, body: NewCommand) -> web.Response:
    require_admin(request)
    if body.target_kind == "box" and (route := OWN_ROUTE.get(body.action)):
        raise BadRequest(f"body.action: send {body.action!r} with POST {route}", "body.action")
    box = await box_in_scope(request, request.match_info["box_id"])
    target = box["id"] if body.target_kind == "box" else body.target_id
    args = {**body.args, "actor": request[OPS_USER]["name"]}
    ids = await _queue(
        request, [box["id"]], body.target_kind, target, body.action, args, body.ttl_s
    )
    return ok({"feed_id": ids[0], "box_id": box["id"]}, 201)


# --- content, publishing, emergencies --------------------------------------------------------


class UploadQuery(BaseModel):
    title: str = Field("", max_length=200, pattern=FREE)


@api.route(
    "POST",
    "/api/v1/ops/content",
    summary="Upload a content file (stored by SHA-256)",
    tag="content",
    auth="ops",
    query=UploadQuery,
    raw_body="application/octet-stream",
    status=201,
)
async def content_upload(request: web.Request, q: UploadQuery, body: None) -> web.Response:
    by = require_admin(request)
    data = await read_body(request)
    if not data:
        return err(400, "body: empty file", field="body")
    sha = await asyncio.to_thread(request.app[CLOUD].blobs.put, data)
    mime = request.content_type or "application/octet-stream"
    storage = request.app[CLOUD].storage
    await storage.content_add(sha, len(data), mime[:100], q.title, by, scope(request))
    return ok(
        {"sha256": sha, "size_bytes": len(data), "mime": mime, "url": f"/api/v1/blobs/{sha}"}, 201
    )


@api.route(
    "GET",
    "/api/v1/ops/content",
    summary="Content files uploaded in your area or the areas above it",
    tag="content",
    auth="ops",
    query=Page,
)
async def content_list(request: web.Request, q: Page, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.content_list(scope(request), q.after, q.limit)
    return ok({"items": rows, "next": rows[-1]["sha256"] if len(rows) == q.limit else None})


@api.route(
    "GET",
    "/api/v1/ops/content/{sha256}",
    summary="Download a content file (Range)",
    tag="content",
    auth="ops",
    responses={404: "No such file", 206: "Partial content"},
)
async def content_get(request: web.Request, q: None, body: None) -> web.StreamResponse:
    return await serve_blob(request)


class Targets(BaseModel):
    areas: list[str] = Field(default_factory=list, max_length=1000)  # any level
    boxes: list[str] = Field(default_factory=list, max_length=10000)
    screen_tags: list[str] = Field(default_factory=list, max_length=100)  # box side filters


class Publish(BaseModel):
    action: Literal["content", "playlist", "schedule", "taxonomy", "text_model"]
    targets: Targets
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: float | None = Field(None, gt=0, le=366 * 86400)  # (past a date's range: a 500)


def _refuse(cls: type[web.HTTPException], message: str) -> web.HTTPException:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def _targets(request: web.Request, t: Targets) -> list[str]:
    """The boxes a publish or broadcast reaches. Every named area and box must exist (404)
    and lie inside the caller's scope (403): an admin aiming outside its area is told so,
    instead of a 201 that reaches no box (issue 13 #12)."""
    if not t.areas and not t.boxes:
        raise BadRequest("targets: name at least one area or box", "targets")
    storage, mine = request.app[CLOUD].storage, scope(request)
    area_paths, box_paths = await storage.target_paths(t.areas, t.boxes)
    for kind, one, names, paths in (
        ("areas", "area", t.areas, area_paths),
        ("boxes", "box", t.boxes, box_paths),
    ):
        if unknown := [n for n in names if n not in paths]:
            raise _refuse(web.HTTPNotFound, f"targets.{kind}: no {one} {unknown[0]!r}")
        if outside := [n for n in names if not paths[n].startswith(mine)]:
            raise _refuse(
                web.HTTPForbidden,
                f"targets.{kind}: {outside[0]!r} is outside your scope {mine}",
            )
    # The audit log files the write under the narrowest area holding every target.
    request[AUDIT_AREA] = common_path([*area_paths.values(), *box_paths.values()])
    return await storage.boxes_for_targets(mine, t.areas, t.boxes)


@api.route(
    "POST",
    "/api/v1/ops/publish",
    summary="Publish content, a playlist, a schedule or taxonomy to areas / boxes / screen tags",
    tag="content",
    auth="ops",
    body=Publish,
    responses={404: "No such area or box", 403: "Target outside your scope"},
    status=201,
)
async def publish(request: web.Request, q: None, body: Publish) -> web.Response:
    require_admin(request)
    box_ids = await _targets(request, body.targets)
    args = dict(body.args)
    # The args are the box's own record (edge/screens parses them strictly): screen tags
    # become a schedule's own ``tags``; a content item or playlist targets no screen.
    if body.action == "schedule" and body.targets.screen_tags:
        args["tags"] = sorted({*args.get("tags", []), *body.targets.screen_tags})
    if body.action == textmodels.ACTION:
        # A retrained model (cloudsync/textmodels.py) from the caller's content library.
        sha = args.get("sha256")
        meta = None
        if isinstance(sha, str):
            meta = await request.app[CLOUD].storage.content_get(sha, scope(request))
        if not isinstance(sha, str) or meta is None or meta["mime"] != textmodels.MIME:
            raise BadRequest("args.sha256: no text model with that SHA-256 in your library",
                             "args.sha256")
        args = textmodels.ship_args(sha, meta["size_bytes"], meta["title"])
    ids = await _queue(request, box_ids, "box", "-", body.action, args, body.ttl_s)
    return ok({"boxes": len(box_ids), "feed_ids": ids[:100]}, 201)


class Emergency(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=FREE)
    message: str = Field(min_length=1, max_length=2000, pattern=FREE)
    level: Literal["critical", "warning", "info"] = "critical"
    targets: Targets
    duration_s: float = Field(3600, gt=0, le=7 * 86400)


@api.route(
    "POST",
    "/api/v1/ops/emergency",
    summary="Emergency broadcast to every screen in the targets",
    tag="content",
    auth="ops",
    body=Emergency,
    responses={404: "No such area or box", 403: "Target outside your scope"},
    status=201,
)
async def emergency(request: web.Request, q: None, body: Emergency) -> web.Response:
    require_admin(request)
    box_ids = await _targets(request, body.targets)
    eid = f"em-{secrets.token_hex(6)}"
    until = (datetime.now(UTC) + timedelta(seconds=body.duration_s)).isoformat()
    # The box's Emergency record (edge/core/standard.py), which its screens take over with.
    args = {
        "id": eid,
        "title": body.title or body.message[:40],
        "body": body.message,
        "level": body.level,
        "expires_at": until,
        "tags": body.targets.screen_tags,
        "source": "cloud",
    }
    await _queue(request, box_ids, "box", "-", "emergency", args, body.duration_s)
    return ok({"emergency_id": eid, "boxes": len(box_ids), "until": until}, 201)


class EmergencyCancel(BaseModel):
    emergency_id: str = Field(pattern=BOX_ID)
    targets: Targets


@api.route(
    "POST",
    "/api/v1/ops/emergency/cancel",
    summary="End an emergency broadcast",
    tag="content",
    auth="ops",
    body=EmergencyCancel,
    responses={404: "No such area or box",
               403: "Target outside your scope, or sent for a wider area"},
)
async def emergency_cancel(request: web.Request, q: None, body: EmergencyCancel) -> web.Response:
    require_admin(request)
    box_ids = await _targets(request, body.targets)
    # Only the sender's area or a wider one ends a broadcast: a street must not lift the
    # city's typhoon warning on its own screens (security probe 5). A sender removed since
    # (or a feed pruned) leaves nobody to defer to: the caller's scope decides.
    storage = request.app[CLOUD].storage
    if (sender := await storage.emergency_sender(body.emergency_id)) is not None:
        user = await storage.ops_user_get(sender)
        if user is not None and not user["scope"].startswith(scope(request)):
            raise _refuse(web.HTTPForbidden, (
                f"emergency_id: {body.emergency_id} was sent for {user['scope']}; only an"
                " admin of that area or a wider one can end it"))
    await _queue(
        request, box_ids, "box", "-", "emergency_cancel", {"id": body.emergency_id}, None
    )
    return ok({"emergency_id": body.emergency_id, "boxes": len(box_ids)})


# --- reports, alerts, tickets, statistics ------------------------------------------------------


class RecordsQuery(Page):
    box: str | None = Field(None, pattern=BOX_ID)
    since: str | None = Field(None, max_length=40, pattern=FREE)
    until: str | None = Field(None, max_length=40, pattern=FREE)
    cursor: str | None = Field(None, max_length=300, pattern=r"^[A-Za-z0-9_=-]+$")
    area: str | None = Field(None, pattern=AREA_ID)  # narrow to an area inside the scope


class ReportsQuery(RecordsQuery):
    category: str | None = SHORT
    urgency: Literal["immediate", "high", "normal", "low"] | None = None
    status: str | None = SHORT
    q: str | None = Field(None, min_length=1, max_length=100, pattern=FREE)  # id or text


class AlertsQuery(RecordsQuery):
    level: Literal["critical", "warning", "info"] | None = None
    type: str | None = SHORT


class TicketsQuery(RecordsQuery):
    status: str | None = SHORT
    urgency: Literal["immediate", "high", "normal", "low"] | None = None


def _cursor(text: str | None) -> tuple[str, str, int] | None:
    if not text:
        return None
    try:
        ts, box, seq = json.loads(base64.urlsafe_b64decode(text.encode()))
        got = str(ts), str(box), int(seq)
    except (ValueError, TypeError, OverflowError) as e:
        raise BadRequest("query.cursor: not a cursor from a previous page", "query.cursor") from e
    # What the database can compare: a 64-bit seq, no NUL (probe 12: those were a 500).
    if not 0 <= got[2] < 2**63 or "\x00" in got[0] + got[1]:
        raise BadRequest("query.cursor: not a cursor from a previous page", "query.cursor")
    return got


async def attach_acks(request: web.Request, items: list[dict[str, Any]]) -> None:
    """Each alert's acknowledgement (state, assignee, note, by whom) or None."""
    acks = await request.app[CLOUD].storage.alert_acks([(r["box_id"], r["seq"]) for r in items])
    for r in items:
        r["ack"] = acks.get((r["box_id"], r["seq"]))


async def _records(
    request: web.Request, kinds: list[str], q: RecordsQuery, fields: tuple[str, ...]
) -> web.Response:
    where = {f: getattr(q, f) for f in fields if getattr(q, f) is not None}
    within = (await area_in_scope(request, q.area))["path"] if q.area else scope(request)
    # The arrival time this list is as of (taken before it is read): the live alert stream
    # started there (``?since=``) misses nothing that arrived in between (probe 12).
    as_of = datetime.now(UTC).isoformat(timespec="microseconds")
    rows = await request.app[CLOUD].storage.records_query(
        kinds,
        within,
        q.box,
        q.since,
        q.until,
        where,
        _cursor(q.cursor),
        q.limit,
        getattr(q, "q", None),
    )
    nxt = None
    if len(rows) == q.limit:
        last = rows[-1]
        nxt = base64.urlsafe_b64encode(
            json.dumps([last["ts"], last["box_id"], last["seq"]]).encode()
        ).decode()
    if kinds == ["alert"]:
        await attach_acks(request, rows)
        return ok({"items": rows, "next_cursor": nxt, "as_of": as_of})
    return ok({"items": rows, "next_cursor": nxt})


@api.route(
    "GET",
    "/api/v1/ops/reports",
    summary="Residents' reports, newest first, filtered and paginated (cursor)",
    tag="records",
    auth="ops",
    responses={404: "No such area in scope"},
    query=ReportsQuery,
)
async def reports(request: web.Request, q: ReportsQuery, body: None) -> web.Response:
    return await _records(request, ["report"], q, ("category", "urgency", "status"))


@api.route(
    "GET",
    "/api/v1/ops/alerts",
    summary="Alerts, newest first, filtered and paginated",
    tag="records",
    auth="ops",
    responses={404: "No such area in scope"},
    query=AlertsQuery,
)
async def alerts(request: web.Request, q: AlertsQuery, body: None) -> web.Response:
    return await _records(request, ["alert"], q, ("level", "type"))


@api.route(
    "GET",
    "/api/v1/ops/tickets",
    summary="Repair tickets as boxes reported them last (each ticket's newest record; its"
    " history: /api/v1/ops/tickets/{ticket_id}/history)",
    tag="records",
    auth="ops",
    responses={404: "No such area in scope"},
    query=TicketsQuery,
)
async def tickets(request: web.Request, q: TicketsQuery, body: None) -> web.Response:
    return await _records(request, ["repair_ticket"], q, ("status", "urgency"))


class TicketUpdate(BaseModel):
    status: (
        Literal["open", "assigned", "in_progress", "resolved", "confirmed", "reopened"] | None
    ) = None
    # What the box's ticket machine runs (edge/tickets/machine.py); from status if not given.
    action: Literal["assign", "start", "resolve", "confirm", "reopen"] | None = None
    assignee: str | None = Field(None, max_length=100, pattern=FREE)
    note: str = Field("", max_length=2000, pattern=FREE)


# The box's ticket_update command needs an action; older callers name the wanted status.
ACTION_FOR_STATUS = {
    "assigned": "assign",
    "in_progress": "start",
    "resolved": "resolve",
    "confirmed": "confirm",
    "reopened": "reopen",
}


@api.route(
    "POST",
    "/api/v1/ops/tickets/{ticket_id}/update",
    summary="Update a ticket; the change travels to the box that owns it",
    tag="records",
    auth="ops",
    body=TicketUpdate,
    responses={404: "No such ticket in scope"},
    status=201,
)
async def ticket_update(request: web.Request, q: None, body: TicketUpdate) -> web.Response:
    require_admin(request)
    tid = request.match_info["ticket_id"]
    box_id = await request.app[CLOUD].storage.record_box("repair_ticket", tid, scope(request))
    if box_id is None:
        return err(404, f"no ticket {tid!r} in your scope")
    await box_in_scope(request, box_id)  # names the ticket's community in the audit log
    args = {"ticket_id": tid, **body.model_dump(exclude_none=True)}
    action = body.action or ACTION_FOR_STATUS.get(body.status or "")
    if action is None:
        return err(400, "body.action: name one of assign, start, resolve, confirm, reopen",
                   field="body.action")  # fmt: skip
    args["action"] = action
    ids = await _queue(request, [box_id], "box", "-", "ticket_update", args, None)
    return ok({"feed_id": ids[0], "box_id": box_id}, 201)


class ReportCorrection(BaseModel):
    category: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{1,39}$")
    polarity: Literal["negative", "neutral", "positive"] | None = None
    urgency: Literal["immediate", "high", "normal", "low"] | None = None
    note: str = Field("", max_length=500, pattern=FREE)


@api.route(
    "POST",
    "/api/v1/ops/reports/{report_id}/correction",
    summary="Correct a report's category/polarity/urgency; the box that owns it stores the"
    " correction (a training row) and syncs it back as a report_correction record",
    tag="records",
    auth="ops",
    body=ReportCorrection,
    responses={404: "No such report in scope"},
    status=201,
)
async def report_correction(request: web.Request, q: None, body: ReportCorrection) -> web.Response:
    # Same endpoint and feed action as the text-model work (edge/reports cmd_correction).
    require_admin(request)
    rid = request.match_info["report_id"]
    if body.category is None and body.polarity is None and body.urgency is None:
        return err(400, "body.category: give at least one of category, polarity, urgency",
                   field="body.category")  # fmt: skip
    box_id = await request.app[CLOUD].storage.record_box("report", rid, scope(request))
    if box_id is None:
        return err(404, f"no report {rid!r} in your scope")
    await box_in_scope(request, box_id)  # names the report's community in the audit log
    args = {
        "report_id": rid,
        **body.model_dump(exclude_none=True),
        "actor": request[OPS_USER]["name"],
    }
    ids = await _queue(request, [box_id], "box", "-", "report_correction", args, None)
    return ok({"feed_id": ids[0], "box_id": box_id}, 201)


class StatsQuery(BaseModel):
    since: str | None = Field(None, max_length=40, pattern=FREE)
    until: str | None = Field(None, max_length=40, pattern=FREE)


@api.route(
    "GET",
    "/api/v1/ops/stats/access",
    summary="Door decisions counted by decision and method (counts only: no faces leave a box)",
    tag="stats",
    auth="ops",
    query=StatsQuery,
)
async def stats_access(request: web.Request, q: StatsQuery, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.count_by(
        "access_event", scope(request), q.since, q.until, ["decision", "method"]
    )
    return ok({"items": rows, "total": sum(r["count"] for r in rows)})


@api.route(
    "GET",
    "/api/v1/ops/stats/plays",
    summary="Proof of play: plays and milliseconds shown per content item",
    tag="stats",
    auth="ops",
    query=StatsQuery,
)
async def stats_plays(request: web.Request, q: StatsQuery, body: None) -> web.Response:
    rows = await request.app[CLOUD].storage.count_by(
        "play_record", scope(request), q.since, q.until, ["content_id"], "duration_ms"
    )
    return ok(
        {
            "items": [
                {
                    "content_id": r["content_id"],
                    "plays": r["count"],
                    "duration_ms": int(r["total"] or 0),
                }
                for r in rows
            ]
        }
    )
