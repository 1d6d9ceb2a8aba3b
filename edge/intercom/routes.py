"""The intercom's HTTP routes.

Door screen (the screen's device key: ``X-Screen-Key`` header, or ``?key=``): the call panel
is a zone of the screen's player page ``/screen/<id>`` (registered with the screens service;
``/screen/<id>/intercom`` redirects there, keeping the ``#key=`` fragment),
``.../intercom/directory``, ``POST .../intercom/calls``, ``GET .../intercom/calls/<call>``
(long-poll with ``?after=<version>``), ``POST .../intercom/calls/<call>/hangup``.

Phones (a resident session of the called flat, cookie; works the same through the cloud relay,
since every path is under ``/r/``): ``/r/intercom`` (page), ``/r/intercom/ws`` (WebSocket, on
the LAN), ``/r/intercom/poll?after=<version>`` (long-poll: what the relay can carry),
``POST /r/intercom/calls/<call>/{answer,open,later,decline}``,
``/r/intercom/calls/<call>/snapshot.jpg``, the web-app manifest and service worker.

Intercom panels and staff (bearer token): ``POST /api/v1/intercom/calls``,
``GET /api/v1/intercom/calls``.

Pages get the box's Content-Security-Policy (edge/core/http.py: no inline scripts); theirs
keep every script and style in static files.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from edge.core.http import PANEL_ROUTES, ROLE, json_error, require_door, require_staff
from edge.intercom import store as db
from edge.intercom.config import FLAT
from edge.intercom.push import endpoint_problem
from edge.intercom.service import CallRefused, IntercomService
from edge.portal import PORTAL
from edge.portal.look import page

STATIC = Path(__file__).with_name("static")
PHONE_BODY = (STATIC / "phone-body.html").read_text(encoding="utf-8")
POLL_S = 15.0  # under the relay's 20 s per request
ACTIONS = ("answer", "open", "later", "decline")
SIGNED_OUT = 4401  # the phone socket's close code when its session ended (the page: login)


class DialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flat: str = Field(pattern=FLAT)


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")
    p256dh: str = Field(min_length=20, max_length=200, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = Field(min_length=8, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")


class PushIn(BaseModel):
    """A browser's PushSubscription.toJSON() (expirationTime and the like ignored)."""

    model_config = ConfigDict(extra="ignore")
    endpoint: str = Field(pattern=r"^https?://", max_length=1000)
    keys: PushKeys


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["offer"]
    sdp: str = Field(min_length=10, max_length=20000)


class PanelDialIn(DialIn):
    door_id: str = Field(min_length=1, max_length=64)


def add_routes(app: web.Application, svc: IntercomService) -> None:
    if not svc.cfg.enabled:
        return
    h = Handlers(svc)

    async def on_shutdown(_app: web.Application) -> None:
        await svc.shutdown()

    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_static("/intercom/static/", STATIC, name="intercom-static")
    r.add_get("/screen/{screen_id}/intercom", h.door_page)
    r.add_get("/screen/{screen_id}/intercom/directory", h.directory)
    r.add_post("/screen/{screen_id}/intercom/calls", h.screen_dial)
    r.add_get("/screen/{screen_id}/intercom/calls/{call_id}", h.screen_call)
    r.add_post("/screen/{screen_id}/intercom/calls/{call_id}/hangup", h.screen_hangup)
    r.add_get("/r/intercom", h.phone_page)
    r.add_get("/r/intercom/ws", h.phone_ws)
    r.add_get("/r/intercom/poll", h.phone_poll)
    r.add_get("/r/intercom/manifest.webmanifest", h.manifest)
    r.add_get("/r/intercom/sw.js", h.service_worker)
    r.add_get("/r/intercom/static/{name}", h.phone_static)
    r.add_get("/r/intercom/calls/{call_id}/snapshot.jpg", h.snapshot)
    r.add_get("/r/intercom/rtc", h.rtc_config)
    r.add_post("/r/intercom/calls/{call_id}/rtc", h.rtc_offer)
    r.add_get("/r/intercom/push", h.push_key)
    r.add_post("/r/intercom/push", h.push_subscribe)
    r.add_post("/r/intercom/push/remove", h.push_remove)
    for action in ACTIONS:
        r.add_post(f"/r/intercom/calls/{{call_id}}/{action}", h.action(action))
    r.add_post("/api/v1/intercom/calls", h.panel_dial)
    app[PANEL_ROUTES].add(("POST", "/api/v1/intercom/calls"))  # a door's call panel (own door)
    r.add_get("/api/v1/intercom/calls", h.list_calls)


def refused(e: CallRefused) -> web.Response:
    """The refusal as JSON: ``error`` (English, for panels and scripts) and, for a resident's
    phone, ``error_zh`` in words a resident understands (the page shows that)."""
    extra: dict[str, Any] = {"field": e.field} if e.field else {}
    if e.zh:
        extra["error_zh"] = e.zh
    return json_error(e.status, str(e), **extra)


def _file(name: str, content_type: str, **headers: str) -> web.Response:
    return web.Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                        charset="utf-8", headers={"Cache-Control": "no-cache", **headers})


def _after(request: web.Request) -> int:
    try:
        return int(request.query.get("after", "-1"))
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "after: an integer version"}),
                                 content_type="application/json") from None


class Handlers:
    def __init__(self, svc: IntercomService) -> None:
        self.svc = svc

    # --- door screen ----------------------------------------------------------------------

    def _door(self, request: web.Request) -> str:
        key = request.headers.get("X-Screen-Key") or request.query.get("key")
        return self.svc.screen_door(request.match_info["screen_id"], key)

    async def door_page(self, request: web.Request) -> web.Response:
        """The call panel is part of the door screen's player page now: the old address
        redirects there (the browser keeps the ``#key=`` fragment across the redirect)."""
        sid = request.match_info["screen_id"]
        if sid not in self.svc.screens_cfg:
            return json_error(404, "screen_id: unknown screen")
        raise web.HTTPFound(f"/screen/{quote(sid, safe='')}")

    async def directory(self, request: web.Request) -> web.Response:
        try:
            door = self._door(request)
        except CallRefused as e:
            return refused(e)
        dcfg = self.svc.doors_cfg[door]
        flats = await self.svc.box.store.run(db.flats, self.svc.box.store.sync, dcfg.building)
        return web.json_response({"door_id": door, "door": dcfg.name or door,
                                  "building": dcfg.building, "flats": flats,
                                  "ring_s": self.svc.cfg.ring_s})

    async def screen_dial(self, request: web.Request) -> web.Response:
        try:
            door = self._door(request)
            body = DialIn.model_validate_json(await request.read() or b"{}")
            sid = request.match_info["screen_id"]
            rec = await self.svc.dial(door, body.flat, "screen", screen_id=sid,
                                      origin=f"screen:{sid}")
            return web.json_response(self.svc.screen_view(door, rec.id), status=201)
        except CallRefused as e:
            return refused(e)

    async def screen_call(self, request: web.Request) -> web.Response:
        try:
            door = self._door(request)
            cid = request.match_info["call_id"]
            view = self.svc.screen_view(door, cid)
            if view["version"] <= _after(request):
                await self.svc.wait_change(_after(request), POLL_S)
                view = self.svc.screen_view(door, cid)
            return web.json_response(view)
        except CallRefused as e:
            return refused(e)

    async def screen_hangup(self, request: web.Request) -> web.Response:
        try:
            door = self._door(request)
            await self.svc.hang_up(request.match_info["call_id"], door)
            return web.json_response(self.svc.screen_view(door, request.match_info["call_id"]))
        except CallRefused as e:
            return refused(e)

    # --- panels and staff -------------------------------------------------------------------

    async def panel_dial(self, request: web.Request) -> web.Response:
        if request[ROLE] != "panel":
            require_staff(request)  # before the body: others learn nothing from a 400
        body = PanelDialIn.model_validate_json(await request.read() or b"{}")
        actor = require_door(request, body.door_id)  # staff, or this door's panel token
        try:
            rec = await self.svc.dial(body.door_id, body.flat, "panel", origin=f"panel:{actor}")
        except CallRefused as e:
            return refused(e)
        return web.json_response(rec.payload(), status=201)

    async def list_calls(self, request: web.Request) -> web.Response:
        require_staff(request)
        rows = await self.svc.box.store.run(db.list_calls, self.svc.box.store.sync,
                                            request.query.get("flat"))
        return web.json_response({"calls": rows})

    # --- phones -----------------------------------------------------------------------------

    async def _resident(self, request: web.Request) -> dict[str, Any] | None:
        return await self.svc.box.get(PORTAL).resident(request)

    async def _who(self, request: web.Request) -> tuple[str, str | None]:
        res = await self._resident(request)
        if res is None:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "resident session required",
                                 "error_zh": "登录已过期，请重新登录"}, ensure_ascii=False),
                content_type="application/json")
        return res["resident_id"], await self.svc.flat_of(res["resident_id"])

    async def phone_page(self, request: web.Request) -> web.Response:
        """The call page in the resident app's frame (header, large text, tab bar)."""
        if await self._resident(request) is None:
            raise web.HTTPSeeOther("/r/login")
        return page(request, "门口来电", PHONE_BODY, nav="/r/me",
                    scripts=("/r/intercom/static/phone.js",),
                    styles=("/r/intercom/static/phone.css",),
                    head="<link rel=manifest href=/r/intercom/manifest.webmanifest>"
                         "<meta name=theme-color content='#a31515'>")  # fmt: skip

    async def phone_static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        types = {".js": "application/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        ext = Path(name).suffix
        if "/" in name or ext not in types or not (STATIC / name).is_file():
            return json_error(404, "no such file")
        return _file(name, types[ext])

    async def manifest(self, request: web.Request) -> web.Response:
        return _file("manifest.webmanifest", "application/manifest+json")

    async def service_worker(self, request: web.Request) -> web.Response:
        return _file("sw.js", "application/javascript", **{"Service-Worker-Allowed": "/r/"})

    async def phone_poll(self, request: web.Request) -> web.Response:
        rid, flat = await self._who(request)
        after = _after(request)
        if flat is not None:
            self.svc.listening(flat, f"poll:{rid}", None)
        if self.svc.version <= after:
            await self.svc.wait_change(after, POLL_S)
        return web.json_response(self.svc.phone_view(flat, rid),
                                 headers={"Cache-Control": "no-store"})

    async def phone_ws(self, request: web.Request) -> web.StreamResponse:
        rid, flat = await self._who(request)
        origin = request.headers.get("Origin")
        if origin and origin.split("://", 1)[-1] != request.host:
            # another site's page must not open a resident's socket with their cookie
            return json_error(403, "origin: not this box's page")
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        phone = f"ws:{id(ws)}"
        if flat is not None:
            self.svc.listening(flat, phone, True)

        async def push() -> None:
            nonlocal flat
            seen = -1
            while not ws.closed and not self.svc.closing:
                # Session and flat again on every change, not once at connect (probe 11): a
                # resident moved out (signed out) or deleted, or living elsewhere now, must
                # not go on hearing the old flat's visitors while the page stays open.
                if await self._resident(request) is None:
                    await ws.close(code=SIGNED_OUT, message=b"signed out")
                    return
                now = await self.svc.flat_of(rid)
                if now != flat:
                    if flat is not None:
                        self.svc.listening(flat, phone, False)
                    if now is not None:
                        self.svc.listening(now, phone, True)
                    flat = now
                view = self.svc.phone_view(flat, rid)
                await ws.send_str(json.dumps(view, ensure_ascii=False))
                seen = view["version"]
                await self.svc.wait_change(seen, POLL_S)

        sender = asyncio.create_task(push())
        self.svc.sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.svc.sockets.discard(ws)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                await sender
            if flat is not None:
                self.svc.listening(flat, phone, False)
        return ws

    def action(self, name: str) -> Any:
        fn = {"answer": self.svc.answer, "open": self.svc.open_door,
              "later": self.svc.let_in_later, "decline": self.svc.decline}[name]

        async def handle(request: web.Request) -> web.Response:
            rid, _flat = await self._who(request)
            try:
                await fn(request.match_info["call_id"], rid)
            except CallRefused as e:
                return refused(e)
            return web.json_response(self.svc.phone_view(await self.svc.flat_of(rid), rid))

        return handle

    async def rtc_config(self, request: web.Request) -> web.Response:
        """ICE settings; TURN credentials only with ``?call=`` naming the live call this
        phone answered (valid for that call's remaining time)."""
        rid, _flat = await self._who(request)
        if self.svc.rtc is None:
            return json_error(404, "rtc: WebRTC is off on this box")
        call = request.query.get("call")
        try:
            cfg = (self.svc.rtc.client_config(rid) if call is None
                   else await self.svc.rtc_config(call, rid))
        except CallRefused as e:
            return refused(e)
        return web.json_response(cfg, headers={"Cache-Control": "no-store"})

    async def rtc_offer(self, request: web.Request) -> web.Response:
        rid, _flat = await self._who(request)
        body = OfferIn.model_validate_json(await request.read() or b"{}")
        try:
            ans = await self.svc.rtc_offer(request.match_info["call_id"], rid,
                                           body.model_dump())
        except CallRefused as e:
            return refused(e)
        return web.json_response(ans)

    async def push_key(self, request: web.Request) -> web.Response:
        await self._who(request)
        if self.svc.push is None:
            return json_error(404, "push: Web Push is turned off on this box",
                              error_zh="本小区未开启来电提醒")  # fmt: skip
        return web.json_response({"key": self.svc.push.public_key})

    async def push_subscribe(self, request: web.Request) -> web.Response:
        rid, flat = await self._who(request)
        if self.svc.push is None:
            return json_error(404, "push: Web Push is turned off on this box",
                              error_zh="本小区未开启来电提醒")  # fmt: skip
        if flat is None:
            return json_error(409, "flat: no flat on file for you; the property office adds it",
                              error_zh="物业还没有登记您家的房号，暂时不能提醒来电")  # fmt: skip
        body = PushIn.model_validate_json(await request.read() or b"{}")
        if not self.svc.push.allow_private and (why := endpoint_problem(body.endpoint)):
            return json_error(400, f"endpoint: {why}", field="endpoint",
                              error_zh="提醒地址须为公网 https 地址")  # fmt: skip
        await self.svc.box.store.run(db.add_push, self.svc.box.store.sync, rid, body.endpoint,
                                     body.keys.p256dh, body.keys.auth)
        return web.json_response({"subscribed": True, "flat": flat}, status=201)

    async def push_remove(self, request: web.Request) -> web.Response:
        rid, _flat = await self._who(request)
        body = PushIn.model_validate_json(await request.read() or b"{}")
        n = await self.svc.box.store.run(db.drop_push, self.svc.box.store.sync, body.endpoint,
                                         rid)
        return web.json_response({"removed": n})

    async def snapshot(self, request: web.Request) -> web.Response:
        rid, _flat = await self._who(request)
        try:
            jpeg = await self.svc.snapshot(request.match_info["call_id"], rid)
        except CallRefused as e:
            return refused(e)
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})
