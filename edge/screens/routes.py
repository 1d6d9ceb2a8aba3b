"""HTTP routes of the screens service.

Player side: ``/screen/<id>/plan``, ``/screen/<id>/ws`` and ``/screen/<id>/plays`` need the
screen's device key (``X-Screen-Key`` header, or ``?key=`` on the WebSocket, which a browser
cannot give headers); staff provision it with ``POST /api/v1/screens/<id>/key`` or
``qilu-edge screens key <id>``. Open to anyone: the page shell ``/screen/<id>`` (it reads the
key from its URL fragment, which never reaches the network), ``/screen/sw.js``,
``/screen/static/*`` and ``/screen/content/<sha256>`` (public notices, named by hash).
Staff side (bearer token): ``/api/v1/screens/...`` to manage screens, keys, content,
playlists, schedules and emergency broadcasts.
"""

from __future__ import annotations

import html
import json
import mimetypes
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from edge.core.http import json_error, query_int, require_staff
from edge.core.qr import qr_svg
from edge.core.standard import ContentItem, Emergency, Playlist, ScheduleEntry, Screen, new_id
from edge.screens import resolver
from edge.screens import store as db
from edge.screens.service import (
    PLAYS_MAX_BYTES,
    PlaysRefused,
    ScreensService,
    parse_record,
    static_dir,
)

STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}


def add_routes(app: web.Application, svc: ScreensService) -> None:
    h = _Handlers(svc)
    r = app.router
    r.add_get("/screen/sw.js", h.service_worker)
    r.add_get("/screen/static/{name}", h.static)
    r.add_get("/screen/content/{sha}", h.content_file)
    r.add_get("/screen/{screen_id}", h.page)
    r.add_get("/screen/{screen_id}/plan", h.plan)
    r.add_get("/screen/{screen_id}/ws", h.websocket)
    r.add_post("/screen/{screen_id}/plays", h.post_plays)
    a = "/api/v1/screens"
    r.add_get(a, h.list_screens)
    r.add_post(a, h.add_screen)
    r.add_get(a + "/content", h.list_content)
    r.add_post(a + "/content", h.add_content)
    r.add_put(a + "/content/{content_id}/file", h.upload_file)
    r.add_get(a + "/playlists", h.list_playlists)
    r.add_post(a + "/playlists", h.add_playlist)
    r.add_get(a + "/schedules", h.list_schedules)
    r.add_post(a + "/schedules", h.add_schedule)
    r.add_delete(a + "/schedules/{entry_id}", h.delete_schedule)
    r.add_get(a + "/emergencies", h.list_emergencies)
    r.add_post(a + "/emergencies", h.add_emergency)
    r.add_post(a + "/emergencies/{em_id}/cancel", h.cancel_emergency)
    r.add_post(a + "/{screen_id}/key", h.new_key)
    r.add_delete(a + "/{screen_id}/key", h.revoke_key)
    r.add_get(a + "/{screen_id}/now", h.now_playing)
    r.add_get(a + "/{screen_id}/plays", h.plays)


def _dump(recs: list[Any]) -> list[dict]:
    return [r.payload() for r in recs]


class _Handlers:
    def __init__(self, svc: ScreensService) -> None:
        self.svc = svc
        self.store = svc.box.store

    # --- player --------------------------------------------------------------------------------

    async def _static_text(self, name: str) -> str:
        path = self.svc_static() / name
        return await _read(path)

    def svc_static(self):
        return static_dir()

    async def service_worker(self, request: web.Request) -> web.Response:
        text = await self._static_text("sw.js")
        return web.Response(
            text=text,
            content_type="text/javascript",
            headers={"Service-Worker-Allowed": "/screen/", "Cache-Control": "no-cache"},
        )

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        path = self.svc_static() / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound()
        ctype = STATIC_TYPES.get(path.suffix, "application/octet-stream")
        return web.Response(
            text=await _read(path), content_type=ctype, headers={"Cache-Control": "no-cache"}
        )

    async def page(self, request: web.Request) -> web.Response:
        sid = request.match_info["screen_id"]
        await self.svc.catalog()
        if self.svc.screen(sid) is None:
            return web.Response(
                status=404,
                text=f"<!doctype html><meta charset=utf-8><title>未知屏幕</title>"
                f"<h1>未知屏幕 {html.escape(sid)}</h1><p>请在边缘盒配置中添加该屏幕。</p>",
                content_type="text/html",
            )
        text = (await self._static_text("player.html")).replace(
            "__SCREEN_ID__", html.escape(json.dumps(sid))
        )
        panels = self.svc.panels.get(sid, [])
        if panels:  # e.g. the call panel of a door's screen (edge/intercom)
            head = "".join(f'<link rel="stylesheet" href="{html.escape(u)}">'
                           for p in panels for u in p.styles)  # fmt: skip
            tail = "".join(f'<script src="{html.escape(u)}"></script>'
                           for p in panels for u in p.scripts)  # fmt: skip
            zone = "".join(p.html for p in panels if p.zone)
            over = "".join(p.html for p in panels if not p.zone)
            if zone:
                text = (text.replace('class="layout-standard"',
                                     'class="layout-standard has-panel"')
                        .replace("<!--PANEL-->", f'<section id="panel" class="panel">{zone}'
                                                 "</section>"))  # fmt: skip
            text = (text.replace("<!--PANEL-HEAD-->", head)
                    .replace("<!--PANEL-SCRIPTS-->", over + tail))  # fmt: skip
        return web.Response(
            text=text, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    async def _device(self, request: web.Request) -> web.Response | None:
        """None if the request comes from the screen (its key); else the error to answer."""
        sid = request.match_info["screen_id"]
        await self.svc.catalog()
        if self.svc.screen(sid) is None:
            return json_error(404, f"screen_id: unknown screen {sid!r}")
        key = request.headers.get("X-Screen-Key") or request.query.get("key")
        if not self.svc.key_ok(sid, key):
            why = "wrong" if key else "missing"
            return json_error(401, f"key: {why} screen key; staff provision one with"
                              f" `qilu-edge screens key {sid}`", field="key")
        return None

    async def plan(self, request: web.Request) -> web.Response:
        sid = request.match_info["screen_id"]
        if (refused := await self._device(request)) is not None:
            return refused
        self.svc.seen(sid)
        return web.json_response(await self.svc.plan_json(sid), dumps=_dumps)

    async def content_file(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        if not resolver_sha(sha) or not await self.svc.ensure_cached(sha):
            raise web.HTTPNotFound()
        await self.svc.cache.touch(sha)
        items = await self.store.run(db.content_by_sha, self.store.sync, sha)
        mime = next((i.mime for i in items if i.mime), None)
        # The type is the item's (staff or a cloud ops admin chose it: image/svg+xml, even
        # text/html): opened on its own, the file must not run script as the box's page.
        headers = {"Cache-Control": "public, max-age=31536000, immutable",
                   "Content-Security-Policy": CONTENT_CSP}
        if mime:
            headers["Content-Type"] = mime
        return web.FileResponse(self.svc.cache.path(sha), headers=headers)

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        sid = request.match_info["screen_id"]
        # Refused before the upgrade: an unauthenticated client never joins the screen's
        # sockets, so it gets no plan or login code and no code is issued for it.
        if (refused := await self._device(request)) is not None:
            return refused
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=PLAYS_MAX_BYTES)
        await ws.prepare(request)
        self.svc.sockets.setdefault(sid, set()).add(ws)
        self.svc.origins[sid] = f"{request.scheme}://{request.host}"
        self.svc.seen(sid)
        try:
            await ws.send_str(
                json.dumps(
                    {"type": "plan", "plan": await self.svc.plan_json(sid)}, ensure_ascii=False
                )
            )
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                self.svc.seen(sid)
                try:
                    data = json.loads(msg.data)
                except (ValueError, RecursionError):  # not JSON, or nested too deep
                    continue
                if isinstance(data, dict) and data.get("type") == "plays":
                    try:
                        res = await self.svc.receive_plays(sid, data.get("records"))
                    except PlaysRefused as e:
                        await ws.send_str(json.dumps({"type": "error", "error": str(e)}))
                        continue
                    await ws.send_str(json.dumps({"type": "ack", **res}))
        finally:
            self.svc.sockets.get(sid, set()).discard(ws)
        return ws

    async def post_plays(self, request: web.Request) -> web.Response:
        sid = request.match_info["screen_id"]
        if (refused := await self._device(request)) is not None:
            return refused
        if (request.content_length or 0) > PLAYS_MAX_BYTES:
            return json_error(413, f"body: at most {PLAYS_MAX_BYTES} bytes of play records")
        raw = await request.content.read(PLAYS_MAX_BYTES + 1)
        if len(raw) > PLAYS_MAX_BYTES:
            return json_error(413, f"body: at most {PLAYS_MAX_BYTES} bytes of play records")
        try:
            data = json.loads(raw)
        except ValueError:
            return json_error(400, "body: not JSON", field="records")
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            return json_error(400, "records: a list of play records is required", field="records")
        try:
            return web.json_response(await self.svc.receive_plays(sid, records))
        except PlaysRefused as e:
            return json_error(413, str(e), field="records")

    # --- device keys (staff) --------------------------------------------------------------------

    async def new_key(self, request: web.Request) -> web.Response:
        """A new device key for a screen, returned once with the player address to set up."""
        actor = require_staff(request)
        sid = request.match_info["screen_id"]
        await self.svc.catalog()
        if self.svc.screen(sid) is None:
            return json_error(404, f"screen_id: unknown screen {sid!r}", field="screen_id")
        key = await self.svc.new_key(sid, actor)
        base = request.query.get("base") or f"{request.scheme}://{request.host}"
        url = player_url(base, sid, key)
        return web.json_response(
            {"screen_id": sid, "key": key, "player_url": url, "qr_svg": qr_svg(url)}, status=201
        )

    async def revoke_key(self, request: web.Request) -> web.Response:
        require_staff(request)
        sid = request.match_info["screen_id"]
        if not await self.svc.revoke_key(sid):
            return json_error(404, f"screen_id: screen {sid!r} has no key", field="screen_id")
        return web.json_response({"screen_id": sid, "revoked": True})

    # --- staff API ------------------------------------------------------------------------------

    async def list_screens(self, request: web.Request) -> web.Response:
        require_staff(request)
        cat = await self.svc.catalog()
        states = await self.store.run(db.player_states, self.store.sync)
        now = datetime.now(UTC)
        out = []
        for sid, ref in sorted(self.svc._screens.items()):
            p = resolver.what_plays(cat, ref, now)
            out.append(
                {
                    "id": sid,
                    "tags": list(ref.tags),
                    "player": states.get(sid, {}).get("state", "unknown"),
                    "connected": len(self.svc.sockets.get(sid, ())),
                    "now": {"content_id": p.content_id, "source": p.source},
                    "page": f"/screen/{sid}",
                    "key": self.svc.has_key(sid),
                }
            )
        return web.json_response({"screens": out})

    async def add_screen(self, request: web.Request) -> web.Response:
        require_staff(request)
        screen = Screen.model_validate(await request.json())
        if any(s.id == screen.id for s in self.svc.box.config.screens):
            # The config's [[screens]] entry wins over a stored record: storing this one
            # would answer 201 and change nothing the screen plays.
            return json_error(409, f"id: screen {screen.id!r} is declared in the box config"
                              " ([[screens]]); change its name or tags there", field="id")
        await self.svc.put_screen(screen)
        return web.json_response(screen.payload(), status=201)

    async def now_playing(self, request: web.Request) -> web.Response:
        require_staff(request)
        sid = request.match_info["screen_id"]
        cat = await self.svc.catalog()
        ref = self.svc.screen(sid)
        if ref is None:
            return json_error(404, f"screen_id: unknown screen {sid!r}")
        p = resolver.what_plays(cat, ref, datetime.now(UTC))
        return web.json_response(
            {
                "screen_id": sid,
                "content_id": p.content_id,
                "source": p.source,
                "started_at": p.started_at.isoformat(),
                "ends_at": p.ends_at.isoformat(),
            }
        )

    async def plays(self, request: web.Request) -> web.Response:
        require_staff(request)
        limit = query_int(request, "limit", 100)
        rows = await self.store.run(
            db.recent_plays, self.store.sync, request.match_info["screen_id"], limit
        )
        return web.json_response({"plays": rows})

    async def list_content(self, request: web.Request) -> web.Response:
        require_staff(request)
        cat = await self.svc.catalog()
        items = await self.store.run(db.list_content, self.store.sync)
        return web.json_response(
            {
                "content": [
                    {
                        **i.payload(),
                        "cached": resolver.playable(cat, i.id),
                        "error": self.svc.download_errors.get(i.id),
                    }
                    for i in items
                ],
                "cache": {
                    "used_bytes": await self.svc.cache.usage(),
                    "budget_bytes": self.svc.cache.budget,
                },
            },
            dumps=_dumps,
        )

    async def add_content(self, request: web.Request) -> web.Response:
        require_staff(request)
        item = parse_record(ContentItem, await request.json())
        await self.svc.put_content(item)
        return web.json_response(item.payload(), status=201, dumps=_dumps)

    async def upload_file(self, request: web.Request) -> web.Response:
        """PUT raw bytes (Content-Type image/* or video/*) as the file of a content item."""
        require_staff(request)
        cid = request.match_info["content_id"]
        mime = request.content_type
        kind = mime.split("/")[0]
        if kind not in resolver.FILE_KINDS:
            return json_error(400, f"Content-Type: image/* or video/* expected, got {mime!r}")
        data = await request.read()
        if not data:
            return json_error(400, "body: the file is empty", field="body")
        sha = await self.svc.cache.add_bytes(data, await self.svc.protected_shas())
        old = await self.store.run(db.get_content, self.store.sync, cid)
        q = request.query
        fields: dict[str, Any] = {
            "id": cid,
            "kind": kind,
            "title": q.get("title") or (old.title if old else cid),
            "sha256": sha,
            "size_bytes": len(data),
            "mime": mime,
            "duration_s": float(q.get("duration_s") or (old.duration_s if old else 10.0)),
            "tags": old.tags if old else [],
        }
        item = ContentItem.model_validate(fields)
        await self.svc.put_content(item)
        return web.json_response(item.payload(), status=201, dumps=_dumps)

    async def list_playlists(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response(
            {"playlists": _dump(await self.store.run(db.list_playlists, self.store.sync))},
            dumps=_dumps,
        )

    async def add_playlist(self, request: web.Request) -> web.Response:
        require_staff(request)
        pl = parse_record(Playlist, await request.json())
        await self.svc.put_playlist(pl)
        return web.json_response(pl.payload(), status=201, dumps=_dumps)

    async def list_schedules(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response(
            {"schedules": _dump(await self.store.run(db.list_schedules, self.store.sync))},
            dumps=_dumps,
        )

    async def add_schedule(self, request: web.Request) -> web.Response:
        require_staff(request)
        entry = parse_record(ScheduleEntry, await request.json())
        await self.svc.put_schedule(entry)
        return web.json_response(entry.payload(), status=201, dumps=_dumps)

    async def delete_schedule(self, request: web.Request) -> web.Response:
        require_staff(request)
        eid = request.match_info["entry_id"]
        if not await self.store.run(db.delete_schedule, self.store.sync, eid):
            return json_error(404, f"entry_id: no schedule entry {eid!r}")
        await self.svc.changed()
        return web.json_response({"deleted": eid})

    async def list_emergencies(self, request: web.Request) -> web.Response:
        require_staff(request)
        ems = await self.store.run(db.list_emergencies, self.store.sync, None)
        return web.json_response({"emergencies": _dump(ems)}, dumps=_dumps)

    async def add_emergency(self, request: web.Request) -> web.Response:
        """Body: title, body, level, screens, tags, content_id and minutes or expires_at."""
        actor = require_staff(request)
        data = await request.json()
        if not isinstance(data, dict):
            return json_error(400, "body: a JSON object is expected")
        now = datetime.now(UTC)
        minutes = data.pop("minutes", None)
        if minutes is not None and "expires_at" not in data:
            try:
                data["expires_at"] = (now + timedelta(minutes=float(minutes))).isoformat()
            except (TypeError, ValueError):
                return json_error(400, "minutes: a number is expected", field="minutes")
        data.setdefault("id", new_id("em"))
        data.setdefault("starts_at", now.isoformat())
        data["source"] = "api"
        em = Emergency.model_validate(data)
        await self.svc.start_emergency(em)
        resp = em.payload()
        resp["actor"] = actor
        return web.json_response(resp, status=201, dumps=_dumps)

    async def cancel_emergency(self, request: web.Request) -> web.Response:
        require_staff(request)
        em = await self.svc.cancel_emergency(request.match_info["em_id"])
        if em is None:
            return json_error(404, "em_id: no such emergency")
        return web.json_response(em.payload(), dumps=_dumps)


def player_url(base: str, screen_id: str, key: str) -> str:
    """The address to configure once on the screen's browser: the key rides in the fragment,
    which browsers never send over the network; the page keeps it in its local storage."""
    from urllib.parse import quote

    return f"{base.rstrip('/')}/screen/{quote(screen_id)}#key={quote(key)}"


# Content files opened on their own: no script, an opaque origin (no cookies, no box API).
CONTENT_CSP = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; " \
    "style-src 'unsafe-inline'"


def resolver_sha(sha: str) -> bool:
    return len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _read(path) -> str:
    import asyncio

    return await asyncio.to_thread(path.read_text, encoding="utf-8")


mimetypes.add_type("text/javascript", ".js")
