"""The second factor at face doors (edge/access/second_factor.py), as people see it.

- ``/r/pin`` "我的开门密码": the resident sets, changes or removes their own door PIN (easy
  PINs refused in Chinese; removing asks once first).
- A prompt on every /r/ page of a logged-in resident while a door waits for them: "您正在X前？"
  with a big "点此确认开门" and "不是我" (the wait ends, the door stays shut, the refusal is on
  the record). The pages learn of it by long-polling ``/r/api/factor`` (answered at once
  through the cloud relay, which carries requests, not held connections; the page then asks
  again every few seconds). The intercom's phone socket does not fit: it carries a flat's calls,
  only on /r/intercom, and is off on boxes without the intercom.
- The door's screen (``[[screens]] door = ...``): a keypad over the player page while its door
  waits ("请输入开门密码或在手机上确认"), sending the PIN with the screen's device key like the
  intercom's panel; cleared when the door opens, the wait times out or is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from edge.access import ACCESS
from edge.access import second_factor as factors
from edge.access import store as access_db
from edge.core.http import form_post, json_error, relayed
from edge.core.store.core import Store
from edge.portal.access_pages import REASONS
from edge.portal.look import esc, page, query_msg, said, when
from edge.screens import SCREENS
from edge.screens.service import Panel, ScreenRefused

STATIC = Path(__file__).with_name("static")
WAIT_S = 15.0  # a long-poll's longest wait
RELAY_POLL_S = 4.0  # through the cloud: answered at once, the page asks again after this
SHOW_END_S = 8.0  # how long the door screen may still show how the wait ended
# How a door's wait ended, as the door screen says it.
ENDED = {
    "opened": "门已打开，请进",
    "timeout": "已超时，请重新刷脸",
    "refused": "住户已拒绝，门不会打开",
    "locked": "密码错误次数太多，本次不能开门",
    "denied": "门没有打开，请联系物业",
}
# A PIN refused at the door, as the door screen says it (the access event's reason).
PIN_REFUSED = {
    "wrong_pin": "密码不对，请重新输入",
    "no_resident_pin": "您还没有设置开门密码，请在手机上确认",
    "keypad_locked": "输错次数太多，请稍后再试",
    "second_factor_locked": "密码错误次数太多，本次不能开门",
    "door_offline": "门禁设备暂时连不上，请稍后再试",
    "relay_not_switched": "门禁继电器没有动作，请稍后再试或联系物业",
}
WEAK = {  # edge/access/second_factor.py weak_pin()
    "pin: all digits the same": "密码太简单：不能全是同一个数字，请换一个",
    "pin: too easy to guess": "密码太简单（如 123456、连续的数字），别人容易猜到，请换一个",
}


class ScreenPin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(pattern=r"^\d{4,10}$")


def pin_set_at(store: Store, resident_id: str) -> str | None:
    """When the resident's PIN was set (None: no PIN)."""
    with store.reading():
        row = store.db.execute(
            "SELECT set_at FROM resident_pins WHERE resident_id = ?", (resident_id,)
        ).fetchone()
    return None if row is None else str(row[0])


class FactorPages:
    def __init__(self, pages: Any) -> None:
        self.pages = pages
        self.box = pages.svc.box
        self.version = 0
        self.closing = False
        self._changed = asyncio.Condition()
        self.ended: dict[str, tuple[str, float]] = {}  # door -> (how its wait ended, when)
        self.screen_door = {s.id: s.door for s in self.box.config.screens if s.door}

    @property
    def access(self) -> Any:
        return self.box.get(ACCESS, None)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/r/pin", self.pin_page)
        r.add_post("/r/pin", self.pin_set)
        r.add_post("/r/pin/remove", self.pin_remove)
        r.add_get("/r/api/factor", self.phone_poll)
        r.add_post("/r/api/factor/{door}/confirm", self.phone_answer("confirm"))
        r.add_post("/r/api/factor/{door}/refuse", self.phone_answer("refuse"))
        r.add_get("/screen/{screen_id}/factor", self.screen_poll)
        r.add_post("/screen/{screen_id}/factor/pin", self.screen_pin)
        app.on_shutdown.append(self._shutdown)
        access = self.access
        if access is None:
            return
        access.factors.on_change(self._changed_at)
        screens = self.box.get(SCREENS, None)
        if screens is not None and self.screen_door:
            panel = Panel((STATIC / "door-factor.html").read_text(encoding="utf-8"),
                          ("/r/static/door-factor.js",), ("/r/static/door-factor.css",),
                          zone=False)  # fmt: skip
            for sid in self.screen_door:
                screens.add_panel(sid, panel)

    # --- change notification ------------------------------------------------------------

    async def _changed_at(self, door_id: str, state: str) -> None:
        if state != "waiting":
            self.ended[door_id] = (state, time.monotonic())
        else:
            self.ended.pop(door_id, None)
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def _wait(self) -> None:
        """Until something changes, the box stops, or WAIT_S."""
        seen = self.version
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(
                    lambda: self.version > seen or self.closing), WAIT_S)

    async def _shutdown(self, _app: web.Application) -> None:
        self.closing = True  # waiting requests return at once: the server can stop
        async with self._changed:
            self._changed.notify_all()

    def _door_name(self, door_id: str) -> str:
        dcfg = self.access.doors_cfg.get(door_id) if self.access is not None else None
        return (dcfg.name if dcfg is not None else None) or door_id

    # --- the resident's PIN page ----------------------------------------------------------

    async def pin_page(self, request: web.Request) -> web.Response:
        res = await self.pages.who(request)
        if self.access is None:
            raise web.HTTPNotFound()
        store = self.box.store
        set_at = await store.run(pin_set_at, store.sync, res["resident_id"])
        if request.query.get("remove") and set_at:
            body = (
                "<section class='card confirm'><p>确定要删除开门密码吗？</p>"
                "<p class=hint>删除后，需要密码的门只能在手机上确认开门。</p>"
                "<form method=post action=/r/pin/remove><div class=actions>"
                "<a class='btn light' href=/r/pin>取消</a>"
                "<button id=pin-remove-confirm>确认删除</button></div></form></section>"
            )
            return page(request, "我的开门密码", body, nav="/r/me")
        state = (f"<p class=pinstate id=pin-state>已设置（{esc(when(request, set_at))}）</p>"
                 if set_at else "<p class=pinstate id=pin-state>还没有设置</p>")  # fmt: skip
        body = (
            f"{query_msg(request)}<section class=card><h2>开门密码</h2>{state}"
            "<p class=hint>有的门刷脸后，还要输入您自己的开门密码（或在手机上确认）才会开。"
            "密码只存加密后的结果，物业也看不到。</p></section>"
            "<form method=post action=/r/pin class=card id=pin-form>"
            f"<h2>{'修改密码' if set_at else '设置密码'}</h2>"
            "<label>新密码（4 到 10 位数字）<input name=pin type=password inputmode=numeric"
            " autocomplete=new-password pattern='[0-9]{4,10}' maxlength=10 required></label>"
            "<label>再输一次<input name=pin2 type=password inputmode=numeric"
            " autocomplete=new-password pattern='[0-9]{4,10}' maxlength=10 required></label>"
            "<p class=hint>不要用 123456、888888 这类容易猜的数字，也不要用生日。</p>"
            f"<button id=pin-save>{'保存新密码' if set_at else '保存密码'}</button></form>"
        )
        if set_at:
            body += ("<p><a class='btn light' id=pin-remove href='/r/pin?remove=1'>"
                     "删除开门密码</a></p>")
        body += "<p><a href=/r/me>← 返回我的</a></p>"
        return page(request, "我的开门密码", body, nav="/r/me")

    async def pin_set(self, request: web.Request) -> web.StreamResponse:
        res = await self.pages.who(request)
        if self.access is None:
            raise web.HTTPNotFound()
        form = await form_post(request)
        pin, pin2 = str(form.get("pin", "")).strip(), str(form.get("pin2", "")).strip()
        if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 10):
            raise web.HTTPSeeOther(said("/r/pin", "err", "密码要 4 到 10 位数字"))
        if pin != pin2:
            raise web.HTTPSeeOther(said("/r/pin", "err", "两次输入的密码不一样，请重新输入"))
        weak = factors.weak_pin(pin)
        if weak is not None:
            raise web.HTTPSeeOther(said("/r/pin", "err", WEAK.get(weak, '密码太简单，请换一个')))
        rid = res["resident_id"]
        store = self.box.store
        try:
            await store.run(factors.set_pin, store.sync, rid,
                            factors.resident_pin_hash(self.access.key, rid, pin), rid)
        except access_db.NotFound:
            raise web.HTTPSeeOther(said("/r/pin", "err", REASONS["unknown_resident"])) from None
        raise web.HTTPSeeOther(said("/r/pin", "ok", "开门密码已保存"))

    async def pin_remove(self, request: web.Request) -> web.StreamResponse:
        res = await self.pages.who(request)
        if self.access is None:
            raise web.HTTPNotFound()
        store = self.box.store
        try:
            await store.run(factors.clear_pin, store.sync, res["resident_id"])
        except access_db.NotFound:
            raise web.HTTPSeeOther(said("/r/pin", "err", REASONS["unknown_resident"])) from None
        raise web.HTTPSeeOther(said("/r/pin", "ok", "开门密码已删除"))

    # --- the phone's prompt ------------------------------------------------------------------

    async def _resident(self, request: web.Request) -> dict[str, Any]:
        res = await self.pages.svc.resident(request)
        if res is None:
            raise web.HTTPUnauthorized(text=json.dumps({"error": "请先登录", "field": "session"},
                                                       ensure_ascii=False),
                                       content_type="application/json")  # fmt: skip
        return res

    def _phone_view(self, resident_id: str) -> list[dict[str, Any]]:
        if self.access is None:
            return []
        return [{"id": c["id"], "door_id": c["door_id"], "door": self._door_name(c["door_id"]),
                 "expires_in_s": c["expires_in_s"]}
                for c in self.access.factors.for_resident(resident_id)]  # fmt: skip

    async def phone_poll(self, request: web.Request) -> web.Response:
        """What waits for this resident; held until something changes when ``after`` is the
        version the page has already seen."""
        res = await self._resident(request)
        if request.query.get("after") == str(self.version) and not relayed(request):
            await self._wait()  # through the cloud: answered at once, the page asks again
        return web.json_response(
            {"version": self.version, "waiting": self._phone_view(res["resident_id"]),
             "poll_s": RELAY_POLL_S if relayed(request) else 0},
            headers={"Cache-Control": "no-store"}, dumps=_dumps)  # fmt: skip

    def phone_answer(self, action: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            res = await self._resident(request)
            door = request.match_info["door"]
            if self.access is None or door not in self.access.doors_cfg:
                return json_error(404, "door: no such door", field="door",
                                  error_zh="没有这扇门")  # fmt: skip
            fn = self.access.factors.confirm if action == "confirm" else \
                self.access.factors.refuse
            # The prompt the page showed (?challenge=): an answer to a wait that has ended
            # never opens the door for a newer one.
            out = await fn(door, res["resident_id"], request.query.get("challenge"))
            name = self._door_name(door)
            if out is None:
                return json_error(409, "nothing is waiting for you at this door", field="door",
                                  error_zh=f"{name}已不在等您确认（可能已超时），请重新刷脸")
            if action == "refuse":
                return web.json_response({"done": "refused", "text": f"已拒绝，{name}不会打开。"
                                          "如果不是您本人在门口，请联系物业"})  # fmt: skip
            if out.granted:
                return web.json_response({"done": "opened", "text": f"门已打开（{name}）"})
            why = REASONS.get(out.reason) or PIN_REFUSED.get(out.reason, "请稍后再试或联系物业")
            return json_error(403, f"door: did not open ({out.reason})", field="door",
                              error_zh=f"门没有打开：{why}")

        return handle

    # --- the door screen --------------------------------------------------------------------

    def _screen(self, request: web.Request) -> str:
        """The door of the screen presenting its device key; an HTTP error otherwise."""
        key = request.headers.get("X-Screen-Key") or request.query.get("key")
        try:
            door = self.box.get(SCREENS).door_of(request.match_info["screen_id"], key)
        except ScreenRefused as e:
            cls = {401: web.HTTPUnauthorized, 404: web.HTTPNotFound}.get(e.status,
                                                                          web.HTTPConflict)
            raise cls(text=json.dumps({"error": str(e), "field": e.field}),
                      content_type="application/json") from None
        if self.access is None or door not in self.access.doors_cfg:
            raise web.HTTPNotFound(text=json.dumps({"error": f"door: unknown door {door!r}"}),
                                   content_type="application/json")
        return door

    def _screen_view(self, door: str) -> dict[str, Any]:
        ch = self.access.factors.waiting(door)
        view: dict[str, Any] = {"version": self.version, "door": self._door_name(door),
                                "waiting": ch is not None}  # fmt: skip
        if ch is not None:
            view["expires_in_s"] = ch.as_dict()["expires_in_s"]
            view["phone"] = ch.phone  # False: the phone was asked enough lately, PIN only
            view["pin"] = ch.pin  # False: too many wrong PINs lately, phone only
        elif (ended := self.ended.get(door)) and time.monotonic() - ended[1] < SHOW_END_S:
            view["ended"] = ended[0]
            view["text"] = ENDED.get(ended[0], "")
        return view

    async def screen_poll(self, request: web.Request) -> web.Response:
        door = self._screen(request)
        if request.query.get("after") == str(self.version) and not relayed(request):
            await self._wait()
        return web.json_response(self._screen_view(door), headers={"Cache-Control": "no-store"},
                                 dumps=_dumps)

    async def screen_pin(self, request: web.Request) -> web.Response:
        door = self._screen(request)
        body = ScreenPin.model_validate_json(await request.read() or b"{}")
        if self.access.factors.waiting(door) is None:
            # The keypad is for the second factor; a wait that just ended is not a PIN try.
            return json_error(409, "door: nothing is waiting for a PIN at this door",
                              field="door", error_zh="已超时，请重新刷脸")  # fmt: skip
        sid = request.match_info["screen_id"]
        out = await self.access.enter_pin(door, body.pin, f"screen:{sid}")
        if out.granted:
            return web.json_response({"granted": True, "text": ENDED["opened"]})
        text = PIN_REFUSED.get(out.reason) or REASONS.get(out.reason, "门没有打开，请联系物业")
        return json_error(403, f"pin: refused ({out.reason})", field="pin", reason=out.reason,
                          error_zh=text, waiting=self.access.factors.waiting(door) is not None)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)
