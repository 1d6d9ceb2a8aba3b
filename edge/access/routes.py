"""HTTP routes of the access engine (all need a token; residents act only for themselves).

    POST   /api/v1/doors/{id}/open            remote open (staff: any door; resident: own)
    POST   /api/v1/doors/{id}/pin             {"pin": "123456", "source": "kp-1/s42"} (keypad
                                              panel; lockout per source, see [access])
    POST   /api/v1/doors/{id}/qr              {"text": "QLP1..."} (panels with a QR scanner)
    POST   /api/v1/passes                     create a visitor pass -> QR + PIN
    GET    /api/v1/passes[?resident_id=]      list; GET /api/v1/passes/{id}; DELETE revokes
    GET    /api/v1/passes/{id}/qr.png         the pass QR as an image
    GET|PUT /api/v1/residents/{id}/access     door rights and time windows (staff)
    GET|POST /api/v1/access/blocks, DELETE /api/v1/access/blocks/{id}   (staff)
    GET    /api/v1/access/events[?door=&decision=&limit=]   (staff; has_thumbnail per event)
    GET    /api/v1/access/events/{id}/thumbnail.jpg      the face kept beside it (staff; 404: none)
    PUT|DELETE /api/v1/residents/{id}/pin      {"pin": "4-10 digits"}: a resident's own PIN for
                                              face doors' second factor (staff; a resident: own)
    POST   /api/v1/doors/{id}/confirm         the resident's phone: "it is me at that door"
    GET    /api/v1/access/challenges          second factors waiting (a resident: their own)
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from edge.access import passes, policy
from edge.access import second_factor as factors
from edge.access import store as db
from edge.core.http import (
    ACTOR,
    BOX,
    PANEL_ROUTES,
    ROLE,
    json_error,
    query_int,
    require_door,
    require_staff,
)
from edge.core.standard import ID, VisitorPass, new_id
from edge.core.store.core import StoreError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PassIn(Strict):
    resident_id: str | None = Field(None, pattern=ID)  # staff: required; resident: themselves
    visitor: str = Field("", max_length=100)
    doors: list[str] = Field(min_length=1, max_length=50)
    valid_from: AwareDatetime | None = None  # default: now
    valid_to: AwareDatetime
    uses: int = Field(1, ge=1, le=100)


class WindowIn(Strict):
    door_id: str | None = None
    days: str = "1-7"
    start: str  # HH:MM local time
    end: str


class RightsIn(Strict):
    all_doors: bool = False  # every door of the community (explicit; nothing set = no door)
    doors: list[str] = Field(default_factory=list, max_length=500)
    buildings: list[str] = Field(default_factory=list, max_length=100)
    windows: list[WindowIn] = Field(default_factory=list, max_length=50)


class BlockIn(Strict):
    resident_id: str = Field(pattern=ID)
    door_id: str | None = None
    reason: str = Field("", max_length=500)
    until: AwareDatetime | None = None


class PinIn(Strict):
    pin: str = Field(pattern=r"^\d{4,10}$")
    # Who is typing, as the keypad panel knows it (its keypad id plus a session it renews
    # when the keypad goes idle); the lockout is per source. Default: the caller's address.
    source: str | None = Field(None, min_length=1, max_length=64)


class ResidentPinIn(Strict):
    pin: str = Field(pattern=r"^\d{4,10}$")


class QrIn(Strict):
    text: str = Field(min_length=1, max_length=500)

    @field_validator("text")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip()


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.text()
    return model.model_validate_json(raw or "{}")


class Refused(Exception):
    """A pass that cannot be issued: HTTP status, message naming the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


async def issue_pass(
    svc: Any, box: Any, resident_id: str, body: PassIn, actor: str
) -> dict[str, Any]:
    """Store a visitor pass for ``resident_id``; its record with the PIN and QR (shown once).
    Used by the API and by the resident pages (/r/me), so the rules live in one place."""
    unknown = [d for d in body.doors if d not in svc.doors_cfg]
    if unknown:
        raise Refused(400, f"doors: unknown door {unknown[0]!r}", "doors")
    now = datetime.now(UTC)
    valid_from = body.valid_from or now
    if body.valid_to <= valid_from:
        raise Refused(400, "valid_to: must be after valid_from", "valid_to")
    if body.valid_to - valid_from > timedelta(days=svc.cfg.pass_max_days):
        raise Refused(
            400, f"valid_to: at most {svc.cfg.pass_max_days} days after valid_from", "valid_to"
        )
    # The pass is the resident's: it may open only doors they may open themselves, in their
    # hours (staff issuing in a resident's name included). Each use asks again.
    facts = await svc.facts(resident_id)
    for door_id in dict.fromkeys(body.doors):
        why = policy.may_issue(facts, door_id, svc.doors_cfg[door_id].building,
                               valid_from.astimezone(svc.tz), body.valid_to.astimezone(svc.tz))
        if why == "unknown_resident":
            raise Refused(400, f"resident_id: no resident {resident_id!r}", "resident_id")
        if why is not None:
            raise Refused(403, f"doors: {resident_id} may not issue a pass for {door_id!r}"
                          f" ({why})", "doors")
    rec = VisitorPass(
        id=new_id("vp"), resident_id=resident_id, doors=list(dict.fromkeys(body.doors)),
        valid_from=valid_from, valid_to=body.valid_to, uses_total=body.uses,
        uses_left=body.uses,
    )  # fmt: skip
    for _attempt in range(5):  # a PIN colliding with another active pass is re-drawn
        pin = passes.new_pin(svc.cfg.pin_digits)
        try:
            await box.store.run(
                db.add_pass, box.store.sync, rec, passes.pin_hash(svc.key, pin), body.visitor,
                actor,
            )  # fmt: skip
            break
        except db.NotFound as e:
            raise Refused(400, str(e), "resident_id") from e
        except StoreError as e:
            if "pin" not in str(e):
                raise
    else:
        raise Refused(503, "could not draw a free PIN; try again")
    text = passes.qr_text(svc.key, rec.id)
    return {
        **rec.model_dump(mode="json"),
        "visitor": body.visitor,
        "pin": pin,
        "qr_text": text,
        "qr_png_base64": base64.b64encode(passes.qr_png(text)).decode(),
        "qr_url": f"/api/v1/passes/{rec.id}/qr.png",
    }


def add_routes(app: web.Application, svc: Any) -> None:
    r = app.router

    def outcome(out: Any, status: int = 200) -> web.Response:
        return web.json_response(asdict(out), status=status)

    async def door_open(request: web.Request) -> web.Response:
        try:
            out = await svc.remote_open(request.match_info["id"], request[ACTOR], request[ROLE])
        except LookupError as e:
            return json_error(404, str(e), field="id")
        return outcome(out, 200 if out.granted else 403)

    async def door_pin(request: web.Request) -> web.Response:
        require_door(request, request.match_info["id"])  # staff, or this door's panel token
        body = await _body(request, PinIn)
        try:
            source = f"kp:{body.source}" if body.source else f"addr:{request.remote}"
            out = await svc.enter_pin(request.match_info["id"], body.pin, source)
        except LookupError as e:
            return json_error(404, str(e), field="id")
        return outcome(out, 200 if out.granted else 403)

    async def door_qr(request: web.Request) -> web.Response:
        require_door(request, request.match_info["id"])
        body = await _body(request, QrIn)
        try:
            out = await svc.enter_qr(request.match_info["id"], body.text)
        except LookupError as e:
            return json_error(404, str(e), field="id")
        return outcome(out, 200 if out.granted else 403)

    async def pass_create(request: web.Request) -> web.Response:
        body = await _body(request, PassIn)
        if request[ROLE] == "resident":
            if body.resident_id not in (None, request[ACTOR]):
                return json_error(403, "residents create passes for themselves only",
                                  field="resident_id")
            resident_id = request[ACTOR]
        else:
            require_staff(request)
            if body.resident_id is None:
                return json_error(400, "resident_id: required", field="resident_id")
            resident_id = body.resident_id
        try:
            out = await issue_pass(svc, request.app[BOX], resident_id, body, request[ACTOR])
        except Refused as e:
            return json_error(e.status, str(e), field=e.field)
        return web.json_response(out, status=201)

    async def _own_pass(request: web.Request) -> dict[str, Any]:
        box = request.app[BOX]
        try:
            p = await box.store.run(db.get_pass, box.store.sync, request.match_info["id"])
        except db.NotFound as e:
            raise web.HTTPNotFound(text=json.dumps({"error": str(e)}),
                                   content_type="application/json") from e
        if request[ROLE] == "resident" and p["resident_id"] != request[ACTOR]:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such pass"}),
                                   content_type="application/json")
        return p

    async def pass_get(request: web.Request) -> web.Response:
        return web.json_response(await _own_pass(request))

    async def pass_qr(request: web.Request) -> web.Response:
        p = await _own_pass(request)
        return web.Response(body=passes.qr_png(passes.qr_text(svc.key, p["id"])),
                            content_type="image/png")

    async def pass_revoke(request: web.Request) -> web.Response:
        p = await _own_pass(request)
        box = request.app[BOX]
        return web.json_response(await box.store.run(db.revoke_pass, box.store.sync, p["id"]))

    async def pass_list(request: web.Request) -> web.Response:
        box = request.app[BOX]
        rid = request.query.get("resident_id")
        if request[ROLE] == "resident":
            rid = request[ACTOR]
        else:
            require_staff(request)
        return web.json_response(await box.store.run(db.list_passes, box.store.sync, rid))

    async def rights_get(request: web.Request) -> web.Response:
        require_staff(request)
        box = request.app[BOX]
        try:
            out = await box.store.run(db.get_rights, box.store.sync, request.match_info["id"],
                                      svc.defaults)
        except db.NotFound as e:
            return json_error(404, str(e), field="id")
        return web.json_response(out)

    async def rights_put(request: web.Request) -> web.Response:
        actor = require_staff(request)
        body = await _body(request, RightsIn)
        windows = []
        for i, w in enumerate(body.windows):
            if w.door_id is not None and w.door_id not in svc.doors_cfg:
                # a window for no door restricts nothing: the resident would pass at any hour
                return json_error(400, f"windows.{i}.door_id: unknown door {w.door_id!r}",
                                  field=f"windows.{i}.door_id")
            try:
                windows.append({
                    "door_id": w.door_id,
                    "days": policy.parse_days(w.days, f"windows.{i}.days"),
                    "start_min": policy.parse_hhmm(w.start, f"windows.{i}.start"),
                    "end_min": policy.parse_hhmm(w.end, f"windows.{i}.end"),
                })
            except ValueError as e:
                return json_error(400, str(e), field=str(e).split(":")[0])
        unknown = [d for d in body.doors if d not in svc.doors_cfg]
        if unknown:
            return json_error(400, f"doors: unknown door {unknown[0]!r}", field="doors")
        box = request.app[BOX]
        try:
            out = await box.store.run(db.set_rights, box.store.sync, request.match_info["id"],
                                      body.doors, body.buildings, windows, actor,
                                      body.all_doors, svc.defaults)
        except db.NotFound as e:
            return json_error(404, str(e), field="id")
        return web.json_response(out)

    async def blocks_list(request: web.Request) -> web.Response:
        require_staff(request)
        box = request.app[BOX]
        active = request.query.get("all") not in ("1", "true")
        return web.json_response(await box.store.run(
            db.list_blocks, box.store.sync, request.query.get("resident_id"), active))

    async def blocks_add(request: web.Request) -> web.Response:
        actor = require_staff(request)
        body = await _body(request, BlockIn)
        if body.door_id is not None and body.door_id not in svc.doors_cfg:
            # a block at no door blocks nothing: the resident would still get in
            return json_error(400, f"door_id: unknown door {body.door_id!r}", field="door_id")
        box = request.app[BOX]
        until = db.iso(body.until) if body.until else None
        try:
            out = await box.store.run(db.add_block, box.store.sync, body.resident_id,
                                      body.door_id, body.reason, until, actor)
        except db.NotFound as e:
            return json_error(400, str(e), field="resident_id")
        return web.json_response(out, status=201)

    async def blocks_lift(request: web.Request) -> web.Response:
        actor = require_staff(request)
        box = request.app[BOX]
        try:
            out = await box.store.run(db.lift_block, box.store.sync, request.match_info["id"],
                                      actor)
        except db.NotFound as e:
            return json_error(404, str(e), field="id")
        return web.json_response(out)

    async def events(request: web.Request) -> web.Response:
        require_staff(request)
        box = request.app[BOX]
        limit = query_int(request, "limit", 50)
        return web.json_response(await box.store.run(
            db.list_events, box.store.sync, request.query.get("door"), limit,
            request.query.get("decision")))

    async def event_thumbnail(request: web.Request) -> web.Response:
        require_staff(request)  # a face picture: never residents, never anonymous
        box = request.app[BOX]
        eid = request.match_info["id"]
        jpeg = await box.store.run(db.get_thumbnail, box.store.sync, eid)
        if jpeg is None:
            return json_error(404, f"no thumbnail kept for access event {eid!r}", field="id")
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})

    def _self_or_staff(request: web.Request) -> str:
        rid = request.match_info["id"]
        if request[ROLE] == "resident":
            if rid != request[ACTOR]:
                raise web.HTTPForbidden(text=json.dumps(
                    {"error": "residents set their own PIN only", "field": "id"}),
                    content_type="application/json")
        else:
            require_staff(request)
        return rid

    async def pin_put(request: web.Request) -> web.Response:
        rid = _self_or_staff(request)
        body = await _body(request, ResidentPinIn)
        weak = factors.weak_pin(body.pin)
        if weak is not None:
            return json_error(400, weak, field="pin")
        box = request.app[BOX]
        try:
            out = await box.store.run(factors.set_pin, box.store.sync, rid,
                                      factors.resident_pin_hash(svc.key, rid, body.pin),
                                      request[ACTOR])
        except db.NotFound as e:
            return json_error(404, str(e), field="id")
        return web.json_response(out)

    async def pin_delete(request: web.Request) -> web.Response:
        rid = _self_or_staff(request)
        box = request.app[BOX]
        try:
            out = await box.store.run(factors.clear_pin, box.store.sync, rid)
        except db.NotFound as e:
            return json_error(404, str(e), field="id")
        return web.json_response(out)

    async def door_confirm(request: web.Request) -> web.Response:
        if request[ROLE] != "resident":  # only the person the face named confirms
            return json_error(403, "only the resident the door recognised confirms")
        try:
            svc.door(request.match_info["id"])
        except LookupError as e:
            return json_error(404, str(e), field="id")
        # ?challenge=<id from /api/v1/access/challenges>: only that wait, not a newer one
        out = await svc.factors.confirm(request.match_info["id"], request[ACTOR],
                                        request.query.get("challenge"))
        if out is None:
            return json_error(409, "nothing is waiting for you at this door", field="id")
        return outcome(out, 200 if out.granted else 403)

    async def challenges(request: web.Request) -> web.Response:
        who = request[ACTOR] if request[ROLE] == "resident" else None
        if who is None:
            require_staff(request)
        return web.json_response(svc.factors.for_resident(who))

    r.add_put("/api/v1/residents/{id}/pin", pin_put)
    r.add_delete("/api/v1/residents/{id}/pin", pin_delete)
    r.add_post("/api/v1/doors/{id}/confirm", door_confirm)
    r.add_get("/api/v1/access/challenges", challenges)
    r.add_post("/api/v1/doors/{id}/open", door_open)
    r.add_post("/api/v1/doors/{id}/pin", door_pin)
    r.add_post("/api/v1/doors/{id}/qr", door_qr)
    # Keypad and QR panels at a door hold a panel token bound to it (edge/core/http.py).
    app[PANEL_ROUTES].update({("POST", "/api/v1/doors/{id}/pin"),
                              ("POST", "/api/v1/doors/{id}/qr")})
    r.add_post("/api/v1/passes", pass_create)
    r.add_get("/api/v1/passes", pass_list)
    r.add_get("/api/v1/passes/{id}", pass_get)
    r.add_get("/api/v1/passes/{id}/qr.png", pass_qr)
    r.add_delete("/api/v1/passes/{id}", pass_revoke)
    r.add_get("/api/v1/residents/{id}/access", rights_get)
    r.add_put("/api/v1/residents/{id}/access", rights_put)
    r.add_get("/api/v1/access/blocks", blocks_list)
    r.add_post("/api/v1/access/blocks", blocks_add)
    r.add_delete("/api/v1/access/blocks/{id}", blocks_lift)
    r.add_get("/api/v1/access/events", events)
    r.add_get("/api/v1/access/events/{id}/thumbnail.jpg", event_thumbnail)
