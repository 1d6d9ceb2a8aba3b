"""Doors and visitor passes on the resident's "我的" page (/r/me), at home or through the cloud.

The portal session is the same identity the access engine knows (role ``resident``): a
resident opens only the doors their rights allow and issues passes for their own visitors.
Plain forms, no script: it works on a slow phone and through the cloud relay alike.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from pydantic import ValidationError

from edge.access import ACCESS, policy
from edge.access import store as access_db
from edge.access.routes import PassIn, Refused, issue_pass
from edge.core.http import form_post
from edge.portal.pages import esc, page

REASONS = {  # the access policy's deny reasons (edge/access/policy.py), as residents read them
    "unknown_resident": "门禁系统中没有您的登记，请联系物业",
    "not_allowed_here": "您没有这扇门的权限",
    "outside_hours": "当前不在允许的通行时段",
    "blocked": "您的通行已被暂停，请联系物业",
    "resident_suspended": "您的通行已被暂停，请联系物业",
    "resident_moved_out": "您已登记迁出，请联系物业",
}


class AccessPages:
    def __init__(self, pages: Any) -> None:
        self.pages = pages
        self.box = pages.svc.box

    @property
    def access(self) -> Any:
        return self.box.get(ACCESS)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/r/doors/{door}/open", self.open_door)
        r.add_post("/r/passes", self.new_pass)
        r.add_post("/r/passes/{pid}/revoke", self.revoke)

    async def section(self, res: dict[str, Any], away_url: str | None) -> str:
        """The doors, passes and away-link part of /r/me."""
        out: list[str] = []
        if away_url:
            out.append(
                "<h2>在外访问</h2><p>不在小区时，用这个地址打开本页（可收藏）：<br>"
                f"<a href='{esc(away_url)}'>{esc(away_url)}</a></p>"
            )
        access = self.access
        if access is None or not access.doors_cfg:
            return "".join(out)
        # Only the doors this resident may open now (rights, blocks, status; hours aside),
        # none ticked in advance: a pass names the doors its resident chose.
        facts = await self.box.store.run(
            access_db.facts, self.box.store.sync, res["resident_id"], access_db.iso()
        )
        doors = {
            d.id: d for d in access.doors_cfg.values()
            if policy.evaluate(facts, d.id, d.building, None) is None
        }  # fmt: skip
        if doors:
            out.append("<h2>远程开门</h2><ul class=doors>")
            for d in doors.values():
                out.append(
                    f"<li><form method=post action='/r/doors/{quote(d.id)}/open'>"
                    f"<button>打开 {esc(d.name or d.id)}</button></form></li>"
                )
            out.append("</ul>")
        out.append("<h2>访客通行证</h2>")
        mine = await self.box.store.run(
            access_db.list_passes, self.box.store.sync, res["resident_id"], 20
        )
        now = datetime.now(UTC).isoformat()
        live = [p for p in mine if not p["revoked"] and p["valid_to"] > now and p["uses_left"]]
        for p in live:
            out.append(
                f"<p class=pass>{esc(p['visitor'] or '访客')} · 剩余 {p['uses_left']} 次 · "
                f"至 {esc(p['valid_to'][:16].replace('T', ' '))} UTC"
                f"<form method=post action='/r/passes/{quote(p['id'])}/revoke'>"
                "<button>作废</button></form></p>"
            )
        boxes = "".join(
            f"<label><input type=checkbox name=door value='{esc(d.id)}'>"
            f"{esc(d.name or d.id)}</label> "
            for d in doors.values()
        )
        if not doors:
            return "".join(out)  # their passes can still be revoked; no new ones
        out.append(
            "<form method=post action=/r/passes>"
            "<input name=visitor maxlength=100 placeholder=访客姓名>"
            f"<p>{boxes}</p>"
            "<label>有效 <input name=hours type=number min=1 max=720 value=24> 小时</label> "
            "<label>可用 <input name=uses type=number min=1 max=100 value=1> 次</label>"
            "<button>生成通行码</button></form>"
        )
        return "".join(out)

    async def open_door(self, request: web.Request) -> web.StreamResponse:
        res = await self.pages.who(request)
        if self.access is None:
            raise web.HTTPNotFound()
        try:
            out = await self.access.remote_open(
                request.match_info["door"], res["resident_id"], "resident"
            )
        except LookupError:
            raise web.HTTPNotFound() from None
        msg = "门已打开" if out.granted else REASONS.get(out.reason, f"未能开门（{out.reason}）")
        raise web.HTTPSeeOther(f"/r/me?msg={quote(msg)}")

    async def new_pass(self, request: web.Request) -> web.Response:
        res = await self.pages.who(request)
        form = await form_post(request)
        if self.access is None:
            raise web.HTTPNotFound()
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
            text = REASONS.get(why, f"无法生成：{e}")
            raise web.HTTPSeeOther(f"/r/me?msg={quote(text[:200])}") from None
        except (ValueError, ValidationError) as e:
            text = "请至少选择一扇门" if "doors" in str(e) else f"无法生成：{e}"
            raise web.HTTPSeeOther(f"/r/me?msg={quote(text[:200])}") from None
        png = base64.b64decode(got["qr_png_base64"])
        return page(
            "访客通行证",
            (
                f"<h1>给 {esc(got['visitor'] or '访客')} 的通行证</h1>"
                "<p>把下面的二维码或数字密码发给访客，在门口扫码或输入密码即可进门。"
                "本页关闭后不再显示密码。</p>"
                f"<p class=pin>密码 <b>{esc(got['pin'])}</b></p>"
                f"<img alt=通行二维码 width=240 height=240 "
                f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                f"<p>可用 {got['uses_total']} 次，至 "
                f"{esc(got['valid_to'][:16].replace('T', ' '))} UTC</p>"
                "<p><a href=/r/me>← 返回</a></p>"
            ),
            nav="/r/me",
            status=201,
        )

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
        raise web.HTTPSeeOther(f"/r/me?msg={quote('通行证已作废')}")
