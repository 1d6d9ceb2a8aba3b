"""The portal's JSON API (``/api/v1/portal/...``): each handler reads and checks the request
and answers; the work (logins, feed, reads, events, boards) is :class:`PortalService`'s.
The resident pages (``/r/...``) are edge/portal/pages.py."""

from __future__ import annotations

import logging

from aiohttp import web

from edge.core.http import (
    AUTHENTICATORS,
    PUBLIC,
    RESIDENT_LOOKUP,
    ROLE,
    client_of,
    json_error,
    require_staff,
)
from edge.core.standard import CommunityEvent, ContentItem, new_id
from edge.portal import bodies as m
from edge.portal import pages
from edge.portal import store as db
from edge.portal.service import COOKIE, LoginRefused, PortalService, set_cookie
from edge.screens import store as screens_db

log = logging.getLogger(__name__)


def add_routes(app: web.Application, svc: PortalService) -> None:
    """The portal's routes, its bearer-token check and its pages (none if it is disabled)."""
    if not svc.cfg.enabled:
        return
    api = PortalRoutes(svc)
    app[AUTHENTICATORS].append(svc.authenticate)
    app[RESIDENT_LOOKUP].append(svc.resident)  # who reports come from (edge/reports/gate.py)
    app[PUBLIC].add("/api/v1/portal/login")
    r = app.router
    r.add_post("/api/v1/portal/login", api.http_login)
    r.add_post("/api/v1/portal/logout", api.http_logout)
    r.add_get("/api/v1/portal/me", api.http_me)
    r.add_get("/api/v1/portal/feed", api.http_feed)
    r.add_post("/api/v1/portal/reads", api.http_read)
    r.add_post("/api/v1/portal/reads/{read_id}/dwell", api.http_dwell)
    r.add_post("/api/v1/portal/acks", api.http_ack)
    r.add_post("/api/v1/portal/codes", api.http_issue_code)
    r.add_get("/api/v1/portal/sessions", api.http_sessions)
    r.add_post("/api/v1/portal/sessions/revoke", api.http_revoke)
    r.add_post("/api/v1/portal/articles", api.http_article)
    r.add_get("/api/v1/portal/stats", api.http_stats)
    r.add_post("/api/v1/portal/stats/flush", api.http_flush)
    r.add_get("/api/v1/portal/events", api.http_events)
    r.add_post("/api/v1/portal/events", api.http_event_put)
    r.add_post("/api/v1/portal/events/{event_id}/signup", api.http_signup)
    r.add_delete("/api/v1/portal/events/{event_id}/signup", api.http_cancel)
    r.add_post("/api/v1/portal/events/{event_id}/attendance", api.http_attendance)
    r.add_get("/api/v1/portal/posts", api.http_posts)
    r.add_post("/api/v1/portal/posts", api.http_post_add)
    r.add_post("/api/v1/portal/posts/{post_id}/flag", api.http_flag)
    r.add_post("/api/v1/portal/posts/{post_id}/moderate", api.http_moderate)
    r.add_get("/api/v1/portal/moderation", api.http_flagged)
    pages.install(app, svc)


class PortalRoutes:
    def __init__(self, svc: PortalService) -> None:
        self.svc = svc

    async def http_login(self, request: web.Request) -> web.Response:
        body = m.Login.model_validate(await request.json())
        try:
            got = await self.svc.login(
                body.code, client_of(request), request.headers.get("User-Agent", ""), body.pin
            )
        except LoginRefused as e:
            resp = json_error(e.status, e.message, field=e.field, error_zh=e.zh)
            if e.retry_after:
                resp.headers["Retry-After"] = str(e.retry_after)
            return resp
        resp = web.json_response(
            {
                "token": got["token"],
                "resident_id": got["resident_id"],
                "session_id": got["session_id"],
            }
        )
        set_cookie(resp, got["token"], self.svc.cfg.session_days, request)
        return resp

    async def http_logout(self, request: web.Request) -> web.Response:
        await self.svc.need_resident(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        n = await self.svc.db(db.revoke_sessions, token=token or request.cookies.get(COOKIE, "x"))
        resp = web.json_response({"revoked": n})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def http_me(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        hours = await self.svc.db(db.volunteer_hours, res["resident_id"])
        return web.json_response(
            {
                "resident_id": res["resident_id"],
                "name": res["name"],
                "building": res["building"],
                "volunteer": hours,
            }
        )

    async def http_feed(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        ranked = await self.svc.feed(res)
        return web.json_response(
            {
                "items": [
                    {
                        "content_id": r.item.id,
                        "title": r.item.title,
                        "tags": list(r.item.tags),
                        "score": r.score,
                        "reason": r.reason,
                        "signals": r.signals,
                        "read": r.read,
                        "must_read": r.must_read,
                        "published": r.item.published.isoformat(),
                    }
                    for r in ranked
                ]
            }
        )

    async def http_read(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        body = m.ReadOpen.model_validate(await request.json())
        read_id = await self.svc.open_read(res, body.content_id)
        if read_id is None:
            return json_error(
                404, f"content_id: no item {body.content_id!r} for you", field="content_id"
            )
        return web.json_response({"read_id": read_id}, status=201)

    async def http_dwell(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        body = m.Dwell.model_validate(await request.json())
        ok = await self.svc.db(
            db.record_dwell, res["resident_id"], request.match_info["read_id"], body.dwell_ms
        )
        if not ok:
            return json_error(404, "read_id: no such read of yours", field="read_id")
        return web.json_response({"ok": True})

    async def http_ack(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        body = m.Ack.model_validate(await request.json())
        first = await self.svc.ack(res, body.content_id)
        if first is None:
            return json_error(
                404, f"content_id: no item {body.content_id!r} for you", field="content_id"
            )
        return web.json_response({"first": first})

    async def http_issue_code(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.IssueCode.model_validate(await request.json())
        out = await self.svc.issue_code(body, by)
        if out["link"].startswith("/"):  # no public URL, no relay: the address staff used
            out["link"] = f"{request.scheme}://{request.host}{out['link']}"
        return web.json_response(out, status=201)

    async def http_sessions(self, request: web.Request) -> web.Response:
        require_staff(request)
        rows = await self.svc.db(db.list_sessions, request.query.get("resident_id"))
        return web.json_response({"items": rows})

    async def http_revoke(self, request: web.Request) -> web.Response:
        require_staff(request)
        body = m.Revoke.model_validate(await request.json())
        n = await self.svc.db(
            db.revoke_sessions, session_id=body.session_id, resident_id=body.resident_id
        )
        return web.json_response({"revoked": n})

    async def http_article(self, request: web.Request) -> web.Response:
        """Publish a text article to phones in the screens' content model (one item, two uses)."""
        require_staff(request)
        body = m.Article.model_validate(await request.json())
        tags = list(
            dict.fromkeys(
                [
                    *(self.svc.cfg.phone_tags[:1] or ["phone"]),
                    *body.tags,
                    *(["must_read"] if body.must_read else []),
                    *(f"building:{b}" for b in body.buildings),
                ]
            )
        )
        item = ContentItem(
            id=body.id or new_id("art"), kind="html", title=body.title, body=body.body, tags=tags
        )
        await self.svc.db(screens_db.put_content, item)
        return web.json_response(item.model_dump(mode="json"), status=201)

    async def http_stats(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"items": await self.svc.db(db.local_stats)})

    async def http_flush(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"records": await self.svc.flush()})

    async def http_events(self, request: web.Request) -> web.Response:
        res = await self.svc.resident(request) if request[ROLE] == "resident" else None
        rows = await self.svc.db(db.list_events, res["resident_id"] if res else None)
        return web.json_response({"items": rows})

    async def http_event_put(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.NewEvent.model_validate(await request.json())
        ev = CommunityEvent(id=body.id or new_id("ev"), **body.model_dump(exclude={"id"}))
        rec = await self.svc.db(db.put_event, ev, by)
        return web.json_response(rec.model_dump(mode="json"), status=201)

    async def http_signup(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        try:
            rec = await self.svc.db(db.sign_up, request.match_info["event_id"], res["resident_id"])
        except db.PortalError as e:
            return json_error(409, str(e))
        return web.json_response(rec.model_dump(mode="json"), status=201)

    async def http_cancel(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        try:
            rec = await self.svc.db(
                db.cancel_signup, request.match_info["event_id"], res["resident_id"]
            )
        except db.PortalError as e:
            return json_error(409, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    async def http_attendance(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.Attendance.model_validate(await request.json())
        try:
            rec = await self.svc.db(
                db.credit_attendance,
                request.match_info["event_id"],
                body.resident_id,
                body.hours,
                by,
            )
        except db.PortalError as e:
            return json_error(404, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    async def http_posts(self, request: web.Request) -> web.Response:
        board = request.query.get("board", "exchange")
        if board not in ("notice", "exchange"):
            return json_error(400, "board: expected notice or exchange", field="board")
        staff = request[ROLE] in ("staff", "admin")
        rows = await self.svc.db(db.list_posts, board, include_hidden=staff)
        if not staff:
            for r in rows:
                r.pop("author", None)
        return web.json_response({"items": rows})

    async def http_post_add(self, request: web.Request) -> web.Response:
        body = m.NewPost.model_validate(await request.json())
        if request[ROLE] == "resident":
            res = await self.svc.need_resident(request)
            post = await self.svc.add_post(res["resident_id"], "resident", res["building"], body)
        else:
            post = await self.svc.add_post(require_staff(request), "staff", None, body)
        return web.json_response(post.model_dump(mode="json"), status=201)

    async def http_flag(self, request: web.Request) -> web.Response:
        res = await self.svc.need_resident(request)
        body = m.Flag.model_validate(await request.json())
        self.svc.check_category(body.category)
        try:
            rec = await self.svc.db(
                db.flag_post,
                request.match_info["post_id"],
                res["resident_id"],
                body.category,
                body.reason,
            )
        except db.PortalError as e:
            return json_error(404, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    async def http_moderate(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.Moderate.model_validate(await request.json())
        if body.category:
            self.svc.check_category(body.category)
        try:
            rec = await self.svc.db(
                db.moderate_post,
                request.match_info["post_id"],
                body.action,
                by,
                body.category,
                body.note,
            )
        except db.PortalError as e:
            return json_error(404, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    async def http_flagged(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"items": await self.svc.db(db.flagged_posts)})
