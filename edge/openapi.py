"""The box's HTTP API as an OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

Paths and methods come from the router itself; what each route takes is written once in
:data:`BODIES` ("METHOD path" -> request body). A route missing from the table makes
:func:`missing` non-empty, and tests/edge/security/test_openapi.py fails: a new route cannot
ship undocumented (and unfuzzed: schemathesis runs against this document).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

JSON, FORM, MULTIPART, BYTES = "json", "form", "multipart", "bytes"
TEXT = {"type": "string", "maxLength": 200}
FILE = {"type": "string", "format": "binary"}


def _models() -> dict[str, type[BaseModel]]:
    from edge.access import routes as access
    from edge.intercom import routes as intercom
    from edge.portal import bodies as m
    from edge.portal import factor_pages

    return {
        "login": m.Login, "code": m.IssueCode, "revoke": m.Revoke, "article": m.Article,
        "read": m.ReadOpen, "dwell": m.Dwell, "ack": m.Ack, "event": m.NewEvent,
        "attendance": m.Attendance, "post": m.NewPost, "flag": m.Flag, "moderate": m.Moderate,
        "pass": access.PassIn, "rights": access.RightsIn, "block": access.BlockIn,
        "pin": access.PinIn, "qr": access.QrIn, "resident_pin": access.ResidentPinIn,
        "dial": intercom.DialIn, "panel_dial": intercom.PanelDialIn, "offer": intercom.OfferIn,
        "push": intercom.PushIn, "screen_pin": factor_pages.ScreenPin,
    }  # fmt: skip


REPORT_FORM = {"text": TEXT, "category": TEXT, "building": TEXT, "location": TEXT,
               "photos": FILE}
TICKET_FORM = {"fault": TEXT, "title": TEXT, "building": TEXT, "location": TEXT,
               "description": TEXT, "photos": FILE}

# "METHOD path": None (no body), (JSON, model name or None = any object), (FORM/MULTIPART,
# fields), (BYTES, None). Every route of the box is listed, GETs too.
BODIES: dict[str, Any] = {
    "GET /healthz": None, "GET /api/v1/status": None, "GET /api/v1/openapi.json": None,
    # access
    "GET /api/v1/access/blocks": None, "POST /api/v1/access/blocks": (JSON, "block"),
    "DELETE /api/v1/access/blocks/{id}": None, "GET /api/v1/access/events": None,
    "GET /api/v1/access/events/{id}/thumbnail.jpg": None,
    "POST /api/v1/doors/{id}/open": (JSON, None), "POST /api/v1/doors/{id}/pin": (JSON, "pin"),
    "POST /api/v1/doors/{id}/qr": (JSON, "qr"), "GET /api/v1/passes": None,
    "POST /api/v1/passes": (JSON, "pass"), "DELETE /api/v1/passes/{id}": None,
    "GET /api/v1/passes/{id}": None, "GET /api/v1/passes/{id}/qr.png": None,
    "GET /api/v1/residents/{id}/access": None,
    "PUT /api/v1/residents/{id}/access": (JSON, "rights"),
    "PUT /api/v1/residents/{id}/pin": (JSON, "resident_pin"),
    "DELETE /api/v1/residents/{id}/pin": None, "POST /api/v1/doors/{id}/confirm": (JSON, None),
    "GET /api/v1/access/challenges": None,
    # faces
    "GET /api/v1/residents": None, "POST /api/v1/residents": (JSON, None),
    "GET /api/v1/residents/{rid}": None, "DELETE /api/v1/residents/{rid}": None,
    "POST /api/v1/residents/{rid}/photos": (MULTIPART, {"photo": FILE}),
    "POST /api/v1/faces/identify": (MULTIPART, {"photo": FILE}),
    "POST /api/v1/faces/wrong-match": (JSON, None),
    # installer
    "GET /installer": None, "GET /installer/": None, "GET /installer/app.js": None,
    "GET /api/v1/installer/doctor": None, "POST /api/v1/installer/doctor": (JSON, None),
    "POST /api/v1/installer/modbus-scan": (JSON, None),
    "POST /api/v1/installer/provision": (JSON, None), "GET /api/v1/installer/setup": None,
    "POST /api/v1/installer/setup": (JSON, None),
    "POST /api/v1/installer/setup/validate": (JSON, None),
    # portal API
    "POST /api/v1/portal/acks": (JSON, "ack"), "POST /api/v1/portal/articles": (JSON, "article"),
    "POST /api/v1/portal/codes": (JSON, "code"), "GET /api/v1/portal/events": None,
    "POST /api/v1/portal/events": (JSON, "event"),
    "POST /api/v1/portal/events/{event_id}/attendance": (JSON, "attendance"),
    "DELETE /api/v1/portal/events/{event_id}/signup": None,
    "POST /api/v1/portal/events/{event_id}/signup": None, "GET /api/v1/portal/feed": None,
    "POST /api/v1/portal/login": (JSON, "login"), "POST /api/v1/portal/logout": None,
    "GET /api/v1/portal/me": None, "GET /api/v1/portal/moderation": None,
    "GET /api/v1/portal/posts": None, "POST /api/v1/portal/posts": (JSON, "post"),
    "POST /api/v1/portal/posts/{post_id}/flag": (JSON, "flag"),
    "POST /api/v1/portal/posts/{post_id}/moderate": (JSON, "moderate"),
    "POST /api/v1/portal/reads": (JSON, "read"),
    "POST /api/v1/portal/reads/{read_id}/dwell": (JSON, "dwell"),
    "GET /api/v1/portal/sessions": None, "POST /api/v1/portal/sessions/revoke": (JSON, "revoke"),
    "GET /api/v1/portal/stats": None, "POST /api/v1/portal/stats/flush": None,
    # reports and tickets
    "GET /api/v1/reports": None, "POST /api/v1/reports": (MULTIPART, REPORT_FORM),
    "GET /api/v1/reports/challenge": None, "POST /api/v1/reports/classify": (JSON, None),
    "GET /api/v1/reports/{id}": None, "POST /api/v1/reports/{id}/status": (JSON, None),
    "POST /api/v1/reports/{id}/correction": (JSON, None),
    "GET /api/v1/alerts": None, "GET /api/v1/photos/{id}": None, "GET /api/v1/taxonomy": None,
    "GET /api/v1/tickets": None, "POST /api/v1/tickets": (MULTIPART, TICKET_FORM),
    "GET /api/v1/tickets/faults": None, "GET /api/v1/tickets/{id}": None,
    "POST /api/v1/tickets/{id}/{action}": (JSON, None),
    # screens
    "GET /api/v1/screens": None, "POST /api/v1/screens": (JSON, None),
    "GET /api/v1/screens/content": None, "POST /api/v1/screens/content": (JSON, None),
    "PUT /api/v1/screens/content/{content_id}/file": (BYTES, None),
    "GET /api/v1/screens/emergencies": None, "POST /api/v1/screens/emergencies": (JSON, None),
    "POST /api/v1/screens/emergencies/{em_id}/cancel": None,
    "GET /api/v1/screens/playlists": None, "POST /api/v1/screens/playlists": (JSON, None),
    "GET /api/v1/screens/schedules": None, "POST /api/v1/screens/schedules": (JSON, None),
    "DELETE /api/v1/screens/schedules/{entry_id}": None,
    "POST /api/v1/screens/{screen_id}/key": None, "DELETE /api/v1/screens/{screen_id}/key": None,
    "GET /api/v1/screens/{screen_id}/now": None, "GET /api/v1/screens/{screen_id}/plays": None,
    "GET /screen/content/{sha}": None, "GET /screen/static/{name}": None,
    "GET /screen/sw.js": None, "GET /screen/{screen_id}": None,
    "GET /screen/{screen_id}/plan": None, "POST /screen/{screen_id}/plays": (JSON, None),
    "GET /screen/{screen_id}/ws": None,
    # intercom: the door screen (its key), phones (a resident session), panels (staff)
    "GET /screen/{screen_id}/intercom": None, "GET /screen/{screen_id}/intercom/directory": None,
    "POST /screen/{screen_id}/intercom/calls": (JSON, "dial"),
    "GET /screen/{screen_id}/intercom/calls/{call_id}": None,
    "POST /screen/{screen_id}/intercom/calls/{call_id}/hangup": None,
    "GET /r/intercom": None, "GET /r/intercom/ws": None, "GET /r/intercom/poll": None,
    "GET /r/intercom/manifest.webmanifest": None, "GET /r/intercom/sw.js": None,
    "GET /r/intercom/static/{name}": None, "GET /r/intercom/calls/{call_id}/snapshot.jpg": None,
    "POST /r/intercom/calls/{call_id}/answer": None,
    "POST /r/intercom/calls/{call_id}/decline": None,
    "POST /r/intercom/calls/{call_id}/later": None,
    "POST /r/intercom/calls/{call_id}/open": None,
    "POST /r/intercom/calls/{call_id}/rtc": (JSON, "offer"), "GET /r/intercom/rtc": None,
    "GET /r/intercom/push": None, "POST /r/intercom/push": (JSON, "push"),
    "POST /r/intercom/push/remove": (JSON, "push"),
    "GET /api/v1/intercom/calls": None, "POST /api/v1/intercom/calls": (JSON, "panel_dial"),
    # sync
    "POST /api/v1/sync/rotate": None, "GET /api/v1/sync/status": None,
    # resident pages
    "GET /r": None, "GET /r/": None, "GET /r/board": None,
    "POST /r/board": (FORM, {"title": TEXT, "body": TEXT}),
    "POST /r/board/{pid}/flag": (FORM, {"category": TEXT, "reason": TEXT}),
    "GET /r/doors/{door}/open": None, "POST /r/doors/{door}/open": None,
    "GET /r/dwell.js": None, "GET /r/events": None,
    "POST /r/prefs": (FORM, {"big": TEXT, "back": TEXT}), "POST /r/api/mine": (JSON, None),
    "POST /r/events/{eid}/cancel": None, "POST /r/events/{eid}/signup": None,
    "GET /r/login": None, "POST /r/login": (FORM, {"code": TEXT}), "POST /r/logout": None,
    "GET /r/me": None, "GET /r/media/{cid}": None,
    "POST /r/passes": (FORM, {"visitor": TEXT, "door": TEXT, "hours": TEXT, "uses": TEXT}),
    "POST /r/passes/{pid}/revoke": None, "GET /r/read": None,
    "GET /r/read/{cid}": None, "POST /r/read/{cid}/ack": None,
    "POST /r/read/{cid}/dwell": (FORM, {"read_id": TEXT, "ms": TEXT}),
    # the property office (edge/office): its pages, sign-in, and the routes only it adds
    "GET /office": None, "GET /office/": None, "GET /office/login": None,
    "POST /office/login": (FORM, {"csrf": TEXT, "name": TEXT, "password": TEXT, "totp": TEXT}),
    "POST /office/logout": (FORM, {"csrf": TEXT}),
    "GET /office/today": None, "GET /office/tickets": None, "GET /office/residents": None,
    "GET /office/doors": None, "GET /office/passes": None, "GET /office/blocks": None,
    "GET /office/moderation": None, "GET /office/devices": None, "GET /office/log": None,
    "GET /office/audit": None,
    "GET /api/v1/audit": None, "GET /api/v1/office/devices": None,
    "GET /api/v1/office/cameras/{id}/snapshot.jpg": None,
    "POST /api/v1/office/face-check": (MULTIPART, {"photo": FILE, "resident_id": TEXT}),
    "GET /r/v/{token}": None,  # a visitor's shared pass (no login; the token is the secret)
    # the second factor at face doors as pages (edge/portal/factor_pages.py)
    "GET /r/pin": None, "POST /r/pin": (FORM, {"pin": TEXT, "pin2": TEXT}),
    "POST /r/pin/remove": None, "GET /r/api/factor": None,
    "POST /r/api/factor/{door}/confirm": None, "POST /r/api/factor/{door}/refuse": None,
    "GET /screen/{screen_id}/factor": None,
    "POST /screen/{screen_id}/factor/pin": (JSON, "screen_pin"),
}  # fmt: skip

# Never fuzzed: they reach out of the box (cloud URLs, Modbus hosts), click door relays or
# rotate the box's cloud key. Still documented.
NOT_FUZZED = (
    "/api/v1/installer/provision", "/api/v1/installer/modbus-scan", "/api/v1/installer/doctor",
    "/api/v1/installer/setup", "/api/v1/sync/rotate", "/screen/{screen_id}/ws",
    "/r/intercom/ws", "/r/intercom/calls/{call_id}/open", "/r/intercom/calls/{call_id}/rtc",
    "/r/api/factor/{door}/confirm", "/screen/{screen_id}/factor/pin",
)  # fmt: skip


def routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path, handler) of every route; static folders and HEAD twins left out."""
    out = []
    for r in app.router.routes():
        if r.method in ("HEAD", "*") or isinstance(r.resource, web.StaticResource):
            continue
        out.append((r.method, r.resource.canonical, r.handler))  # type: ignore[union-attr]
    return out


def missing(app: web.Application) -> list[str]:
    return sorted({f"{m} {p}" for m, p, _ in routes(app)} - set(BODIES))


def document(app: web.Application) -> dict[str, Any]:
    models = _models()
    schemas: dict[str, Any] = {}

    def model_schema(name: str) -> dict[str, Any]:
        s = models[name].model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(s.pop("$defs", {}))
        schemas[models[name].__name__] = s
        return {"$ref": f"#/components/schemas/{models[name].__name__}"}

    paths: dict[str, Any] = {}
    for method, path, handler in routes(app):
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower())}",
            "summary": ((handler.__doc__ or "").strip().splitlines() or [handler.__name__])[0],
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in re.findall(r"{(\w+)}", path)
            ],
            "responses": {"default": {"description": "JSON, HTML or a file; errors are"
                                      " {\"error\": ...} naming the problem"}},
        }
        if path.endswith(("/reports", "/tickets", "/alerts", "/events", "/plays")) and (
            method == "GET"
        ):
            op["parameters"].append({"name": "limit", "in": "query", "required": False,
                                     "schema": {"type": "integer"}})
        if path == "/api/v1/reports/{id}" or path == "/api/v1/tickets/{id}":
            op["parameters"].append({"name": "key", "in": "query", "required": False,
                                     "schema": {"type": "string"}})
        body = BODIES.get(f"{method} {path}")
        if body is not None:
            kind, spec = body
            if kind == JSON:
                schema = model_schema(spec) if spec else {"type": "object"}
                content = {"application/json": {"schema": schema}}
            elif kind == BYTES:
                content = {"application/octet-stream": {"schema": FILE}}
            else:
                ctype = "multipart/form-data" if kind == MULTIPART else (
                    "application/x-www-form-urlencoded")
                content = {ctype: {"schema": {"type": "object", "properties": spec}}}
            op["requestBody"] = {"required": True, "content": content}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Qilu Edge box API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


async def serve(request: web.Request) -> web.Response:
    """This document (public: it names routes, never data)."""
    return web.json_response(document(request.app))
