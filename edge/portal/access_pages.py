"""Doors and visitor passes on the resident's "我的" page (/r/me), at home or through the cloud.

The portal session is the same identity the access engine knows (role ``resident``): a
resident opens only the doors their rights allow and issues passes for their own visitors.
Plain forms, no script needed: it works on a slow phone and through the cloud relay alike. A
door opens only after a confirmation page; a new pass can be shared (system share sheet,
/r/static/share.js) as its QR image with the PIN in the text, or as a link (``/r/v/<token>``,
edge/portal/pass_links.py) that shows the visitor the PIN and QR without a login until the pass
ends. Times are the community's.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import ValidationError

from edge.access import ACCESS, passes, policy
from edge.access import store as access_db
from edge.access.routes import PassIn, Refused, issue_pass
from edge.core.http import form_post
from edge.portal import PORTAL_RELAY
from edge.portal import pass_links as links
from edge.portal.look import LOOK, esc, msg, page, said, when

REASONS = {  # the access policy's deny reasons (edge/access/policy.py), as residents read them
    "unknown_resident": "门禁系统中没有您的登记，请联系物业",
    "not_allowed_here": "您没有这扇门的权限",
    "outside_hours": "当前不在允许的通行时段",
    "blocked": "您的通行已被暂停，请联系物业",
    "resident_suspended": "您的通行已被暂停，请联系物业",
    "resident_moved_out": "您已登记迁出，请联系物业",
}


# Refusals of a new pass that are not the access policy's (edge/access/routes.py issue_pass).
PASS_FIELDS = {
    "doors": "请至少选择一扇门",
    "valid_to": "有效时间不对：请选择 1 小时到 {days} 天",
    "uses": "可用次数不对：请选择 1 到 100 次",
    "visitor": "访客姓名太长了（最多 100 字）",
}


class AccessPages:
    def __init__(self, pages: Any) -> None:
        self.pages = pages
        self.box = pages.svc.box

    @property
    def access(self) -> Any:
        return self.box.get(ACCESS, None)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/r/doors/{door}/open", self.confirm_open)
        r.add_post("/r/doors/{door}/open", self.open_door)
        r.add_post("/r/passes", self.new_pass)
        r.add_post("/r/passes/{pid}/revoke", self.revoke)
        r.add_get("/r/v/{token}", self.shared_pass)

    async def my_doors(self, resident_id: str) -> dict[str, Any]:
        """The doors this resident may open now (rights, blocks, status; hours aside)."""
        access = self.access
        if access is None or not access.doors_cfg:
            return {}
        facts = await access.facts(resident_id)
        return {
            d.id: d for d in access.doors_cfg.values()
            if policy.evaluate(facts, d.id, d.building, None) is None
        }  # fmt: skip

    async def section(self, request: web.Request, res: dict[str, Any], away: str | None) -> str:
        """The doors, passes and away-link part of /r/me."""
        out: list[str] = []
        doors = await self.my_doors(res["resident_id"])
        if doors:
            out.append("<section class=card><h2>远程开门</h2><ul class='plain doors'>")
            for d in doors.values():
                out.append(
                    f"<li><a class=btn href='/r/doors/{quote(d.id)}/open'>"
                    f"开 {esc(d.name or d.id)}</a></li>"
                )
            out.append("</ul><p class=hint>点了会先问您一次，确认后才开门。</p></section>")
        if self.access is not None and self.access.doors_cfg:
            out.append(await self._passes(request, res, doors))
        if away:
            out.append(
                "<section class=card><h2>在外访问</h2><p>不在小区时，用这个地址打开本页"
                f"（可收藏）：<br><a href='{esc(away)}'>{esc(away)}</a></p></section>"
            )
        return "".join(out)

    async def _passes(self, request: web.Request, res: dict[str, Any], doors: dict) -> str:
        out = ["<section class=card><h2>访客通行证</h2>"]
        mine = await self.box.store.run(
            access_db.list_passes, self.box.store.sync, res["resident_id"], 20
        )
        now = datetime.now(UTC).isoformat()
        live = [p for p in mine if not p["revoked"] and p["valid_to"] > now and p["uses_left"]]
        names = {d.id: d.name or d.id for d in self.access.doors_cfg.values()}
        if live:
            out.append("<ul class=plain>")
        for p in live:
            where = "、".join(names.get(d, d) for d in p["doors"])
            out.append(
                f"<li class=pass><span class=ref>通行证 #{esc(p.get('ref') or '')}</span> "
                f"{esc(p['visitor'] or '访客')}<small>{esc(where)} · 还能用 {p['uses_left']} 次"
                f" · {esc(when(request, p['valid_to']))} 前有效</small>"
                f"<form method=post action='/r/passes/{quote(p['id'])}/revoke'>"
                "<button class=light>作废</button></form></li>"
            )
        if live:
            out.append("</ul>")
        if not doors:
            out.append("<p class=hint>您目前没有可开的门，不能新建通行证。</p></section>")
            return "".join(out)  # their passes can still be revoked; no new ones
        # None ticked in advance: a pass names the doors its resident chose.
        picks = "".join(
            f"<label><input type=checkbox name=door value='{esc(d.id)}'>{esc(d.name or d.id)}"
            "</label>"
            for d in doors.values()
        )
        hours = "".join(
            f"<option value={h}{' selected' if h == 24 else ''}>{t}</option>"
            for h, t in ((2, "2 小时"), (24, "1 天"), (72, "3 天"), (168, "7 天"))
        )
        uses = "".join(f"<option value={n}>{n} 次</option>" for n in (1, 2, 5, 10))
        out.append(
            "<h2>新建通行证</h2><form method=post action=/r/passes id=new-pass>"
            "<label>访客姓名（可不填）<input name=visitor maxlength=100></label>"
            f"<fieldset class=pick><legend>可以进哪些门</legend>{picks}</fieldset>"
            "<div class=row>"
            f"<label>有效时间<select name=hours>{hours}</select></label>"
            f"<label>可用次数<select name=uses>{uses}</select></label></div>"
            "<button>生成通行证</button></form></section>"
        )
        return "".join(out)

    async def _door(self, request: web.Request, res: dict[str, Any]) -> Any:
        if self.access is None:
            raise web.HTTPNotFound()
        door = self.access.doors_cfg.get(request.match_info["door"])
        if door is None:
            raise web.HTTPNotFound()
        return door

    async def confirm_open(self, request: web.Request) -> web.Response:
        """Asks once before a door opens: a mistaken tap must not open a door."""
        res = await self.pages.who(request)
        door = await self._door(request, res)
        if door.id not in await self.my_doors(res["resident_id"]):
            why = REASONS["not_allowed_here"]
            raise web.HTTPSeeOther(said("/r/me", "err", why))
        name = esc(door.name or door.id)
        return page(
            request,
            "确认开门",
            (
                f"<section class='card confirm'><p>确定要打开这扇门吗？</p>"
                f"<p class=door>{name}</p>"
                f"<form method=post action='/r/doors/{quote(door.id)}/open'>"
                "<div class=actions><a class='btn light' href=/r/me>取消</a>"
                "<button id=confirm-open>确认开门</button></div></form></section>"
            ),
            nav="/r/me",
        )

    async def open_door(self, request: web.Request) -> web.StreamResponse:
        res = await self.pages.who(request)
        door = await self._door(request, res)
        try:
            out = await self.access.remote_open(door.id, res["resident_id"], "resident")
        except LookupError:
            raise web.HTTPNotFound() from None
        if out.granted:
            raise web.HTTPSeeOther(said("/r/me", "ok", f"门已打开（{door.name or door.id}）"))
        why = REASONS.get(out.reason, "门没有打开，请稍后再试或联系物业")
        raise web.HTTPSeeOther(said("/r/me", "err", why))

    async def new_pass(self, request: web.Request) -> web.Response:
        res = await self.pages.who(request)
        form = await form_post(request)
        if self.access is None:
            raise web.HTTPNotFound()
        days = self.access.cfg.pass_max_days
        try:
            hours = float(str(form.get("hours", "24")))
            body = PassIn(
                visitor=str(form.get("visitor", "")),
                doors=[str(d) for d in form.getall("door", [])],
                valid_to=datetime.now(UTC) + timedelta(hours=hours),
                uses=int(str(form.get("uses", "1"))),
            )
            got = await issue_pass(self.access, self.box, res["resident_id"], body,
                                   res["resident_id"])  # fmt: skip
        except Refused as e:
            why = str(e).rsplit("(", 1)[-1].rstrip(")") if e.status == 403 else ""
            text = REASONS.get(why) or PASS_FIELDS.get(e.field or "", "通行证没有生成，请稍后再试")
            raise web.HTTPSeeOther(said("/r/me", "err", text.format(days=days))) from None
        except (ValueError, ValidationError, OverflowError) as e:
            field = next((f for f in PASS_FIELDS if f in str(e)), "valid_to")
            text = PASS_FIELDS[field].format(days=days)
            raise web.HTTPSeeOther(said("/r/me", "err", text)) from None
        saved = await self.box.store.run(access_db.get_pass, self.box.store.sync, got["id"])
        names = {d.id: d.name or d.id for d in self.access.doors_cfg.values()}
        where = "、".join(names.get(d, d) for d in got["doors"])
        until = when(request, got["valid_to"])
        ref = f"通行证 #{saved.get('ref')}"
        share = (
            f"{res['name'] or '住户'}给您的{ref}：密码 {got['pin']}，可进 {where}，"
            f"{until} 前有效，可用 {got['uses_total']} 次。在门口扫二维码或输入密码。"
        )
        png = f"data:image/png;base64,{got['qr_png_base64']}"
        token = links.new_token()
        await self.box.store.run(links.add_link, self.box.store.sync, token, got["id"],
                                 got["pin"], datetime.fromisoformat(got["valid_to"]))  # fmt: skip
        link = self._link_url(request, token)
        return page(
            request,
            "访客通行证",
            (
                f"{msg('ok', f'{ref} 已生成')}<section class=card id=pass data-url='{esc(link)}'"
                f" data-share='{esc(share)}' data-title='{esc(ref)}'>"
                f"<h2>给 {esc(got['visitor'] or '访客')}</h2>"
                f"<p class=pin>密码 <b>{esc(got['pin'])}</b></p>"
                f"<img class=qr id=pass-qr alt=通行二维码 width=240 height=240 src='{png}'>"
                f"<p>可进：{esc(where)}<br>{esc(until)} 前有效，可用 {got['uses_total']} 次</p>"
                "<div class='actions share'><button id=share-link hidden>发送链接</button>"
                "<button id=share class=light hidden>发送图片</button></div>"
                "<p class=link>访客链接（无需登录，到期自动失效）：<br>"
                f"<a id=pass-link href='{esc(link)}' rel=noreferrer>{esc(link)}</a></p>"
                f"<a class='btn light' id=save download='{esc(ref)}.png' href='{png}'>"
                "保存二维码图片</a>"
                "<p class=hint>把链接、二维码或密码发给访客，在门口扫码或输入密码即可进门。"
                "离开本页后不再显示密码和链接。</p></section>"
                "<p><a href=/r/me>← 返回我的</a></p>"
            ),
            nav="/r/me",
            status=201,
            scripts=("/r/static/share.js",),
        )

    def _link_url(self, request: web.Request, token: str) -> str:
        """Where a visitor opens the pass: through the cloud when the box has a relay (a
        visitor is rarely on the community's Wi-Fi), else this box's address."""
        path = f"/r/v/{token}"
        relay = self.box.get(PORTAL_RELAY, None)
        away = relay.away_url() if relay is not None else None
        if away:
            return f"{away}?next={quote(path, safe='/')}"
        return f"{request.scheme}://{request.host}{path}"

    async def shared_pass(self, request: web.Request) -> web.Response:
        """A visitor's view of a shared pass: PIN and QR, no login; nothing once it ended."""
        hdrs = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
        found = await self.box.store.run(links.open_link, self.box.store.sync,
                                         request.match_info["token"])  # fmt: skip
        p = None
        if found is not None and self.access is not None:
            try:
                p = await self.box.store.run(access_db.get_pass, self.box.store.sync, found[0])
            except access_db.NotFound:
                p = None
        if found is None or p is None:
            body = msg("err", "链接无效：请向邀请您的住户重新索取")
            return page(request, "访客通行证", body, status=404, tabs=False, headers=hdrs)
        now = datetime.now(UTC).isoformat()
        if p["revoked"] or p["valid_to"] <= now or not p["uses_left"]:
            why = ("已被作废" if p["revoked"] else "已过期" if p["valid_to"] <= now
                   else "次数已用完")  # fmt: skip
            body = msg("err", f"这张通行证{why}，请联系邀请您的住户")
            return page(request, "访客通行证", body, status=410, tabs=False, headers=hdrs)
        names = {d.id: d.name or d.id for d in self.access.doors_cfg.values()}
        where = "、".join(names.get(d, d) for d in p["doors"])
        qr = passes.qr_png(passes.qr_text(self.access.key, p["id"]))
        png = "data:image/png;base64," + base64.b64encode(qr).decode()
        community = request.app[LOOK].community if LOOK in request.app else ""
        body = (
            f"<section class='card visitor' id=pass><h2>欢迎到访{esc(community)}</h2>"
            f"<p>{esc(p['visitor'] or '访客')}，请在门口扫描二维码或输入密码</p>"
            f"<p class=pin>密码 <b id=pin>{esc(found[1])}</b></p>"
            f"<img class=qr id=pass-qr alt=通行二维码 width=240 height=240 src='{png}'>"
            f"<p>可进：{esc(where)}<br>{esc(when(request, p['valid_to']))} 前有效，"
            f"还能用 {p['uses_left']} 次</p></section>"
        )
        return page(request, "访客通行证", body, tabs=False, headers=hdrs)

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        res = await self.pages.who(request)
        pid = request.match_info["pid"]
        try:
            p = await self.box.store.run(access_db.get_pass, self.box.store.sync, pid)
        except access_db.NotFound:
            raise web.HTTPNotFound() from None
        if p["resident_id"] != res["resident_id"]:
            raise web.HTTPNotFound()
        await self.box.store.run(access_db.revoke_pass, self.box.store.sync, pid)
        done = f"通行证 #{p.get('ref')} 已作废"
        raise web.HTTPSeeOther(said("/r/me", "ok", done))
