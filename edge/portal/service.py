"""The ``portal`` service: resident logins, the reading feed, community services, counts.

Residents log in with a one-time code and get a session token that works as a cookie on the
/r/ pages and as a bearer token (role ``resident``) on the box API, so the same identity opens
doors remotely and issues visitor passes. Reading counts go to the outbox every
``stats_interval_s`` as :class:`ReadingStats` (counts only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from edge.api import json_error, require_staff
from edge.portal import models as m
from edge.portal.codes import link_base, login_link
from edge.portal.door_codes import DoorCodes
from edge.portal.guard import LoginGuard, digits_for, remote_ok, scope_of
from edge.portal.recommend import CoReads, Item, Profile, Ranked, rank
from edge.portal.relay import client_of, relayed_https
from edge.service import Service, cancel
from edge.standard import Alert, BoardPost, CommunityEvent, ContentItem, new_id
from edge.store import portal as db
from edge.store import screens as screens_db

log = logging.getLogger(__name__)
COOKIE = "qilu_rs"
CO_READ_DAYS = 90


class PortalService(Service):
    name = "portal"

    def __init__(self, box: Any) -> None:
        super().__init__(box)
        self.cfg = box.config.portal
        self._task: asyncio.Task | None = None
        self._window_start = datetime.now(UTC)
        self.guard = LoginGuard(self.cfg)
        self._co: tuple[float, CoReads] | None = None  # cached co-read model (monotonic, model)
        self.flushed = 0
        self.door_codes = DoorCodes(box)  # login codes on door screens after face grants
        if not self.cfg.enabled:
            return
        app = box.http
        app["authenticators"].append(self.authenticate)
        app["public_paths"].add("/api/v1/portal/login")
        r = app.router
        r.add_post("/api/v1/portal/login", self.http_login)
        r.add_post("/api/v1/portal/logout", self.http_logout)
        r.add_get("/api/v1/portal/me", self.http_me)
        r.add_get("/api/v1/portal/feed", self.http_feed)
        r.add_post("/api/v1/portal/reads", self.http_read)
        r.add_post("/api/v1/portal/reads/{read_id}/dwell", self.http_dwell)
        r.add_post("/api/v1/portal/acks", self.http_ack)
        r.add_post("/api/v1/portal/codes", self.http_issue_code)
        r.add_get("/api/v1/portal/sessions", self.http_sessions)
        r.add_post("/api/v1/portal/sessions/revoke", self.http_revoke)
        r.add_post("/api/v1/portal/articles", self.http_article)
        r.add_get("/api/v1/portal/stats", self.http_stats)
        r.add_post("/api/v1/portal/stats/flush", self.http_flush)
        r.add_get("/api/v1/portal/events", self.http_events)
        r.add_post("/api/v1/portal/events", self.http_event_put)
        r.add_post("/api/v1/portal/events/{event_id}/signup", self.http_signup)
        r.add_delete("/api/v1/portal/events/{event_id}/signup", self.http_cancel)
        r.add_post("/api/v1/portal/events/{event_id}/attendance", self.http_attendance)
        r.add_get("/api/v1/portal/posts", self.http_posts)
        r.add_post("/api/v1/portal/posts", self.http_post_add)
        r.add_post("/api/v1/portal/posts/{post_id}/flag", self.http_flag)
        r.add_post("/api/v1/portal/posts/{post_id}/moderate", self.http_moderate)
        r.add_get("/api/v1/portal/moderation", self.http_flagged)
        from edge.portal import pages

        pages.install(app, self)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.cfg.enabled:
            self._task = asyncio.create_task(self._stats_loop(), name="portal-stats")
            self.door_codes.install()

    async def stop(self) -> None:
        if self._task:
            await cancel(self._task)
            with contextlib.suppress(Exception):  # what was read until now still counts
                await asyncio.wait_for(self.flush(), 1.0)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled,
            "stats_records_flushed": self.flushed,
            "door_codes_shown": self.door_codes.shown,
            "logins": self.guard.status(),
        }

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.stats_interval_s)
            try:
                await self.flush()
            except Exception:
                log.exception("portal: reading counts could not be flushed; will retry")

    async def flush(self) -> int:
        start, self._window_start = self._window_start, datetime.now(UTC)
        recs = await self.db(db.flush_stats, start)
        self.flushed += len(recs)
        return len(recs)

    async def db(self, fn: Any, *args: Any, **kw: Any) -> Any:
        return await self.box.store.run(fn, self.box.store.sync, *args, **kw)

    # --- identity -----------------------------------------------------------------------

    async def authenticate(self, token: str) -> tuple[str, str] | None:
        """Bearer-token checker for edge.api: a live portal session is role ``resident``."""
        if len(token) < 20:
            return None
        sess = await self.db(db.session_for, token)
        return (sess["resident_id"], "resident") if sess else None

    async def issue_code(self, body: m.IssueCode, by: str) -> dict[str, Any]:
        base = link_base(self.cfg.public_url, self._relay.live_away_url(), "")
        got = await self.db(
            db.issue_code,
            body.resident_id,
            channel=body.channel,
            by=by,
            ttl=timedelta(hours=body.ttl_h or self.cfg.code_ttl_h),
            digits=digits_for(self.cfg, base),
            name=body.name,
            building=body.building,
            unit=body.unit,
        )
        return {
            "code": got["code"],
            "resident_id": body.resident_id,
            "link": login_link(base, got["code"]),
            "expires_at": got["expires_at"].isoformat(),
        }

    @property
    def _relay(self) -> Any:
        return self.box.service("portal_relay")

    async def login(self, code: str, client: str, agent: str) -> dict[str, Any]:
        """Spend a code for a session; LoginRefused (naming why) if wrong, used, expired, too
        short for a login through the cloud, or while guessing is being held off."""
        wait = self.guard.wait_s(client)
        if wait > 0:
            raise LoginRefused(
                429, f"too many wrong login codes; try again in {math.ceil(wait)} s",
                "登录尝试过多，请稍后再试", math.ceil(wait),
            )
        if not remote_ok(self.cfg, client, code):
            await self._failed(client)
            raise LoginRefused(
                401, "code: this code works on the community Wi-Fi only; away from home use a"
                f" {self.cfg.relay_code_digits}-digit code", "此登录码只能在小区 Wi-Fi 内使用，"
                "在外请向物业索取长登录码",
            )
        token = secrets.token_urlsafe(32)
        got = await self.db(db.redeem_code, code, token, self.cfg.session_days, agent)
        if got is None:
            await self._failed(client)
            raise LoginRefused(401, "code: wrong, used or expired login code",
                               "登录码错误、已使用或已过期")
        return {**got, "token": token}

    async def _failed(self, client: str) -> None:
        if not self.guard.failed(client):
            return
        scope = scope_of(client)
        closed = self.guard.backoff[scope]
        log.warning("portal: login codes are being guessed (%s); logins closed %g s", scope,
                    closed)
        await self.box.store.record(
            Alert(
                id=new_id("al"),
                level="warning",
                type="login_guessing",
                message=f"居民登录码疑似被猜测：10 分钟内 {self.cfg.login_scope_failures} 次错误"
                f"（{'经云端中转' if scope == 'relay' else '小区网络'}），该途径登录暂停"
                f" {closed:g} 秒。最后来源 {client}",
                evidence=[client[:64]],
            )
        )

    async def resident(self, request: web.Request) -> dict[str, Any] | None:
        """The resident behind a page request (cookie) or API request (bearer)."""
        token = request.cookies.get(COOKIE)
        if not token:
            header = request.headers.get("Authorization", "")
            token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not token or len(token) < 20:
            return None
        return await self.db(db.session_for, token)

    async def need_resident(self, request: web.Request) -> dict[str, Any]:
        res = await self.resident(request) if request["role"] == "resident" else None
        if res is None:
            raise web.HTTPForbidden(
                text=json.dumps({"error": "resident session required"}),
                content_type="application/json",
            )
        return res

    # --- content and feed ---------------------------------------------------------------

    def for_phone(self, item: ContentItem, building: str | None) -> bool:
        tags = set(item.tags)
        if self.cfg.phone_tags and not tags & set(self.cfg.phone_tags):
            return False
        addressed = {t.removeprefix("building:") for t in tags if t.startswith("building:")}
        return not addressed or building in addressed

    def must_read(self, item: ContentItem) -> bool:
        return bool(set(item.tags) & set(self.cfg.must_read_tags))

    async def items(self, building: str | None) -> list[tuple[ContentItem, Item]]:
        out = []
        for ci, published in await self.db(db.phone_content):
            if self.for_phone(ci, building):
                it = Item(
                    ci.id,
                    ci.title,
                    tuple(ci.tags),
                    datetime.fromisoformat(published),
                    self.must_read(ci),
                )
                out.append((ci, it))
        return out

    async def co_reads(self) -> CoReads:
        # Rebuilt at most once a minute: one model serves every resident's feed.
        if self._co and time.monotonic() - self._co[0] < 60:
            return self._co[1]
        now = datetime.now(UTC)
        log_rows = await self.db(db.read_log, now - timedelta(days=CO_READ_DAYS))
        rows = [(r, c, b, datetime.fromisoformat(t)) for r, c, b, t in log_rows]
        co = await asyncio.to_thread(CoReads, rows, now)
        self._co = (time.monotonic(), co)
        return co

    def invalidate(self) -> None:
        self._co = None

    async def feed(self, res: dict[str, Any]) -> list[Ranked]:
        pairs = await self.items(res["building"])
        hist = await self.db(db.history, res["resident_id"])
        profile = Profile(
            building=res["building"],
            reads={cid: dwell / 1000.0 for cid, (_, dwell) in hist["reads"].items()},
            acks=hist["acks"],
        )
        co = await self.co_reads()
        return await asyncio.to_thread(
            rank,
            [it for _, it in pairs],
            profile,
            co,
            datetime.now(UTC),
            half_life_h=self.cfg.freshness_half_life_h,
            must_read_slots=self.cfg.must_read_slots,
            must_tags=self.cfg.must_read_tags,
            ignore_tags=self.cfg.phone_tags,
            limit=self.cfg.feed_size,
        )

    async def emergencies(self) -> list[Any]:
        now = datetime.now(UTC)
        ems = await self.db(screens_db.list_emergencies, now)
        return [e for e in ems if e.starts_at <= now < e.expires_at and e.cancelled_at is None]

    def taxonomy_codes(self) -> list[str]:
        try:
            return list(self.box.service("reports").taxonomy.codes)
        except (KeyError, AttributeError):
            from edge.reports.taxonomy import load_taxonomy

            return list(load_taxonomy().codes)

    # --- API: residents -----------------------------------------------------------------

    async def http_login(self, request: web.Request) -> web.Response:
        body = m.Login.model_validate(await request.json())
        try:
            got = await self.login(
                body.code, client_of(request), request.headers.get("User-Agent", "")
            )
        except LoginRefused as e:
            resp = json_error(e.status, e.message, field="code")
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
        set_cookie(resp, got["token"], self.cfg.session_days, request)
        return resp

    async def http_logout(self, request: web.Request) -> web.Response:
        await self.need_resident(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        n = await self.db(db.revoke_sessions, token=token or request.cookies.get(COOKIE, "x"))
        resp = web.json_response({"revoked": n})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def http_me(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        hours = await self.db(db.volunteer_hours, res["resident_id"])
        return web.json_response(
            {
                "resident_id": res["resident_id"],
                "name": res["name"],
                "building": res["building"],
                "volunteer": hours,
            }
        )

    async def http_feed(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        ranked = await self.feed(res)
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

    async def open_read(self, res: dict[str, Any], content_id: str) -> str | None:
        found = await self.db(db.content_item, content_id)
        if found is None or not self.for_phone(found[0], res["building"]):
            return None
        rid = await self.db(db.record_read, res["resident_id"], content_id, res["building"])
        return rid

    async def http_read(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        body = m.ReadOpen.model_validate(await request.json())
        read_id = await self.open_read(res, body.content_id)
        if read_id is None:
            return json_error(
                404, f"content_id: no item {body.content_id!r} for you", field="content_id"
            )
        return web.json_response({"read_id": read_id}, status=201)

    async def http_dwell(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        body = m.Dwell.model_validate(await request.json())
        ok = await self.db(
            db.record_dwell, res["resident_id"], request.match_info["read_id"], body.dwell_ms
        )
        if not ok:
            return json_error(404, "read_id: no such read of yours", field="read_id")
        return web.json_response({"ok": True})

    async def ack(self, res: dict[str, Any], content_id: str) -> bool | None:
        found = await self.db(db.content_item, content_id)
        if found is None or not self.for_phone(found[0], res["building"]):
            return None
        return await self.db(db.record_ack, res["resident_id"], content_id)

    async def http_ack(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        body = m.Ack.model_validate(await request.json())
        first = await self.ack(res, body.content_id)
        if first is None:
            return json_error(
                404, f"content_id: no item {body.content_id!r} for you", field="content_id"
            )
        return web.json_response({"first": first})

    # --- API: staff ---------------------------------------------------------------------

    async def http_issue_code(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.IssueCode.model_validate(await request.json())
        out = await self.issue_code(body, by)
        if out["link"].startswith("/"):  # no public URL, no relay: the address staff used
            out["link"] = f"{request.scheme}://{request.host}{out['link']}"
        return web.json_response(out, status=201)

    async def http_sessions(self, request: web.Request) -> web.Response:
        require_staff(request)
        rows = await self.db(db.list_sessions, request.query.get("resident_id"))
        return web.json_response({"items": rows})

    async def http_revoke(self, request: web.Request) -> web.Response:
        require_staff(request)
        body = m.Revoke.model_validate(await request.json())
        n = await self.db(
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
                    *(self.cfg.phone_tags[:1] or ["phone"]),
                    *body.tags,
                    *(["must_read"] if body.must_read else []),
                    *(f"building:{b}" for b in body.buildings),
                ]
            )
        )
        item = ContentItem(
            id=body.id or new_id("art"), kind="html", title=body.title, body=body.body, tags=tags
        )
        await self.db(screens_db.put_content, item)
        return web.json_response(item.model_dump(mode="json"), status=201)

    async def http_stats(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"items": await self.db(db.local_stats)})

    async def http_flush(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"records": await self.flush()})

    # --- API: events --------------------------------------------------------------------

    async def http_events(self, request: web.Request) -> web.Response:
        res = await self.resident(request) if request["role"] == "resident" else None
        rows = await self.db(db.list_events, res["resident_id"] if res else None)
        return web.json_response({"items": rows})

    async def http_event_put(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.NewEvent.model_validate(await request.json())
        ev = CommunityEvent(id=body.id or new_id("ev"), **body.model_dump(exclude={"id"}))
        rec = await self.db(db.put_event, ev, by)
        return web.json_response(rec.model_dump(mode="json"), status=201)

    async def http_signup(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        try:
            rec = await self.db(db.sign_up, request.match_info["event_id"], res["resident_id"])
        except db.PortalError as e:
            return json_error(409, str(e))
        return web.json_response(rec.model_dump(mode="json"), status=201)

    async def http_cancel(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        try:
            rec = await self.db(
                db.cancel_signup, request.match_info["event_id"], res["resident_id"]
            )
        except db.PortalError as e:
            return json_error(409, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    async def http_attendance(self, request: web.Request) -> web.Response:
        by = require_staff(request)
        body = m.Attendance.model_validate(await request.json())
        try:
            rec = await self.db(
                db.credit_attendance,
                request.match_info["event_id"],
                body.resident_id,
                body.hours,
                by,
            )
        except db.PortalError as e:
            return json_error(404, str(e))
        return web.json_response(rec.model_dump(mode="json"))

    # --- API: boards --------------------------------------------------------------------

    async def http_posts(self, request: web.Request) -> web.Response:
        board = request.query.get("board", "exchange")
        if board not in ("notice", "exchange"):
            return json_error(400, "board: expected notice or exchange", field="board")
        staff = request["role"] in ("staff", "admin")
        rows = await self.db(db.list_posts, board, include_hidden=staff)
        if not staff:
            for r in rows:
                r.pop("author", None)
        return web.json_response({"items": rows})

    async def add_post(
        self, who: str, role: str, building: str | None, body: m.NewPost
    ) -> BoardPost:
        if body.board == "notice" and role not in ("staff", "admin"):
            raise web.HTTPForbidden(
                text=json.dumps({"error": "board: only staff post notices", "field": "board"}),
                content_type="application/json",
            )
        post = BoardPost(
            id=new_id("post"), board=body.board, title=body.title, body=body.body, building=building
        )
        return await self.db(db.add_post, post, who)

    async def http_post_add(self, request: web.Request) -> web.Response:
        body = m.NewPost.model_validate(await request.json())
        if request["role"] == "resident":
            res = await self.need_resident(request)
            post = await self.add_post(res["resident_id"], "resident", res["building"], body)
        else:
            post = await self.add_post(require_staff(request), "staff", None, body)
        return web.json_response(post.model_dump(mode="json"), status=201)

    def check_category(self, code: str) -> None:
        if code not in self.taxonomy_codes():
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {"error": f"category: unknown taxonomy code {code!r}", "field": "category"}
                ),
                content_type="application/json",
            )

    async def http_flag(self, request: web.Request) -> web.Response:
        res = await self.need_resident(request)
        body = m.Flag.model_validate(await request.json())
        self.check_category(body.category)
        try:
            rec = await self.db(
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
            self.check_category(body.category)
        try:
            rec = await self.db(
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
        return web.json_response({"items": await self.db(db.flagged_posts)})


class LoginRefused(Exception):
    """A login that did not happen: HTTP status, English message, Chinese page text."""

    def __init__(self, status: int, message: str, zh: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status, self.message, self.zh, self.retry_after = status, message, zh, retry_after


def set_cookie(
    resp: web.StreamResponse, token: str, days: float, request: web.Request | None = None
) -> None:
    # HttpOnly: page scripts never see the token; Lax: other sites cannot post with it.
    # Secure when the resident came through the cloud relay over HTTPS: the cookie then never
    # travels in clear; on the community Wi-Fi the box speaks plain HTTP and cannot set it.
    resp.set_cookie(
        COOKIE, token, max_age=int(days * 86400), path="/", httponly=True, samesite="Lax",
        secure=request is not None and relayed_https(request),
    )
