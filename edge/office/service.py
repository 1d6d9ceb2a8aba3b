"""The office service: staff accounts, cookie sessions that expire, the audit log, and the few
things the pages need that no other API serves (device states, a camera's picture, a face
photo's quality check without enrolling it).

A signed-in browser calls the box's API like a staff token does: this service registers a
session lookup with edge/core/http.py (writes need the session's CSRF token; a viewer only
reads) and an observer that writes every staff write, token or session, to ``office_audit``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
from aiohttp import web

from common.staffauth import (
    check_password,
    check_totp,
    device_cookie,
    device_ok,
    device_pair,
    slow_down_s,
)
from edge.core.box import Box
from edge.core.http import ACTOR, STAFF_SESSIONS, VIA, WRITE_OBSERVERS, StaffSession
from edge.core.service import Service
from edge.devices import DEVICES
from edge.faces import FACES
from edge.office import store as db
from edge.office.config import OfficeConfig

log = logging.getLogger(__name__)
COOKIE = "qilu_office"
DEVICE_COOKIE = "qilu_office_device"  # this browser signed in before (common/staffauth.py)
DETAIL_MAX = 600
SECRET_KEYS = ("password", "totp", "secret", "token", "pin", "key")
# Writes that change nothing (a live face check polls every second): not worth an audit row.
NOT_AUDITED = frozenset({"POST /api/v1/office/face-check"})
_SESSION: web.RequestKey[dict[str, Any] | None] = web.RequestKey("office_session")


class LoginRefused(Exception):
    """Why a sign-in failed, in words safe to show (never which of name/password was wrong):
    ``bad_credentials``, ``bad_totp``, ``locked`` (this address or device, for this name) or
    ``slow`` (the name's sign-ins slowed down); ``pair``: where the try came from, as
    counted (``ip=…`` or ``device=…``)."""

    def __init__(self, reason: str, pair: str = "") -> None:
        super().__init__(reason)
        self.pair = pair


def session_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class OfficeService(Service):
    name = "office"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.section(OfficeConfig)
        self.logins = 0
        self._login_locks: dict[str, asyncio.Lock] = {}
        if self.cfg.enabled:
            box.http[STAFF_SESSIONS].append(self._lookup)
        box.http[WRITE_OBSERVERS].append(self._audit_write)

    async def start(self) -> None:
        now = datetime.now(UTC)
        await self.db(db.prune, db.iso(now - timedelta(days=1)),
                      db.iso(now - timedelta(days=self.cfg.audit_keep_days)))

    def status(self) -> dict[str, Any]:
        return {"enabled": self.cfg.enabled, "logins": self.logins}

    async def db(self, fn: Any, *args: Any) -> Any:
        return await self.box.store.run(fn, self.box.store.sync, *args)

    # --- sign-in and sessions ----------------------------------------------------------

    def login_lock(self, name: str) -> asyncio.Lock:
        """One sign-in at a time per user name, held from the lockout check until its failure
        is written: guesses posted together used to pass the check before any of them had
        failed (each waits for its password hash), so the lockout did not bound them."""
        if len(self._login_locks) > 1000:  # names are the caller's: forget the idle ones
            self._login_locks = {k: v for k, v in self._login_locks.items() if v.locked()}
        return self._login_locks.setdefault(name, asyncio.Lock())

    async def login(self, name: str, password: str, totp: str, ip: str = "",
                    device: str = "") -> tuple[str, dict[str, Any], str]:
        """Check the credentials; a new session's cookie value, the user row and the
        remembered-device cookie for this browser. ``device``: the device cookie it sent."""
        now = datetime.now(UTC)
        user = await self.db(db.get_user, name)
        stored = user["password_hash"] if user is not None else None
        trusted = bool(device) and device_ok(stored, name, device, now.timestamp(),
                                             self.cfg.device_days)
        pair = device_pair(device) if trusted else f"ip={ip}"
        since = db.iso(now - timedelta(minutes=self.cfg.lockout_min))
        n_pair, n_name, last = await self.db(db.login_failures, name, since, pair)
        if n_pair >= self.cfg.max_failed_logins:
            raise LoginRefused("locked", pair)
        age = (now - datetime.fromisoformat(last)).total_seconds() if last else 1e9
        if not trusted and slow_down_s(n_name, age, self.cfg.max_failed_logins,
                                       self.cfg.slow_base_s, self.cfg.slow_max_s) > 0:
            raise LoginRefused("slow", pair)
        ok = await asyncio.to_thread(check_password, password, stored)
        if not ok or user is None or stored is None:
            raise LoginRefused("bad_credentials", pair)
        if user["totp_secret"] and not check_totp(user["totp_secret"], totp):
            raise LoginRefused("bad_totp", pair)
        value = secrets.token_urlsafe(32)
        await self.db(db.session_add, session_hash(value), name, secrets.token_urlsafe(24),
                      db.iso(now + timedelta(hours=self.cfg.absolute_h)),
                      db.iso(now + timedelta(minutes=self.cfg.idle_min)))
        self.logins += 1
        return value, user, device_cookie(stored, name, now.timestamp())

    async def session_of(self, request: web.Request) -> dict[str, Any] | None:
        """The signed-in user of the request's cookie (name, role, csrf), or None; slides the
        idle deadline forward once half of it is used (not a write on every request)."""
        if _SESSION in request:
            return request[_SESSION]
        row = None
        value = request.cookies.get(COOKIE)
        if value and self.cfg.enabled:
            now = datetime.now(UTC)
            h = session_hash(value)
            row = await self.db(db.session_user, h, db.iso(now))
            if row is not None:
                row["hash"] = h
                left = datetime.fromisoformat(row["idle_until"]) - now
                if left.total_seconds() < self.cfg.idle_min * 30:  # half of idle_min, in s
                    await self.db(db.session_touch, h,
                                  db.iso(now + timedelta(minutes=self.cfg.idle_min)))
        request[_SESSION] = row
        return row

    async def _lookup(self, request: web.Request) -> StaffSession | None:
        row = await self.session_of(request)
        if row is None:
            return None
        return StaffSession(row["name"], row["csrf"], read_only=row["role"] != "admin")

    async def logout(self, request: web.Request) -> None:
        row = await self.session_of(request)
        if row is not None:
            await self.db(db.session_end, row["hash"])

    def set_cookie(self, request: web.Request, response: web.StreamResponse, value: str) -> None:
        response.set_cookie(COOKIE, value, max_age=int(self.cfg.absolute_h * 3600), path="/",
                            httponly=True, samesite="Strict", secure=request.secure)

    def set_device_cookie(self, request: web.Request, response: web.StreamResponse,
                          value: str) -> None:
        response.set_cookie(DEVICE_COOKIE, value, max_age=int(self.cfg.device_days * 86400),
                            path="/office/", httponly=True, samesite="Strict",
                            secure=request.secure)

    # --- audit ---------------------------------------------------------------------------

    async def audit(self, actor: str, via: str, action: str, target: str = "",
                    detail: str = "", status: int = 200) -> None:
        await self.db(db.audit_add, actor, via, action, target, detail[:DETAIL_MAX], status)

    async def _audit_write(self, request: web.Request, status: int) -> None:
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        action = f"{request.method} {canonical}"
        if action in NOT_AUDITED:
            return
        target = ",".join(f"{k}={v}" for k, v in request.match_info.items())
        await self.audit(request.get(ACTOR) or "", request.get(VIA) or "token", action,
                         target, await _detail(request), status)

    # --- what the pages need beyond the other features' APIs -----------------------------

    def devices(self) -> list[dict[str, Any]]:
        out = []
        for (kind, dev_id), drv in self.box.get(DEVICES).drivers.items():
            row: dict[str, Any] = {
                "kind": kind, "id": dev_id, "type": drv.TYPE, "name": drv.config.name or "",
                "state": drv.state, "reason": drv.reason,
            }
            if kind == "camera":
                row["camera"] = drv.status()  # type: ignore[attr-defined]
                row["snapshot"] = f"/api/v1/office/cameras/{dev_id}/snapshot.jpg"
            elif kind == "door":
                row["building"] = getattr(drv.config, "building", None)
                row["camera_id"] = getattr(drv.config, "camera", None)
            out.append(row)
        return out

    async def snapshot(self, camera_id: str) -> bytes | None:
        """The camera's latest frame as a JPEG (scaled down), None when it has none yet;
        KeyError for an unknown camera."""
        drv = self.box.get(DEVICES).get("camera", camera_id)
        frame = drv.latest()  # type: ignore[attr-defined]
        if frame is None:
            frame = await drv.next_frame(limit_s=2.0)  # type: ignore[attr-defined]
        if frame is None:
            return None
        return await asyncio.to_thread(self._jpeg, frame.image)

    def _jpeg(self, image: np.ndarray) -> bytes:
        h, w = image.shape[:2]
        if w > self.cfg.snapshot_width:
            size = (self.cfg.snapshot_width, int(h * self.cfg.snapshot_width / w))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        quality = [cv2.IMWRITE_JPEG_QUALITY, self.cfg.snapshot_quality]
        ok, buf = cv2.imencode(".jpg", image, quality)
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    async def face_check(self, data: bytes, resident_id: str) -> dict[str, Any] | None:
        """The enrolment quality gate on one photo, storing nothing (None: faces disabled)."""
        pipeline = getattr(self.box.get(FACES, None), "pipeline", None)
        if pipeline is None:
            return None
        image = await asyncio.to_thread(
            lambda: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        check = await pipeline.check_enrol(image, resident_id)
        q = check.quality
        return {"ok": check.ok, "reason": check.reason, "detail": check.detail,
                "warnings": check.warnings, "quality": q.score if q else None,
                "metrics": q.metrics if q else {}}


async def _detail(request: web.Request) -> str:
    """What was sent, for the audit row: a JSON body with secrets masked; else its size."""
    if not request.body_exists:
        return ""
    if request.content_type != "application/json":
        n = request.content_length
        return f"{request.content_type} {n} bytes" if n else request.content_type
    try:
        data = json.loads(await request.read())  # aiohttp keeps what the handler read
    except (ValueError, UnicodeDecodeError):
        return "(not JSON)"
    except OSError:  # the client left before its whole body arrived
        return "(body not received: the client left)"
    if isinstance(data, dict):
        data = {k: ("***" if any(s in k.lower() for s in SECRET_KEYS) else v)
                for k, v in data.items()}
    return json.dumps(data, ensure_ascii=False)[:DETAIL_MAX]
