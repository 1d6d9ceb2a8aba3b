"""The ``tickets`` service: HTTP API, cloud commands, device-health tickets, overdue alerts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from edge.core.box import Box
from edge.core.commands import CommandError
from edge.core.http import ACTOR, PUBLIC_PREFIXES, ROLE, json_error, query_int, require_staff
from edge.core.service import Service, cancel
from edge.core.standard import Alert, Command, RepairTicket, new_id, now
from edge.core.store import Store
from edge.reports import REPORTS
from edge.reports import store as rdb
from edge.reports.config import ReportsConfig
from edge.reports.gate import reporter
from edge.reports.inputs import InputError, delete_photos, read_submission, save_photos, text_field
from edge.tickets import ops
from edge.tickets import store as db
from edge.tickets.config import TicketsConfig
from edge.tickets.machine import ACTIONS, ACTIVE, TransitionError

log = logging.getLogger(__name__)
URGENCIES = ("immediate", "high", "normal", "low")
# One-tap repair: the kinds of fault the resident page offers (code -> title).
FAULTS = {
    "light": "照明故障", "lift": "电梯故障", "water": "漏水/水管", "drain": "下水堵塞",
    "door": "门禁/单元门", "power": "停电/电路", "heating": "暖气不热", "other": "其他故障",
}


def building_name(building: str) -> str:
    """How a building reads in a title: "5" -> "5号楼", "12号" -> "12号楼"; words residents
    type with the number ("5号楼", "7栋", "B座") stay as typed."""
    if building.endswith(("楼", "栋", "幢", "座")):
        return building
    return f"{building}楼" if building.endswith("号") else f"{building}号楼"


# The unfinished states as the office's board names them (common/console_static/i18n.json).
STATUS_ZH = {
    "open": "待处理", "assigned": "已指派", "in_progress": "处理中", "reopened": "重新打开",
}


class TicketsService(Service):
    name = "tickets"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.section(TicketsConfig)
        self.rcfg = box.config.section(ReportsConfig)
        self._task: asyncio.Task | None = None
        self.overdue_alerts = 0
        app = box.http
        app[PUBLIC_PREFIXES].add("/api/v1/tickets")  # residents submit; staff checks inside
        app.router.add_post("/api/v1/tickets", self.http_create)
        app.router.add_get("/api/v1/tickets", self.http_list)
        app.router.add_get("/api/v1/tickets/faults", self.http_faults)
        app.router.add_get("/api/v1/tickets/{id}", self.http_get)
        app.router.add_post("/api/v1/tickets/{id}/{action}", self.http_action)
        box.commands.register("box", "ticket_update", self.cmd_ticket_update)
        reports = box.get(REPORTS, None)
        if reports is not None:
            reports.tickets = self  # reports open and show tickets through TicketDesk

    # --- what reports use (edge.reports.service.TicketDesk) ---------------------------

    def build_for_report(self, **fields: Any) -> tuple[RepairTicket, dict[str, Any]]:
        return ops.build_ticket(self.cfg, **fields)

    @staticmethod
    def insert_in_tx(store: Store, rec: RepairTicket, extra: dict[str, Any], actor: str) -> None:
        db.insert_ticket(store, rec, extra, actor)

    @staticmethod
    def of_report(store: Store, report_id: str) -> list[dict[str, Any]]:
        out = db.tickets_of_report(store, report_id)
        for t in out:
            t["history"] = db.history(store, t["id"])
        return out

    async def start(self) -> None:
        self._task = asyncio.create_task(self._overdue_loop(), name="tickets-overdue")

    async def stop(self) -> None:
        await cancel(self._task)

    def status(self) -> dict[str, Any]:
        return {"overdue_alerts": self.overdue_alerts}

    # --- for other services (issue 4: device health) ------------------------------------

    async def open_device_ticket(
        self, device_kind: str, device_id: str, reason: str
    ) -> RepairTicket | None:
        rec, created = await self.box.store.run(
            ops.open_for_device, self.box.store.sync, self.cfg, device_kind, device_id, reason
        )
        if created and rec is not None:
            log.info("opened ticket %s for %s %s: %s", rec.id, device_kind, device_id, reason)
        return rec

    async def close_device_ticket(self, device_kind: str, device_id: str) -> RepairTicket | None:
        return await self.box.store.run(
            ops.close_for_device, self.box.store.sync, self.cfg, device_kind, device_id
        )

    async def transition(self, ticket_id: str, action: str, **kw: Any) -> RepairTicket:
        return await self.box.store.run(
            ops.transition, self.box.store.sync, self.cfg, ticket_id, action, **kw
        )

    # --- overdue ---------------------------------------------------------------------

    async def check_overdue(self) -> int:
        store = self.box.store
        raised = 0
        for row in await store.run(db.overdue, store.sync, rdb.iso(now()), ACTIVE):
            state = STATUS_ZH.get(row["status"], row["status"])
            alert = Alert(
                id=new_id("al"),
                level="critical" if row["urgency"] in ("immediate", "high") else "warning",
                type="ticket_overdue",
                message=f"工单超时未完成: {row['title']} ({state}, 处理人"
                f" {row['assignee'] or '未分派'}, 应于 {self._local(row['due_at'])} 前完成)",
                evidence=[row["id"]],
            )
            if await store.run(db.mark_overdue, store.sync, row["id"], alert):
                raised += 1
        self.overdue_alerts += raised
        return raised

    def _local(self, ts: str) -> str:
        """A stored UTC time as the office reads it: the community's zone, "12月1日 11:13"."""
        t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        t = t.astimezone(ZoneInfo(self.box.config.box.timezone))
        return f"{t.month}月{t.day}日 {t.hour:02d}:{t.minute:02d}"

    async def _overdue_loop(self) -> None:
        while True:
            try:
                await self.check_overdue()
            except Exception:
                log.exception("overdue check failed")
            await asyncio.sleep(self.cfg.overdue_check_s)

    # --- HTTP ------------------------------------------------------------------------

    async def http_faults(self, request: web.Request) -> web.Response:
        return web.json_response([{"code": k, "zh": v} for k, v in FAULTS.items()])

    async def http_create(self, request: web.Request) -> web.Response:
        staff = request[ROLE] in ("staff", "admin")
        try:
            sub = await read_submission(
                request, max_photos=self.rcfg.max_photos,
                max_photo_bytes=int(self.rcfg.max_photo_mb * 1048576),
            )
            f = sub.fields
            fault = text_field(f, "fault", max_chars=20)
            if fault is not None and fault not in FAULTS:
                raise InputError("fault", f"unknown fault kind (known: {', '.join(FAULTS)})")
            title = text_field(f, "title", required=fault is None, max_chars=60)
            building = text_field(f, "building", max_chars=32)
            location = text_field(f, "location", max_chars=100)
            description = text_field(f, "description", max_chars=self.rcfg.max_text_chars) or ""
            urgency = text_field(f, "urgency", max_chars=10)
            if urgency is not None and urgency not in URGENCIES:
                raise InputError("urgency", f"one of {', '.join(URGENCIES)}")
            resident_id = await reporter(
                self.box, request, text_field(f, "resident_id", max_chars=64),
                self.box.get(REPORTS).gate,
            )
        except InputError as e:
            return json_error(e.status, str(e), field=e.field)
        # What the urgency is read from: the resident's words, not the place the box adds to a
        # one-tap repair's title (the text model took "5号楼 2单元" as an emergency's words).
        said = title
        if title is None:
            place = "".join(x for x in (f"{building_name(building)} " if building else "",
                                        location) if x)
            assert fault is not None  # the title is required without a fault kind
            said = FAULTS[fault]
            title = f"{said} {place}".strip()
        category = "facilities_repair"
        if urgency is None:
            reports = self.box.get(REPORTS)
            analysis = await reports.analyze(f"{said}。{description}")
            urgency = analysis.urgency if analysis.urgency != "low" else "normal"
            if analysis.category == "safety_hazard":
                category = "safety_hazard"
        rec, extra = ops.build_ticket(
            self.cfg, title=title, description=description, urgency=urgency, category=category,
            building=building, location=location, resident_id=resident_id,
            source="staff" if staff else "resident",
        )
        photo_rows = await self._save(sub.photos, rec.id, "submitted")
        try:
            await self.box.store.run(
                ops.create, self.box.store.sync, rec, extra, request[ACTOR] or "resident",
                photo_rows,
            )
        except Exception:
            await asyncio.to_thread(delete_photos, self.box.config.box.data_dir, photo_rows)
            raise
        row = await self.box.store.run(db.get_ticket, self.box.store.sync, rec.id)
        out = rec.model_dump(mode="json") | {
            "follow_key": extra["follow_key"], "ref": row["ref"] if row else None,
        }
        return web.json_response(out, status=201)

    async def _save(self, photos: list, owner_id: str, stage: str) -> list[dict[str, Any]]:
        if not photos:
            return []
        return await asyncio.to_thread(
            save_photos, self.box.config.box.data_dir, self.rcfg.photo_dir, photos, "ticket",
            owner_id, stage,
        )

    async def http_list(self, request: web.Request) -> web.Response:
        require_staff(request)
        q = request.query
        rows = await self.box.store.run(
            db.list_tickets, self.box.store.sync, status=q.get("status"),
            assignee=q.get("assignee"), limit=query_int(request, "limit", 100),
        )
        return web.json_response(rows)

    async def http_get(self, request: web.Request) -> web.Response:
        tid = request.match_info["id"]
        store = self.box.store
        row = await store.run(db.get_ticket, store.sync, tid)
        if row is None:
            return json_error(404, f"no ticket {tid}", field="id")
        key = request.query.get("key", "")
        if request[ROLE] not in ("staff", "admin") and key != row["follow_key"]:
            return json_error(403, "key: wrong or missing follow key", field="key")
        row.pop("follow_key")
        row["history"] = await store.run(db.history, store.sync, tid)
        row["photos"] = await store.run(rdb.photos_of, store.sync, "ticket", tid)
        return web.json_response(row)

    async def http_action(self, request: web.Request) -> web.Response:
        tid, action = request.match_info["id"], request.match_info["action"]
        if action not in ACTIONS or action == "system_resolve":
            return json_error(404, f"action: unknown action {action!r}", field="action")
        role = "staff" if request[ROLE] in ("staff", "admin") else "resident"
        try:
            sub = await read_submission(
                request, max_photos=self.rcfg.max_photos,
                max_photo_bytes=int(self.rcfg.max_photo_mb * 1048576),
            )
            note = text_field(sub.fields, "note", max_chars=500) or ""
            assignee = text_field(sub.fields, "assignee", max_chars=64)
            key = text_field(sub.fields, "key", max_chars=64) or request.query.get("key")
        except InputError as e:
            return json_error(e.status, str(e), field=e.field)
        if sub.photos and action != "resolve":
            return json_error(400, "photos: photos are attached when resolving", field="photos")
        photo_rows = await self._save(sub.photos, tid, "resolution")
        try:
            rec = await self.transition(
                tid, action, role=role, actor=request[ACTOR] or "resident", note=note,
                assignee=assignee, photo_rows=photo_rows, follow_key=key,
            )
        except (TransitionError, LookupError) as e:
            await asyncio.to_thread(delete_photos, self.box.config.box.data_dir, photo_rows)
            if isinstance(e, LookupError):
                return json_error(404, f"no ticket {tid}", field="id")
            status = 403 if e.field == "key" or "may not" in str(e) else 409
            return json_error(status, str(e), field=e.field)
        except Exception:
            await asyncio.to_thread(delete_photos, self.box.config.box.data_dir, photo_rows)
            raise
        return web.json_response(rec.model_dump(mode="json"))

    # --- cloud feed ------------------------------------------------------------------

    async def cmd_ticket_update(self, target_id: str, cmd: Command) -> str:
        """Ops' updates: {"ticket_id", "action", "assignee"?, "note"?} or
        {"report_id", "status", "reply"?} (the answer the resident sees)."""
        a = cmd.args
        if "report_id" in a:
            return await self.box.get(REPORTS).apply_status(a)
        tid, action = a.get("ticket_id"), a.get("action")
        if not isinstance(tid, str) or not isinstance(action, str):
            raise CommandError("args: need ticket_id and action (or report_id and status)")
        try:
            rec = await self.transition(
                tid, action, role="ops", actor=cmd.actor or "cloud",
                note=str(a.get("note", ""))[:500], assignee=a.get("assignee"),
            )
        except LookupError as e:
            raise CommandError(f"ticket_id: no ticket {tid}") from e
        except TransitionError as e:
            raise CommandError(str(e)) from e
        return f"ticket {tid} is {rec.status}"
