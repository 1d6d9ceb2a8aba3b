"""The ``portal`` service: resident logins, the reading feed, community services, counts.

Residents log in with a one-time code and get a session token that works as a cookie on the
/r/ pages and as a bearer token (role ``resident``) on the box API, so the same identity opens
doors remotely and issues visitor passes. Reading counts go to the outbox every
``stats_interval_s`` as :class:`ReadingStats` (counts only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from edge.access import ACCESS
from edge.access import second_factor as factors
from edge.core.box import Box
from edge.core.http import ROLE, relayed_https
from edge.core.service import Service, cancel
from edge.core.standard import Alert, BoardPost, ContentItem, new_id
from edge.portal import PORTAL_RELAY
from edge.portal import bodies as m
from edge.portal import store as db
from edge.portal.codes import link_base, login_link
from edge.portal.door_codes import DoorCodes
from edge.portal.guard import LoginGuard, digits_for, remote_ok, scope_of
from edge.portal.look import SESSION_COOKIE
from edge.portal.recommend import CoReads, Item, Profile, Ranked, rank
from edge.reports import REPORTS
from edge.screens import store as screens_db

log = logging.getLogger(__name__)
COOKIE = SESSION_COOKIE
CO_READ_DAYS = 90
PIN_TRIES = 3  # wrong door PINs with one door-screen code before it is spent


class PortalService(Service):
    name = "portal"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.portal
        self._task: asyncio.Task | None = None
        self._window_start = datetime.now(UTC)
        self.guard = LoginGuard(self.cfg)
        # One login at a time, from the guard's check until its failure is counted: codes
        # posted together otherwise all passed the check while the store was redeeming.
        self._login_lock = asyncio.Lock()
        self._pin_misses: dict[str, int] = {}  # door-screen code -> wrong PINs (10 min codes)
        self._co: tuple[float, CoReads] | None = None  # cached co-read model (monotonic, model)
        self.flushed = 0
        self.door_codes = DoorCodes(box)  # login codes on door screens after face grants

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
        """Bearer-token checker for edge.core.http: a live portal session is role ``resident``."""
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
        return self.box.get(PORTAL_RELAY)

    async def login(self, code: str, client: str, agent: str, pin: str = "") -> dict[str, Any]:
        """Spend a code for a session; LoginRefused (naming why) if wrong, used, expired, too
        short for a login through the cloud, or while guessing is being held off. A code
        shown on a door screen also needs the resident's door ``pin`` (door_codes.py)."""
        async with self._login_lock:
            return await self._login(code, client, agent, pin)

    async def _door_pin(self, code: str, client: str, pin: str) -> None:
        """A door-screen code is worth nothing without its resident's door PIN: anyone behind
        them at the door may have read or scanned it (probe finding). PIN_TRIES wrong PINs
        spend the code; each counts as a wrong login for the guard too."""
        row = await self.db(db.live_code, code)
        if row is None or row["channel"] != "door":
            return
        if not pin:
            raise LoginRefused(401, "pin: a code from a door screen needs your door PIN too",
                               "门口屏幕上的登录码，还需输入您的开门密码", field="pin")
        access = self.box.get(ACCESS)
        rid = row["resident_id"]
        want = await self.box.store.run(factors.pin_of, self.box.store.sync, rid)
        if want and hmac.compare_digest(want, factors.resident_pin_hash(access.key, rid, pin)):
            self._pin_misses.pop(code, None)
            return
        await self._failed(client)
        misses = self._pin_misses[code] = self._pin_misses.get(code, 0) + 1
        if misses >= PIN_TRIES:
            self._pin_misses.pop(code, None)
            await self.db(db.spend_code, code)
            raise LoginRefused(401, "pin: wrong door PIN too often; the code is spent",
                               "开门密码错误次数过多，此登录码已作废；请下次刷脸进门时重新获取",
                               field="pin")
        raise LoginRefused(401, "pin: wrong door PIN", "开门密码不正确，请重新输入",
                           field="pin")

    async def _login(self, code: str, client: str, agent: str, pin: str = "") -> dict[str, Any]:
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
        await self._door_pin(code, client, pin)
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
        res = await self.resident(request) if request[ROLE] == "resident" else None
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
            return list(self.box.get(REPORTS).taxonomy.codes)
        except (KeyError, AttributeError):
            from edge.reports.taxonomy import load_taxonomy

            return list(load_taxonomy().codes)

    # --- reads, acknowledgements and posts (the API's handlers call these) ------------

    async def open_read(self, res: dict[str, Any], content_id: str) -> str | None:
        found = await self.db(db.content_item, content_id)
        if found is None or not self.for_phone(found[0], res["building"]):
            return None
        rid = await self.db(db.record_read, res["resident_id"], content_id, res["building"])
        return rid

    async def ack(self, res: dict[str, Any], content_id: str) -> bool | None:
        found = await self.db(db.content_item, content_id)
        if found is None or not self.for_phone(found[0], res["building"]):
            return None
        return await self.db(db.record_ack, res["resident_id"], content_id)

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

    def check_category(self, code: str) -> None:
        if code not in self.taxonomy_codes():
            raise web.HTTPBadRequest(
                text=json.dumps(
                    {"error": f"category: unknown taxonomy code {code!r}", "field": "category"}
                ),
                content_type="application/json",
            )





class LoginRefused(Exception):
    """A login that did not happen: HTTP status, English message, Chinese page text; ``field``
    the form field to fix (``pin``: the door PIN a door-screen code needs)."""

    def __init__(self, status: int, message: str, zh: str, retry_after: int = 0,
                 field: str = "code") -> None:
        super().__init__(message)
        self.status, self.message, self.zh, self.retry_after = status, message, zh, retry_after
        self.field = field


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
