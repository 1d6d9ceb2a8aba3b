"""The resident H5 pages under /r/: server-rendered, a few KB each, no framework.

Every page works without JavaScript (forms post and redirect); scripts are files (the box's
CSP allows no inline script): one measures dwell time on an article (``navigator.sendBeacon``),
one shares a visitor pass. The frame (header, large text, bottom tab bar, times in the
community's zone) is edge/portal/look.py, shared with the report page. Images are resized on the box
to the phone's width (``srcset``), videos load only when played.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from edge.core.http import client_of, form_post
from edge.core.standard import web_link
from edge.portal import PORTAL_RELAY
from edge.portal import bodies as m
from edge.portal import store as db
from edge.portal.look import esc, is_big, msg, page, query_msg, said, set_big, when
from edge.portal.service import COOKIE, LoginRefused, set_cookie
from edge.reports import REPORTS
from edge.reports import store as reports_db
from edge.screens import SCREENS
from edge.tickets import store as tickets_db

if TYPE_CHECKING:
    from edge.portal.access_pages import AccessPages

STATIC = Path(__file__).with_name("static")
__all__ = ["esc", "page"]  # access_pages uses the same frame
# The store's event errors (edge/portal/store/events.py) as residents read them.
EVENT_ERRORS = (
    ("full", "名额已满"),
    ("already signed up", "您已经报过名了"),
    ("no event", "没有找到这个活动"),
    (" is ", "这个活动已结束或已取消"),
)


def install(app: web.Application, svc: Any) -> None:
    p = Pages(svc)
    r = app.router
    r.add_get("/r/login", p.login_form)
    r.add_post("/r/login", p.login)
    r.add_post("/r/logout", p.logout)
    r.add_get("/r/read", p.feed)
    r.add_get("/r/read/{cid}", p.article)
    r.add_post("/r/read/{cid}/dwell", p.dwell)
    r.add_post("/r/read/{cid}/ack", p.ack)
    r.add_get("/r/media/{cid}", p.media)
    r.add_get("/r/events", p.events)
    r.add_post("/r/events/{eid}/signup", p.signup)
    r.add_post("/r/events/{eid}/cancel", p.cancel)
    r.add_get("/r/board", p.board)
    r.add_post("/r/board", p.board_post)
    r.add_post("/r/board/{pid}/flag", p.flag)
    r.add_get("/r/me", p.me)
    r.add_post("/r/api/mine", p.mine)
    r.add_get("/r/dwell.js", p.dwell_js)
    from edge.portal.access_pages import AccessPages  # it imports this module

    p.access = AccessPages(p)
    p.access.install(app)
    from edge.portal.factor_pages import FactorPages

    FactorPages(p).install(app)  # the door PIN page, the phone's prompt, the door keypad


def intercom_link(request: web.Request) -> str:
    """A way to the door-call page (/r/intercom) where the box has the intercom (its own
    feature: found by its route, as the portal does not import it)."""
    has = any(r.canonical == "/r/intercom" for r in request.app.router.resources())
    return "<a class='btn light' href=/r/intercom>门口来电（访客呼叫）</a>" if has else ""


class Pages:
    access: AccessPages  # set by install(): doors and passes on 我的

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.cfg = svc.cfg

    async def who(self, request: web.Request) -> dict[str, Any]:
        res = await self.svc.resident(request)
        if res is None:
            raise web.HTTPSeeOther("/r/login")
        return res

    async def dwell_js(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "dwell.js", headers={"Cache-Control": "max-age=3600"})

    # --- login --------------------------------------------------------------------------

    async def login_form(self, request: web.Request, error: str = "", code: str = "",
                         ask_pin: bool = False) -> web.Response:
        # A link with ?code= only fills the form: link previewers must not spend the code.
        code = code or request.query.get("code", "")
        note = msg("err", error) if error else query_msg(request)
        # A door-screen code needs the resident's door PIN (edge/portal/door_codes.py): the
        # box says so after the code, and the form keeps the code and asks for the PIN.
        pin = ("<label>开门密码（刷脸门禁的密码）<input name=pin type=password inputmode=numeric"
               " autocomplete=off pattern='[0-9]*' maxlength=10 required autofocus></label>"
               if ask_pin else "")
        return page(
            request,
            "社区居民登录",
            (
                f"{note}<form method=post action=/r/login class=card>"
                + ("<p>门口屏幕上的登录码，请再输入您的开门密码。</p>" if ask_pin else
                   "<p>请输入物业或门口屏幕提供的登录码，不需要密码。</p>")
                + "<label>登录码<input name=code inputmode=numeric autocomplete=one-time-code"
                f" value='{esc(code)}' placeholder='如 1234 5678' required></label>"
                f"{pin}<button>登录</button></form>"
                "<p class=hint>不登录也可以反映问题和报修：点下方「报事」。</p>"
            ),
            status=401 if error else 200,
        )

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await form_post(request)
        # Printed cards group the digits ("1234 5678 9012"): spaces and dashes are fine.
        code = "".join(c for c in str(form.get("code", "")) if c not in " -\u3000")
        if not (code.isdigit() and code.isascii() and len(code) <= 16):
            return await self.login_form(request, "登录码错误、已使用或已过期")
        try:
            pin = str(form.get("pin", "")).strip()[:10]
            got = await self.svc.login(
                code, client_of(request), request.headers.get("User-Agent", ""), pin
            )
        except LoginRefused as e:
            asked = e.field == "pin" and "作废" not in e.zh  # a spent code asks for nothing
            resp = await self.login_form(request, e.zh, code if asked else "", asked)
            if e.retry_after:
                resp.set_status(429)
                resp.headers["Retry-After"] = str(e.retry_after)
            return resp
        resp = web.HTTPSeeOther("/r/read")
        set_cookie(resp, got["token"], self.cfg.session_days, request)
        who = await self.svc.db(db.get_resident, got["resident_id"])
        if who and who.get("big_text") and not is_big(request):
            set_big(resp, True)  # the resident chose large text on another phone
        raise resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        if token := request.cookies.get(COOKIE):
            await self.svc.db(db.revoke_sessions, token=token)
        resp = web.HTTPSeeOther("/r/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    # --- reading ------------------------------------------------------------------------

    async def feed(self, request: web.Request) -> web.Response:
        res = await self.who(request)
        ranked = await self.svc.feed(res)
        out = []
        for em in await self.svc.emergencies():
            out.append(
                f"<div class=alert role=alert><b>{esc(em.title)}</b><br>{esc(em.body)}</div>"
            )
        if request.query.get("acked"):
            out.append(msg("ok", "已确认知晓，谢谢！"))
        out.append("<ul class=feed>")
        for r in ranked:
            cls = " class=must" if r.must_read and r.reason.startswith("必读") else ""
            badge = "<span class=badge>必读</span>" if cls else ""
            done = "<span class=read>已读</span>" if r.read else ""
            out.append(
                f"<li{cls} data-id='{esc(r.item.id)}'>{badge}"
                f"<a href='/r/read/{quote(r.item.id)}'>{esc(r.item.title)}</a>{done}"
                f"<small class=why>{esc(r.reason)}</small></li>"
            )
        out.append("</ul>")
        if not ranked:
            out.append("<p>暂无内容</p>")
        return page(request, "社区阅读", "<h2>为你推荐</h2>" + "".join(out), nav="/r/read")

    async def article(self, request: web.Request) -> web.Response:
        res = await self.who(request)
        cid = request.match_info["cid"]
        found = await self.svc.db(db.content_item, cid)
        if found is None or not self.svc.for_phone(found[0], res["building"]):
            return page(request, "未找到", msg("err", "内容不存在或已下线"), nav="/r/read",
                        status=404)  # fmt: skip
        item = found[0]
        read_id = await self.svc.open_read(res, cid)
        hist = await self.svc.db(db.history, res["resident_id"])
        body = ["<article class=card>"]
        q = quote(cid)
        if item.kind == "image":
            srcset = ", ".join(f"/r/media/{q}?w={w} {w}w" for w in self.cfg.image_widths)
            w0 = self.cfg.image_widths[0]
            body.append(
                f"<img src='/r/media/{q}?w={w0}' srcset='{srcset}' sizes='100vw'"
                f" alt='{esc(item.title)}'>"
            )
        elif item.kind == "video":
            body.append(f"<video controls preload=none src='/r/media/{q}'></video>")
        elif item.kind == "url" and item.url and web_link(item.url):
            # Checked again here, not only when the item arrived: older rows predate the check.
            body.append(f"<p><a href='{esc(item.url)}' rel=noopener>打开链接</a></p>")
        for para in (item.body or "").splitlines():
            if para.strip():
                body.append(f"<p>{esc(para)}</p>")
        body.append("</article>")
        if cid in hist["acks"]:
            body.append("<p class='msg ok' id=acked role=status>你已确认知晓</p>")
        elif self.svc.must_read(item):
            body.append(
                f"<form method=post action='/r/read/{q}/ack'>"
                "<button id=ack>我已阅读并知晓</button></form>"
            )
        body.append(
            "<p><a href=/r/read>← 返回阅读</a></p><script src=/r/dwell.js"
            f" data-read='{esc(read_id or '')}' data-url='/r/read/{q}/dwell'></script>"
        )
        return page(request, item.title, "".join(body), nav="/r/read")

    async def dwell(self, request: web.Request) -> web.Response:
        res = await self.who(request)
        form = await form_post(request)
        try:
            ms = int(str(form.get("ms", "0")))
        except ValueError:
            return web.Response(status=400, text="ms: not a number")
        await self.svc.db(db.record_dwell, res["resident_id"], str(form.get("read_id", "")), ms)
        return web.Response(status=204)

    async def ack(self, request: web.Request) -> web.StreamResponse:
        res = await self.who(request)
        if await self.svc.ack(res, request.match_info["cid"]) is None:
            raise web.HTTPNotFound()
        raise web.HTTPSeeOther("/r/read?acked=1")

    async def media(self, request: web.Request) -> web.StreamResponse:
        res = await self.who(request)
        found = await self.svc.db(db.content_item, request.match_info["cid"])
        if (
            found is None
            or not found[0].sha256
            or not self.svc.for_phone(found[0], res["building"])
        ):
            raise web.HTTPNotFound()
        item = found[0]
        cfg = self.svc.box.config
        try:  # the screens' verified content cache holds the file (one item, two uses)
            src = self.svc.box.get(SCREENS).cache.path(item.sha256)
        except (KeyError, AttributeError):
            src = cfg.box.data_dir / cfg.player.cache_dir / item.sha256[:2] / item.sha256
        if not src.exists():
            raise web.HTTPNotFound(text="not downloaded to this box yet")
        headers = {"Cache-Control": "private, max-age=86400"}
        if item.kind != "image":
            return web.FileResponse(src, headers=headers)  # Range requests for video
        try:
            want = int(request.query.get("w", self.cfg.image_widths[0]))
        except ValueError:
            want = self.cfg.image_widths[0]
        widths = sorted(self.cfg.image_widths)
        width = next((w for w in widths if w >= want), widths[-1])
        out = cfg.box.data_dir / "portal-img" / f"{item.sha256}-{width}.jpg"
        if not out.exists():
            await asyncio.to_thread(resize, src, out, width)
        return web.FileResponse(out, headers={**headers, "Content-Type": "image/jpeg"})

    # --- community services -------------------------------------------------------------

    async def events(self, request: web.Request) -> web.Response:
        res = await self.who(request)
        from datetime import UTC, datetime

        rows = await self.svc.db(db.list_events, res["resident_id"], datetime.now(UTC))
        hours = await self.svc.db(db.volunteer_hours, res["resident_id"])
        out = [query_msg(request), f"<p>我的志愿时长：<b>{hours['hours']:g}</b> 小时</p>"]
        out.append("<ul class=feed>")
        for e in rows:
            left = e["capacity"] - e["signed_up"]
            kind = f"<span class=badge>志愿 {e['hours']:g}h</span>" if e["volunteer"] else ""
            act = "cancel" if e["mine"] else "signup"
            label = "取消报名" if e["mine"] else ("报名" if left > 0 else "已满")
            dis = " disabled" if not e["mine"] and left <= 0 else ""
            light = " class=light" if e["mine"] else ""
            out.append(
                f"<li data-id='{esc(e['id'])}'>{kind}<b>{esc(e['title'])}</b>"
                f"<small>{esc(e['place'])} · {esc(when(request, e['starts_at']))}"
                f" · 剩余名额 {left}/{e['capacity']}</small>"
                f"<form method=post action='/r/events/{quote(e['id'])}/{act}'>"
                f"<button{dis}{light}>{label}</button></form></li>"
            )
        out.append("</ul>")
        return page(request, "社区活动", "".join(out), nav="/r/events")

    async def signup(self, request: web.Request) -> web.StreamResponse:
        return await self._event_action(request, db.sign_up, "报名成功")

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        return await self._event_action(request, db.cancel_signup, "已取消")

    async def _event_action(self, request: web.Request, fn: Any, ok: str) -> web.StreamResponse:
        res = await self.who(request)
        try:
            await self.svc.db(fn, request.match_info["eid"], res["resident_id"])
        except db.PortalError as e:
            text = str(e)
            why = next((zh for en, zh in EVENT_ERRORS if en in text), "操作没有成功，请刷新后再试")
            raise web.HTTPSeeOther(said("/r/events", "err", why)) from None
        raise web.HTTPSeeOther(said("/r/events", "ok", ok))

    async def board(self, request: web.Request) -> web.Response:
        await self.who(request)
        b = request.query.get("b", "exchange")
        b = b if b in ("notice", "exchange") else "exchange"
        rows = await self.svc.db(db.list_posts, b)
        codes = self.svc.taxonomy_codes()
        tabs = "".join(
            f"<a class='btn tab{' on' if k == b else ''}' href='/r/board?b={k}'>{t}</a>"
            for k, t in (("exchange", "闲置互换"), ("notice", "公告栏"))
        )
        out = [f"<div class=seg>{tabs}</div><ul class=feed>"]
        opts = "".join(f"<option value='{esc(c)}'>{esc(self.category_zh(c))}</option>"
                       for c in codes)  # fmt: skip
        for p in rows:
            flag = (
                f"<details><summary>举报</summary><form method=post"
                f" action='/r/board/{quote(p['id'])}/flag'><select name=category>{opts}"
                "</select><input name=reason placeholder=原因（可不填）>"
                "<button>提交举报</button></form>"
                "</details>"
                if b == "exchange"
                else ""
            )
            out.append(
                f"<li data-id='{esc(p['id'])}'><b>{esc(p['title'])}</b>"
                f"<small>{esc(p['body'])}</small>{flag}</li>"
            )
        out.append("</ul>")
        if b == "exchange":
            out.append(
                "<h2>发布闲置/互助</h2><form method=post action=/r/board class=card>"
                "<label>标题<input name=title maxlength=100 required></label>"
                "<label>描述<textarea name=body maxlength=2000 rows=3></textarea></label>"
                "<button>发布</button></form>"
            )
        return page(request, "邻里", "".join(out), nav="/r/board")

    def category_zh(self, code: str) -> str:
        try:
            return str(self.svc.box.get(REPORTS).taxonomy.get(code).zh)
        except (KeyError, AttributeError):
            return code

    async def board_post(self, request: web.Request) -> web.StreamResponse:
        res = await self.who(request)
        form = await form_post(request)
        body = m.NewPost(
            board="exchange",
            title=str(form.get("title", "")).strip() or "-",
            body=str(form.get("body", "")),
        )
        await self.svc.add_post(res["resident_id"], "resident", res["building"], body)
        raise web.HTTPSeeOther("/r/board?b=exchange")

    async def flag(self, request: web.Request) -> web.StreamResponse:
        res = await self.who(request)
        form = await form_post(request)
        cat = str(form.get("category", "other"))
        if cat not in self.svc.taxonomy_codes():
            cat = "other"
        try:
            await self.svc.db(
                db.flag_post,
                request.match_info["pid"],
                res["resident_id"],
                cat,
                str(form.get("reason", ""))[:500],
            )
        except db.PortalError:
            pass
        raise web.HTTPSeeOther("/r/board?b=exchange")

    async def me(self, request: web.Request) -> web.Response:
        res = await self.who(request)
        hours = await self.svc.db(db.volunteer_hours, res["resident_id"])
        away = self.svc.box.get(PORTAL_RELAY).away_url()
        home = "".join(
            x for x in (
                f"{res['building']}号楼" if res["building"] else "",
                f" {res['unit']}{'单元' if str(res['unit']).isdigit() else ''}"
                if res["unit"] else "",
            )
        )  # fmt: skip
        return page(
            request,
            "我的",
            (
                f"{query_msg(request)}<section class=card>"
                f"<h2>{esc(res['name'] or '居民')}</h2><p>{esc(home)}</p>"
                f"<p>志愿时长 {hours['hours']:g} 小时，参加活动 {hours['events_attended']} 次</p>"
                "<a class='btn light' href='/r/#mine'>我的反映和报修进度</a>"
                "<a class='btn light' href=/r/pin id=my-pin>我的开门密码</a>"
                f"{intercom_link(request)}</section>"
                f"{await self.access.section(request, res, away)}"
                "<p class=hint>字太小？点右上角「大字」，以后在任何手机登录都会记住。</p>"
                "<form method=post action=/r/logout><button class=light>退出登录</button></form>"
            ),
            nav="/r/me",
        )

    async def mine(self, request: web.Request) -> web.Response:
        """The resident's reports and repair requests (ids with follow keys, for the report
        page's progress tab). Items this phone submitted without a login, sent along, become
        the resident's first, so they follow the login to another phone."""
        res = await self.svc.resident(request)
        if res is None:
            return web.json_response({"error": "请先登录", "field": "session"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            body = None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return web.json_response({"error": "内容格式不对", "field": "items"}, status=400)
        given = [x for x in items[:60] if isinstance(x, dict) and isinstance(x.get("id"), str)]
        keys: dict[str, dict[str, str]] = {"report": {}, "ticket": {}}
        for x in given:
            if x.get("kind") in keys and isinstance(x.get("id"), str):
                keys[x["kind"]][x["id"]] = str(x.get("key", ""))
        rid = res["resident_id"]
        reps = await self.svc.db(reports_db.claim_and_list, rid, keys["report"])
        tics = await self.svc.db(tickets_db.claim_and_list, rid, keys["ticket"])
        items = [
            {"kind": kind, "id": r["id"], "key": r["follow_key"], "ref": r["ref"], "ts": r["ts"]}
            for kind, rows in (("report", reps), ("ticket", tics))
            for r in rows
        ]
        items.sort(key=lambda x: x["ts"], reverse=True)
        known = {x["id"] for x in items}
        # Items of this phone that are not the resident's (a family member's) stay listed.
        items += [
            {"kind": x["kind"], "id": x["id"], "key": str(x.get("key", ""))}
            for x in given
            if x.get("id") not in known and x.get("kind") in keys
        ]
        return web.json_response({"items": items[:60]})


def resize(src: Path, out: Path, width: int) -> None:
    """Scale an image down to ``width`` pixels (never up) as a JPEG, written atomically."""
    import cv2

    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if img is None:
        raise web.HTTPUnsupportedMediaType(text="not a readable image")
    h, w = img.shape[:2]
    if w > width:
        img = cv2.resize(img, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise web.HTTPUnsupportedMediaType(text="could not encode image")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(out)
