"""The intercom service: calls from a door to a flat, the phones that ring, open / later.

A call is dialled by a door screen (authenticated with the screen's device key), a call button
(a discrete input on the door's Modbus relay board, polled here) or an intercom panel (staff or
device token). It rings every phone page of the flat that is listening (WebSocket on the LAN,
long-poll through the cloud relay) and the configured notifiers (SMS), for ``ring_s``; then it is
``missed``. A resident of the flat answers, sees the door picture (JPEG snapshots, only while the
call lasts, only to that flat), and opens with one tap (``AccessService.remote_open``: the same
path and rights as every remote open, logged with who) or issues a one-time pass shown on the door
screen. Every state change is one ``intercom_call`` record (row, MQTT event, outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import re
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2

from drivers.cameras.base import CameraDriver
from edge.access import ACCESS
from edge.access.routes import PassIn, Refused, issue_pass
from edge.core.box import Box
from edge.core.config import ConfigError
from edge.core.service import Service, cancel
from edge.core.standard import IntercomCall, new_id
from edge.devices import DEVICES
from edge.intercom import store as db
from edge.intercom.config import FLAT, IntercomConfig
from edge.intercom.notify import Notifier, notifiers
from edge.intercom.push import WebPush
from edge.intercom.rtc import Rtc
from edge.portal.access_pages import REASONS  # the access policy's refusals, as residents read
from edge.screens import SCREENS
from edge.screens.service import Panel, ScreenRefused

log = logging.getLogger(__name__)
ACTIVE = ("ringing", "answered")
KEEP_ENDED_S = 60.0  # an ended call stays in the phones' and screen's view this long
MISSED_KEEP = timedelta(hours=24)  # the phones list the flat's missed calls this long
MISSED_MAX = 10  # at most this many per flat
TURN_GRACE_S = 30  # TURN credentials outlive the call's longest end by this much
PANEL_HTML = Path(__file__).with_name("static") / "door-panel.html"
DOOR_DOWN = {"door_offline": "门禁设备暂时连不上，请稍后再试",
             "relay_not_switched": "门禁继电器没有动作，请稍后再试或联系物业"}


class CallRefused(Exception):
    """A call or an action refused: HTTP status and a message naming the problem; ``zh``:
    the same for a resident's phone, in words a resident understands."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 zh: str = "") -> None:
        super().__init__(message)
        self.status, self.field, self.zh = status, field, zh


@dataclass
class Live:
    """A call the box still tracks (ringing, answered, or ended less than a minute ago)."""

    rec: IntercomCall
    t0: float  # monotonic at dial
    ended_t: float | None = None
    timer: asyncio.Task | None = None
    shown_pass: dict[str, Any] | None = None  # PIN + QR for the door screen
    said: str = ""  # what the door screen should show/say now
    # one phone action at a time (probe 11: a double tap on 开门 opened the door twice)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class Rate:
    """Sliding-window counters (prank dialling)."""

    window_s: float
    limit: int
    hits: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def take(self, key: str) -> bool:
        q = self.hits[key]
        now = time.monotonic()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        return True


class IntercomService(Service):
    name = "intercom"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg: IntercomConfig = box.config.section(IntercomConfig)
        self.doors_cfg = {d.id: d for d in box.config.doors}
        self.screens_cfg = {s.id: s for s in box.config.screens}
        for a in self.cfg.audio:
            if a.door not in self.doors_cfg:
                raise ConfigError(f"intercom.audio: door {a.door!r} is not a [[doors]] id")
        if self.cfg.enabled:
            # a door's screen shows the call panel on its player page, beside what plays
            panel = Panel(PANEL_HTML.read_text(encoding="utf-8"), ("/intercom/static/door.js",),
                          ("/intercom/static/door.css",))  # fmt: skip
            for s in box.config.screens:
                if s.door is not None:
                    box.get(SCREENS).add_panel(s.id, panel)
        self.calls: dict[str, Live] = {}
        self.version = 0  # bumped on every change; pages wait for a newer one
        self.closing = False  # the box is stopping: waiting pages return at once
        self.sockets: set[Any] = set()  # phones' open WebSockets, closed at shutdown
        self._changed = asyncio.Condition()
        self._source_rate = Rate(60.0, self.cfg.source_calls_per_min)
        self._flat_rate = Rate(600.0, self.cfg.flat_calls_per_10min)
        self.phones: dict[str, dict[str, float]] = defaultdict(dict)  # flat -> phone -> seen
        self.notifiers: list[Notifier] = notifiers(self.cfg)
        self.push: WebPush | None = None
        if self.cfg.enabled and self.cfg.push:
            self.push = WebPush(box.store, box.config.box.data_dir / "intercom-vapid.pem",
                                self.cfg.vapid_subject, self.cfg.push_allow_private)
            self.notifiers.append(self.push)
        self._tasks: list[asyncio.Task] = []
        self._side: set[asyncio.Task] = set()
        self.rtc: Any = None
        if self.cfg.enabled and self.cfg.rtc:
            # aiortc itself loads when a call rings (edge/intercom/media.py): RSS at start
            if importlib.util.find_spec("aiortc") is None:  # the pages use snapshots
                log.warning("intercom: no WebRTC (aiortc is not installed); phones get picture"
                            " snapshots")
            else:
                self.rtc = Rtc(self.cfg)
        self._jpeg: dict[str, tuple[int, bytes]] = {}  # camera -> (frame seq, JPEG)
        # flat -> its recent missed calls (door, time), for the phones once the live call is
        # forgotten (probe 11: after a minute the page said "暂无来电" as if nobody had rung)
        self.missed: dict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=MISSED_MAX))
        self.timings: dict[str, list[float]] = defaultdict(list)  # bench: dial->ring etc.

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self._end_cut_calls()
        since = (datetime.now(UTC) - MISSED_KEEP).isoformat()
        for row in await self.box.store.run(db.missed_since, self.box.store.sync, since):
            self._note_missed(row["id"], row["door_id"], row["flat"], row["ts"])
        if not self.cfg.enabled:
            return
        for b in self.cfg.buttons:
            self._tasks.append(
                asyncio.create_task(self._poll_button(b), name=f"intercom-button-{b.door}")
            )

    async def _end_cut_calls(self) -> None:
        """Calls live in memory: ones the box was ringing or carrying when it stopped (or
        crashed) are over now. End their records (ringing -> missed), so the store, MQTT and
        the cloud do not keep them ringing for ever (probe 11)."""
        now = datetime.now(UTC)
        for rec in await self.box.store.run(db.open_calls, self.box.store.sync):
            state = "missed" if rec.state == "ringing" else rec.state
            await self.box.store.run(db.save_call, self.box.store.sync,
                                     rec.model_copy(update={"state": state, "ended_at": now}))
            log.info("intercom: call %s (%s) was cut by a restart; ended as %s", rec.id,
                     rec.flat, state)

    async def stop(self) -> None:
        if self.rtc is not None:
            await self.rtc.close_all()
        await cancel(*self._tasks, *self._side, *(c.timer for c in self.calls.values()))
        self._tasks.clear()

    def status(self) -> dict[str, Any]:
        states: dict[str, int] = defaultdict(int)
        for c in self.calls.values():
            states[c.rec.state] += 1
        return {"enabled": self.cfg.enabled, "tracked_calls": dict(states),
                "buttons": len(self.cfg.buttons), "notifiers": [n.name for n in self.notifiers]}

    # --- change notification --------------------------------------------------------------

    async def _bump(self) -> None:
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def wait_change(self, after: int, timeout_s: float) -> int:
        """Return once the version is newer than ``after`` or after ``timeout_s``."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > after or self.closing),
                    timeout_s,
                )
        return self.version

    async def shutdown(self) -> None:
        """The HTTP server is stopping: end the long-polls and close the phones' sockets
        (it would otherwise wait for them)."""
        self.closing = True
        async with self._changed:
            self._changed.notify_all()
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1001, message=b"box stopping"), 0.5)

    async def _save(self, live: Live, **changes: Any) -> IntercomCall:
        was_on = live.rec.state in ACTIVE and live.rec.ended_at is None
        live.rec = live.rec.model_copy(update=changes)
        IntercomCall.model_validate(live.rec.model_dump())  # a bad state never reaches the row
        await self.box.store.run(db.save_call, self.box.store.sync, live.rec)
        if live.rec.state == "missed":
            r = live.rec
            self._note_missed(r.id, r.door_id, r.flat, r.ts.astimezone(UTC).isoformat())
        if live.rec.state not in ACTIVE or live.rec.ended_at is not None:
            live.ended_t = live.ended_t or time.monotonic()
            if self.rtc is not None:
                self._spawn(self.rtc.end(live.rec.id))
            if was_on and self.push is not None:  # the ringing notification is replaced
                self._spawn(self._push_ended(self.push, live.rec))
        await self._bump()
        return live.rec

    def _note_missed(self, call_id: str, door_id: str, flat: str, ts: str) -> None:
        kept = self.missed[flat]
        if all(m["id"] != call_id for m in kept):
            cfg = self.doors_cfg.get(door_id)
            door = (cfg.name if cfg else None) or door_id
            kept.append({"id": call_id, "door": door, "at": ts})

    def _forget_old(self) -> None:
        now = time.monotonic()
        for cid, c in list(self.calls.items()):
            if c.ended_t is not None and now - c.ended_t > KEEP_ENDED_S:
                del self.calls[cid]

    # --- dialling -------------------------------------------------------------------------

    def phones_of(self, flat: str) -> int:
        now = time.monotonic()
        seen = self.phones.get(flat, {})
        return sum(1 for t in seen.values() if t == float("inf") or now - t < 40)

    async def dial(
        self, door_id: str, flat: str, source: str, *, screen_id: str | None = None,
        origin: str = "",
    ) -> IntercomCall:
        """Start a call; CallRefused (4xx) names what is wrong."""
        if not self.cfg.enabled:
            raise CallRefused(404, "intercom: disabled on this box")
        if door_id not in self.doors_cfg:
            raise CallRefused(404, f"door_id: unknown door {door_id!r}", "door_id")
        flat = flat.strip()
        if not re.match(FLAT, flat):
            raise CallRefused(400, "flat: dial 楼号-单元-房号, e.g. 1-2-301", "flat")
        if source != "button":  # a button's flat is wired by staff (a concierge, a villa)
            self._served(door_id, flat)
        known = await self.box.store.run(db.flats, self.box.store.sync, None)
        if flat not in known:
            raise CallRefused(404, f"flat: no resident of {flat} can be called", "flat")
        self._forget_old()
        for c in self.calls.values():
            if c.rec.door_id == door_id and c.rec.state == "ringing":
                raise CallRefused(409, "door_id: a call from this door is still ringing;"
                                       " hang up first", "door_id")
        if not self._source_rate.take(origin or f"{source}:{door_id}"):
            raise CallRefused(429, f"too many calls from this {source}; wait a minute")
        if not self._flat_rate.take(flat):
            raise CallRefused(429, f"flat: {flat} was called too often; try again later", "flat")
        rec = IntercomCall(id=new_id("ic"), door_id=door_id, flat=flat, source=source,
                           screen_id=screen_id, phones=self.phones_of(flat))
        live = Live(rec, time.monotonic(), said="ringing")
        self.calls[rec.id] = live
        await self._save(live)
        live.timer = asyncio.create_task(self._ring_timer(live), name=f"ring-{rec.id}")
        for n in self.notifiers:
            self._spawn(self._notify(n, rec))
        if self.rtc is not None:
            self._spawn(self.rtc.load())
        log.info("intercom: %s calls %s (%s, %d phones listening)", door_id, flat, source,
                 rec.phones)
        return rec

    def serves(self, door_id: str, flat: str) -> bool:
        """Whom a visitor at this door may ring: a building's door ([[doors]] building) only
        that building's flats (what its directory lists); a door of no building (the
        community gate) every flat. Checked before the flat is looked up, so a refusal says
        nothing about whether the flat exists."""
        building = self.doors_cfg[door_id].building
        return building is None or flat.split("-", 1)[0] == building

    def _served(self, door_id: str, flat: str) -> None:
        if not self.serves(door_id, flat):
            b = self.doors_cfg[door_id].building
            raise CallRefused(
                403, f"flat: {flat} is not served by this door (building {b}); call from"
                " its own building's door or the community gate", "flat",
                f"本门只能呼叫{b}号楼的住户，请到{flat.split('-', 1)[0]}号楼门口或小区大门呼叫")

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._side.add(t)
        t.add_done_callback(self._side.discard)

    async def _notify(self, n: Notifier, rec: IntercomCall) -> None:
        try:
            await n.ring(rec, self.doors_cfg[rec.door_id].name or rec.door_id)
        except Exception as e:  # a gateway down must not stop the call
            log.warning("intercom: notifier %s failed for %s: %s", n.name, rec.id, e)

    async def _push_ended(self, push: WebPush, rec: IntercomCall) -> None:
        try:
            await push.ended(rec, self.doors_cfg[rec.door_id].name or rec.door_id)
        except Exception as e:  # a push service down must not matter to the call
            log.warning("intercom: end of call %s not pushed: %s", rec.id, e)

    async def _ring_timer(self, live: Live) -> None:
        await asyncio.sleep(self.cfg.ring_s)
        if live.rec.state == "ringing":
            live.said = "missed"
            await self._save(live, state="missed", ended_at=datetime.now(UTC))
            return
        await asyncio.sleep(max(0.0, self.cfg.talk_s - self.cfg.ring_s))
        if live.rec.ended_at is None:
            live.said = "ended"  # the door screen says 通话已结束 (it kept saying 已接通)
            await self._save(live, ended_at=datetime.now(UTC))

    async def hang_up(self, call_id: str, door_id: str) -> IntercomCall:
        """The visitor gives up (door screen): a ringing call ends as missed."""
        live = self._call(call_id)
        if live.rec.door_id != door_id:
            raise CallRefused(404, f"call_id: no call {call_id!r} at this door", "call_id")
        if live.rec.ended_at is None and live.rec.state in ACTIVE:
            live.said = "ended"
            state = "missed" if live.rec.state == "ringing" else live.rec.state
            await self._save(live, state=state, ended_at=datetime.now(UTC))
        return live.rec

    # --- the phones -----------------------------------------------------------------------

    def _call(self, call_id: str) -> Live:
        live = self.calls.get(call_id)
        if live is None:
            raise CallRefused(404, f"call_id: no current call {call_id!r}", "call_id")
        return live

    def _mine(self, call_id: str, flat: str | None) -> Live:
        """The call if it rings the resident's flat; a call of another flat is 'not found'
        (a neighbour learns nothing, not even that it exists)."""
        live = self.calls.get(call_id)
        if live is None or flat is None or live.rec.flat != flat:
            raise CallRefused(404, f"call_id: no current call {call_id!r} for your flat",
                              "call_id", "这个来电已结束")
        return live

    async def flat_of(self, resident_id: str) -> str | None:
        return await self.box.store.run(db.resident_flat, self.box.store.sync, resident_id)

    def phone_view(self, flat: str | None, resident_id: str) -> dict[str, Any]:
        self._forget_old()
        now = time.monotonic()
        calls = []
        for c in self.calls.values():
            if flat is None or c.rec.flat != flat:
                continue
            r = c.rec
            calls.append({
                "id": r.id, "door_id": r.door_id,
                "door": self.doors_cfg[r.door_id].name or r.door_id,
                "flat": r.flat, "state": r.state, "ended": r.ended_at is not None,
                "ring_left_s": round(max(0.0, self.cfg.ring_s - (now - c.t0)), 1)
                if r.state == "ringing" else 0,
                "answered_by_me": r.answered_by == resident_id,
                "answered_by_other": r.answered_by not in (None, resident_id),
                "pass_pin": c.shown_pass["pin"] if c.shown_pass and r.answered_by == resident_id
                else None,
                "has_camera": bool(self.doors_cfg[r.door_id].camera),
            })
        since = (datetime.now(UTC) - MISSED_KEEP).isoformat()
        missed = [m for m in self.missed.get(flat, ()) if m["at"] >= since] if flat else []
        return {"version": self.version, "flat": flat, "calls": calls,
                "missed": missed[::-1]}  # newest first

    def listening(self, flat: str, phone: str, open_socket: bool | None) -> None:
        """A phone page of the flat is listening (a socket: until it closes; a poll: 40 s)."""
        if open_socket is False:
            self.phones[flat].pop(phone, None)
        else:
            self.phones[flat][phone] = float("inf") if open_socket else time.monotonic()

    async def _for_phone(self, call_id: str, resident_id: str) -> Live:
        return self._mine(call_id, await self.flat_of(resident_id))

    async def answer(self, call_id: str, resident_id: str) -> IntercomCall:
        live = await self._for_phone(call_id, resident_id)
        async with live.lock:
            return await self._answer(live, resident_id)

    async def _answer(self, live: Live, resident_id: str) -> IntercomCall:
        """Answer if still ringing; refuse if another phone has the call or it ended.
        Callers hold the call's lock."""
        r = live.rec
        if r.ended_at is not None or r.state not in ACTIVE:
            raise CallRefused(409, f"call_id: the call has ended ({r.state})", "call_id",
                              "来电已结束")
        if r.state == "answered":
            if r.answered_by == resident_id:
                return r
            raise CallRefused(409, "call_id: answered on another phone of your flat", "call_id",
                              "家人已在另一部手机接听")
        live.said = "answered"
        ms = int((time.monotonic() - live.t0) * 1000)
        return await self._save(live, state="answered", answered_by=resident_id, answer_ms=ms)

    async def open_door(self, call_id: str, resident_id: str) -> IntercomCall:
        """One tap: the door opens through the access engine (the resident's own rights)."""
        live = await self._for_phone(call_id, resident_id)
        async with live.lock:  # a second tap waits, then finds the call ended
            return await self._open_door(live, resident_id)

    async def _open_door(self, live: Live, resident_id: str) -> IntercomCall:
        await self._answer(live, resident_id)
        out = await self.box.get(ACCESS).remote_open(live.rec.door_id, resident_id, "resident")
        if not out.granted:
            raise CallRefused(503 if out.reason in DOOR_DOWN else 403,
                              f"door: did not open ({out.reason})", "door",
                              "门没有打开：" + REASONS.get(out.reason, DOOR_DOWN.get(
                                  out.reason, "请稍后再试或联系物业")))
        live.said = "opened"
        return await self._save(live, state="opened", opened_by=resident_id,
                                access_event_id=out.event_id, ended_at=datetime.now(UTC))

    async def let_in_later(self, call_id: str, resident_id: str) -> IntercomCall:
        """A one-time pass for this door, shown on the door screen as QR + PIN."""
        live = await self._for_phone(call_id, resident_id)
        async with live.lock:
            return await self._let_in_later(live, resident_id)

    async def _let_in_later(self, live: Live, resident_id: str) -> IntercomCall:
        await self._answer(live, resident_id)
        access = self.box.get(ACCESS)
        body = PassIn(visitor=f"对讲访客 {live.rec.flat}", doors=[live.rec.door_id],
                      valid_to=datetime.now(UTC) + timedelta(hours=self.cfg.pass_hours), uses=1)
        try:
            got = await issue_pass(access, self.box, resident_id, body, f"intercom:{resident_id}")
        except Refused as e:
            why = str(e).rsplit("(", 1)[-1].rstrip(")") if e.status == 403 else ""
            raise CallRefused(e.status, str(e), e.field, "临时通行码没有发出："
                              + REASONS.get(why, "请稍后再试或联系物业")) from e
        live.shown_pass = {"pin": got["pin"], "qr_png_base64": got["qr_png_base64"],
                           "valid_to": got["valid_to"]}
        live.said = "pass"
        return await self._save(live, pass_id=got["id"], ended_at=datetime.now(UTC))

    async def decline(self, call_id: str, resident_id: str) -> IntercomCall:
        live = await self._for_phone(call_id, resident_id)
        async with live.lock:
            return await self._decline(live, resident_id)

    async def _decline(self, live: Live, resident_id: str) -> IntercomCall:
        if live.rec.ended_at is not None:
            return live.rec
        if live.rec.answered_by not in (None, resident_id):
            raise CallRefused(409, "call_id: answered on another phone of your flat", "call_id",
                              "家人已在另一部手机接听")
        live.said = "declined"
        return await self._save(live, state="declined", answered_by=resident_id,
                                ended_at=datetime.now(UTC))

    async def snapshot(self, call_id: str, resident_id: str) -> bytes:
        """The door camera's newest frame as JPEG, for a resident of the called flat while
        the call lasts (never before it, never after)."""
        flat = await self.flat_of(resident_id)
        live = self._mine(call_id, flat)
        if live.rec.ended_at is not None:
            raise CallRefused(410, "call_id: the call has ended; no picture", "call_id")
        cam_id = self.doors_cfg[live.rec.door_id].camera
        if not cam_id:
            raise CallRefused(404, f"door: {live.rec.door_id} has no camera", "door")
        cam = self.box.get(DEVICES).get("camera", cam_id)
        assert isinstance(cam, CameraDriver)
        frame = cam.latest() or await cam.next_frame(-1, 2.0)
        if frame is None:
            raise CallRefused(503, f"camera: {cam_id} has no picture right now", "camera")
        cached = self._jpeg.get(cam_id)
        if cached and cached[0] == frame.seq:  # several phones share one encode per frame
            return cached[1]
        jpeg = await asyncio.to_thread(self._encode, frame.image)
        self._jpeg[cam_id] = (frame.seq, jpeg)
        return jpeg

    async def _media_call(self, call_id: str, resident_id: str) -> Live:
        """The live call this resident answered: the only one that gets media (and TURN)."""
        if self.rtc is None:
            raise CallRefused(404, "rtc: WebRTC is off on this box; use the snapshots")
        flat = await self.flat_of(resident_id)
        live = self._mine(call_id, flat)
        if live.rec.ended_at is not None or live.rec.answered_by != resident_id:
            raise CallRefused(409, "call_id: answer the call first (or it has ended)",
                              "call_id", "通话已结束或未由本机接听，无法显示视频")
        return live

    def _turn_ttl_s(self, live: Live) -> int:
        """TURN credentials last as long as the call may (talk_s after the dial), plus a
        little for the last refresh: short-lived and tied to the call."""
        return max(0, int(self.cfg.talk_s - (time.monotonic() - live.t0))) + TURN_GRACE_S

    async def rtc_config(self, call_id: str, resident_id: str) -> dict[str, Any]:
        """ICE servers with TURN credentials, only for the phone that answered a live call."""
        live = await self._media_call(call_id, resident_id)
        return dict(self.rtc.client_config(resident_id, self._turn_ttl_s(live)))

    async def rtc_offer(self, call_id: str, resident_id: str, offer: dict[str, str]
                        ) -> dict[str, str]:
        """Live video and audio for the phone that answered, while the call lasts."""
        live = await self._media_call(call_id, resident_id)
        cam_id = self.doors_cfg[live.rec.door_id].camera
        cam = self.box.get(DEVICES).get("camera", cam_id) if cam_id else None
        await self.rtc.end(call_id)  # one live connection per call: a new offer replaces it
        try:
            return await self.rtc.answer(call_id, resident_id, offer, cam,
                                         self.cfg.audio_of(live.rec.door_id),
                                         self._turn_ttl_s(live))
        except Exception as e:  # aiortc refuses a malformed or unusable offer in many ways
            await self.rtc.end(call_id)
            log.info("intercom: WebRTC offer for %s refused: %r", call_id, e)
            raise CallRefused(400, f"sdp: the offer cannot be used ({type(e).__name__})",
                              "sdp") from e

    def _encode(self, image: Any) -> bytes:
        h, w = image.shape[:2]
        if w > self.cfg.snapshot_width:
            image = cv2.resize(image, (self.cfg.snapshot_width,
                                       int(h * self.cfg.snapshot_width / w)),
                               interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY,
                                               self.cfg.snapshot_quality])
        if not ok:
            raise CallRefused(500, "camera: could not encode the picture")
        return buf.tobytes()

    # --- the door screen ------------------------------------------------------------------

    def screen_door(self, screen_id: str, key: str | None) -> str:
        """The door of a door screen presenting its device key; CallRefused otherwise."""
        try:
            return self.box.get(SCREENS).door_of(screen_id, key)
        except ScreenRefused as e:
            raise CallRefused(e.status, str(e), e.field) from None

    def screen_view(self, door_id: str, call_id: str) -> dict[str, Any]:
        live = self.calls.get(call_id)
        if live is None or live.rec.door_id != door_id:
            raise CallRefused(404, f"call_id: no current call {call_id!r} at this door",
                              "call_id")
        r = live.rec
        return {
            "version": self.version, "id": r.id, "flat": r.flat, "state": r.state,
            "ended": r.ended_at is not None, "said": live.said,
            "ring_left_s": round(max(0.0, self.cfg.ring_s - (time.monotonic() - live.t0)), 1)
            if r.state == "ringing" else 0,
            "pass": live.shown_pass,
        }

    # --- call buttons ---------------------------------------------------------------------

    async def _poll_button(self, b: Any) -> None:
        """Poll a discrete input of the door's relay board; a press (edge) starts a call."""
        from drivers.doors.modbus import ModbusDoor  # pymodbus: only where buttons are wired

        was = False
        while True:
            await asyncio.sleep(self.cfg.button_poll_s)
            try:
                drv = self.box.get(DEVICES).get("door", b.door)
                if not isinstance(drv, ModbusDoor):
                    raise TypeError(type(drv).__name__)
                value = await drv.read_input(b.input)
            except (TypeError, KeyError):
                log.error("intercom: button on door %s: not a Modbus door; giving up", b.door)
                return
            except (OSError, TimeoutError, ConnectionError) as e:
                log.debug("intercom: button on door %s unreadable: %s", b.door, e)
                continue
            pressed = value == b.pressed_is
            if pressed and not was:
                try:
                    await self.dial(b.door, b.flat, "button", origin=f"button:{b.door}:{b.input}")
                except CallRefused as e:
                    log.info("intercom: button on door %s: %s", b.door, e)
            was = pressed
