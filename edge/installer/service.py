"""The installer page on the box: first-boot wizard and the doctor report, Chinese and English.

``GET /installer/`` serves one static page (no token needed to load it); everything it does
goes through ``/api/v1/installer/...`` with a staff bearer token, which ``install.sh`` prints.

API:
  GET  /api/v1/installer/setup            current box id, community, name, cloud URL, devices
  POST /api/v1/installer/setup/validate   {community, name, box_id, cloud_url, devices[]} -> ok
  POST /api/v1/installer/setup            same, validated, then written (restart to apply)
  POST /api/v1/installer/provision        {cloud_url, claim_code, force?} -> box id, area (the
                                          same steps as `qilu-edge provision`; sync starts now)
  POST /api/v1/installer/modbus-scan      {host, port, units} -> units that answered + blocks
  POST /api/v1/installer/doctor           start a run {click: bool} (409 while one runs)
  GET  /api/v1/installer/doctor           progress: {running, total, done, results[], ok}

Errors name the problem in Chinese by default, in English with ``Accept-Language: en`` or
``?lang=en`` (the page sends its language); both texts are in every error
(``error_zh``/``error_en``, edge/installer/messages.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.core.box import Box
from edge.core.config import ConfigError
from edge.core.http import ACTOR, require_admin, require_staff
from edge.core.service import Service
from edge.installer import setup_edit
from edge.installer.config import InstallerConfig
from edge.installer.doctor import Doctor, Result
from edge.installer.messages import config_zh, error, own_zh, wants_english
from edge.installer.page import PAGE, SCRIPT
from edge.installer.provisioning import ProvisionError, provision_box
from edge.sync import SYNC
from edge.sync.identity import identity_path
from edge.sync.identity import load as load_identity

log = logging.getLogger(__name__)


class InstallerWeb(Service):
    name = "installer"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.run: dict[str, Any] = {"running": False, "total": 0, "done": 0, "results": []}
        self._task: asyncio.Task | None = None
        if not box.config.section(InstallerConfig).web:
            return
        r = box.http.router
        r.add_get("/installer", _redirect)
        r.add_get("/installer/", _page)
        r.add_get("/installer/app.js", _script)
        r.add_get("/api/v1/installer/setup", self.get_setup)
        r.add_post("/api/v1/installer/setup/validate", self.validate_setup)
        r.add_post("/api/v1/installer/setup", self.save_setup)
        r.add_post("/api/v1/installer/provision", self.provision)
        r.add_post("/api/v1/installer/modbus-scan", self.modbus_scan)
        r.add_post("/api/v1/installer/doctor", self.start_doctor)
        r.add_get("/api/v1/installer/doctor", self.doctor_state)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {"doctor_running": self.run["running"], "doctor_ok": self.run.get("ok")}

    # -- wizard -------------------------------------------------------------------------
    async def get_setup(self, request: web.Request) -> web.Response:
        require_staff(request)
        cfg = self.box.config
        # The cloud URL lives in the box's cloud identity (written by provisioning).
        ident = await asyncio.to_thread(load_identity, identity_path(cfg))
        return web.json_response(
            {
                "box_id": cfg.box.id,
                "community": cfg.box.community,
                "name": cfg.box.name,
                "cloud_url": ident.cloud if ident else None,
                "cloud_available": True,
                "provisioned": _ident_json(ident),
                "config": str(cfg.source) if cfg.source else None,
                "devices": [
                    {"kind": k, "id": d.id, "type": d.type, "name": d.name}
                    for k, d in cfg.devices()
                ],
            }
        )

    async def _proposed(self, request: web.Request) -> tuple[Path, str] | web.Response:
        require_staff(request)
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        source = self.box.config.source
        if source is None:
            return error(request, 409, "this box runs without a config file; nothing to edit",
                         "本机没有配置文件，无法在这里修改设置")  # fmt: skip
        try:
            text = await asyncio.to_thread(source.read_text, encoding="utf-8")
            new_text, _ = setup_edit.apply(text, source, body, self.box.config)
        except (ConfigError, ValueError) as e:
            msg = str(e)
            zh = own_zh(msg) or config_zh(msg)
            return error(request, 400, msg, zh, field=_field_of(msg))
        return source, new_text

    async def validate_setup(self, request: web.Request) -> web.Response:
        out = await self._proposed(request)
        if isinstance(out, web.Response):
            return out
        return web.json_response({"ok": True})

    async def save_setup(self, request: web.Request) -> web.Response:
        out = await self._proposed(request)
        if isinstance(out, web.Response):
            return out
        source, text = out
        try:
            await asyncio.to_thread(setup_edit.write_atomically, source, text)
        except OSError as e:
            return error(request, 500, f"cannot write {source}: {e.strerror}",
                         f"无法写入 {source}：{e.strerror}")  # fmt: skip
        log.info("installer wizard saved %s (by %s)", source, request[ACTOR])
        return web.json_response(
            {
                "ok": True,
                "saved": str(source),
                "restart_required": True,
                "hint": "systemctl restart qilu-edge (applies the new config)",
                "hint_zh": "重启服务后生效：systemctl restart qilu-edge",
            }
        )

    async def provision(self, request: web.Request) -> web.Response:
        require_staff(request)
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        if body.get("force"):
            # Replacing a registration hands the box (doors, residents' data) to another
            # cloud: an admin token only, not any staff token (security probe 2026-11).
            try:
                require_admin(request)
            except web.HTTPForbidden:
                return error(request, 403, "force: replacing the box's registration needs an"
                             " admin token", "替换已有注册需要管理员令牌", field="force")
        try:
            ident = await provision_box(
                self.box.config,
                str(body.get("cloud_url") or ""),
                str(body.get("claim_code") or ""),
                name=str(body.get("name") or ""),
                force=bool(body.get("force")),
            )
        except ProvisionError as e:
            zh = own_zh(str(e)) or f"注册到云端失败（{e}）"
            return error(request, e.status, str(e), zh, field=e.field)
        try:
            self.box.get(SYNC).identity_changed()  # start syncing without a restart
        except KeyError:
            pass
        log.info("installer wizard provisioned %s at %s (by %s)", ident.box_id, ident.cloud,
                 request[ACTOR])  # fmt: skip
        return web.json_response({"ok": True, **(_ident_json(ident) or {})})

    async def modbus_scan(self, request: web.Request) -> web.Response:
        from edge.installer.modbus_scan import ScanError, scan, snippet

        require_staff(request)
        body = await _body(request)
        if isinstance(body, web.Response):
            return body
        host = str(body.get("host") or "")
        try:
            port = int(body.get("port") or 502)
            lo, hi = (int(x) for x in str(body.get("units") or "1-32").split("-", 1))
        except ValueError:
            return error(request, 400, "units: expected a range like 1-32",
                         "站号范围格式不对，例如 1-32", field="units")  # fmt: skip
        if not host:
            return error(request, 400, "host: required", "请填写 Modbus 主机地址", field="host")
        if not (0 <= lo <= hi <= 247):
            return error(request, 400, "units: ids are 0..247", "站号应在 0 到 247 之间",
                         field="units")  # fmt: skip
        try:
            found = await scan(range(lo, hi + 1), host=host, port=port, per_unit_s=0.3)
        except ScanError as e:
            return error(request, 502, str(e), f"连不上 Modbus 设备 {host}:{port}，请检查地址、"
                         "端口和接线", field="host")  # fmt: skip
        return web.json_response(
            [
                asdict(u)
                | {
                    "snippet": snippet(u, host=host, port=port, serial=None, baud=9600),
                    "device": {
                        "kind": "doors",
                        "id": f"door-u{u.unit}",
                        "type": "modbus",
                        "host": host,
                        "port": port,
                        "unit": u.unit,
                    },
                }
                for u in found
            ]
        )

    # -- doctor -------------------------------------------------------------------------
    async def start_doctor(self, request: web.Request) -> web.Response:
        actor = require_staff(request)
        if self.run["running"]:
            return error(request, 409, "a doctor run is in progress", "检查正在进行中，请稍候",
                         busy=True)  # fmt: skip
        body = await _body(request) if request.can_read_body else {}
        if isinstance(body, web.Response):
            return body
        doc = Doctor(
            config=self.box.config,
            config_path=self.box.config.source,
            box=self.box,
            click=bool(body.get("click")),
            actor=actor,  # a click opens doors: its access events say who
        )
        plan = doc.plan()
        self.run = {
            "running": True,
            "total": len(plan),
            "done": 0,
            "current": plan[0].title if plan else None,
            "titles": [c.title for c in plan],
            "results": [],
        }

        def on_result(r: Result) -> None:
            self.run["results"].append(r.as_dict())  # both languages; doctor_state picks one
            self.run["done"] += 1
            nxt = self.run["done"]
            self.run["current"] = plan[nxt].title if nxt < len(plan) else None

        async def go() -> None:
            try:
                report = await doc.run(on_result)
                self.run["ok"] = report.ok
                self.run["counts"] = report.counts()
            finally:
                self.run["running"] = False

        self._task = asyncio.create_task(go())
        return web.json_response({"started": True, "total": len(plan)}, status=202)

    async def doctor_state(self, request: web.Request) -> web.Response:
        """Progress, each result's title, detail and hint in the asker's language (the page
        sends its own; every result also carries both, so switching needs no new run)."""
        require_staff(request)
        one = "en" if wants_english(request) else "zh"
        results = [
            {**r, **{k: r[f"{k}_{one}"] for k in ("title", "detail", "hint")}}
            for r in self.run["results"]
        ]
        return web.json_response({**self.run, "results": results})


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object sent, or an error answer naming what is wrong with it."""
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError):
        return error(request, 400, "body: not JSON", "提交的内容不是 JSON", field="(body)")
    if not isinstance(body, dict):
        return error(request, 400, "body: expected a JSON object", "提交的内容应为 JSON 对象",
                     field="(body)")  # fmt: skip
    return body


def _ident_json(ident: Any) -> dict[str, Any] | None:
    if ident is None:
        return None
    return {
        "box_id": ident.box_id,
        "cloud_url": ident.cloud,
        "community_id": ident.community_id,
        "area_path": ident.area_path,
    }


def _field_of(message: str) -> str | None:
    # "edge.toml:3: box.community: String should match ..." -> "box.community"
    first = message.splitlines()[0] if message else ""
    parts = [p.strip() for p in first.split(":")]
    if len(parts) >= 3 and parts[1].isdigit():
        return parts[2]
    if len(parts) >= 2 and " " not in parts[0]:
        return parts[0]
    return None


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", charset="utf-8")


async def _script(request: web.Request) -> web.Response:
    return web.Response(text=SCRIPT, content_type="text/javascript", charset="utf-8")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/installer/")
