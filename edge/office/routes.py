"""The property office's pages (``/office/``) and the few API routes only it adds.

Pages are server-rendered shells in the city console's frame (common/console.py); their data
comes from the box's own API (``/api/v1/...``) in the browser with the session cookie, the
same routes a staff token uses. What the office adds to the API:

    GET  /api/v1/audit                              the audit log of staff writes (newest first)
    GET  /api/v1/office/devices                     doors, cameras and screens with their state
    GET  /api/v1/office/cameras/{id}/snapshot.jpg   a camera's latest picture
    POST /api/v1/office/face-check                  multipart "photo": the enrolment quality
                                                    gate's verdict, storing nothing
"""

from __future__ import annotations

import hmac
import json
import secrets
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from common.console import (
    STATIC_DIR,
    Shell,
    esc,
    html_response,
    lang_of,
    login_body,
    login_error,
    render,
    safe_next,
    strings,
)
from edge.core.http import BOX, form_post, json_error, query_int, read_form, require_staff
from edge.office.service import COOKIE, DEVICE_COOKIE, LoginRefused, OfficeService
from edge.office.store import audit_page

PREFIX = "/office"
APP_DIR = Path(__file__).parent / "static"
LOGIN_COOKIE = "qilu_office_login"  # double-submit token of the sign-in form (no session yet)
PAGES = ("today", "tickets", "residents", "doors", "passes", "blocks", "moderation", "devices",
         "log", "audit")
NAV = [(f"{PREFIX}/{p}", f"nav_{p}") for p in PAGES]
SHARED = ("audit",)  # pages both consoles run with the same script
MAX_CHECK_BYTES = 8 * 1024 * 1024


@cache
def office_strings() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads(
        (APP_DIR / "i18n.json").read_text(encoding="utf-8"))
    return data


def words(lang: str) -> dict[str, str]:
    return {**strings(lang), **office_strings().get(lang, {})}


def _safe_next(value: str | None) -> str:
    return safe_next(value, PREFIX, f"{PREFIX}/today")


BODIES = {
    "today": """<h1 class="sr">{nav_today}</h1>
<section class="kpis" id="kpis" aria-live="polite"></section>
<div class="cols">
<section class="card grow"><h2>{today_alerts}</h2><div id="alerts">{loading}</div></section>
<section class="card"><h2>{today_tickets}</h2><div id="open-tickets">{loading}</div></section>
</div>
<section class="card"><h2>{today_reports}</h2><div id="reports">{loading}</div></section>""",
    "tickets": """<h1 class="sr">{nav_tickets}</h1>
<form class="filters card" id="filters">
<label>{assignee}<input name="assignee" size="12"></label>
<label><span>{show_done}</span><select name="done"><option value="">{no}</option>
<option value="1">{yes}</option></select></label>
<button type="submit" class="primary">{apply}</button>
<span class="muted">{refreshing}</span></form>
<details class="card admin-only" id="new-ticket-box"><summary>{ticket_new}</summary>
<form id="new-ticket" class="filters">
<label>{ticket_fault}<select name="fault" required id="nt-fault">
<option value="">{choose}</option></select></label>
<label>{resident}<select name="resident_id" id="nt-rid">
<option value="">{ticket_no_resident}</option></select></label>
<label>{building}<input name="building" maxlength="32" size="6"></label>
<label>{ticket_location}<input name="location" maxlength="100" size="14"></label>
<label>{ticket_description}<input name="description" maxlength="500" size="28"></label>
<button type="submit" class="primary">{ticket_create}</button>
</form></details>
<div id="board" class="board">{loading}</div>""",
    "residents": """<h1 class="sr">{nav_residents}</h1>
<div class="cols">
<section class="card grow"><h2>{residents_list}</h2>
<form class="filters" id="find"><label>{search_residents}
<input name="q" type="search" size="16"></label>
</form><div id="residents" class="scroll">{loading}</div></section>
<section class="card"><h2>{resident_add}</h2>
<form id="add" class="stack admin-only">
<div class="row"><label>{resident_id}<input name="id" required maxlength="64" size="12"
 pattern="[A-Za-z0-9][A-Za-z0-9_.:\\-]*"></label>
<label>{name}<input name="name" required maxlength="100" size="10"></label></div>
<div class="row"><label>{building}<input name="building" maxlength="32" size="4"></label>
<label>{unit}<input name="unit" maxlength="16" size="4"></label>
<label>{room}<input name="room" maxlength="16" size="5"></label></div>
<button type="submit" class="primary">{save}</button></form></section>
</div>
<section class="card" id="enrol" hidden aria-labelledby="enrol-title">
<h2 id="enrol-title">{enrol_title} <span id="enrol-who"></span></h2>
<div class="cols">
<div class="grow">
<h3>{enrol_upload}</h3>
<form id="upload" class="stack">
<label>{enrol_photos}<input type="file" name="photo" accept="image/jpeg,image/png" multiple
 capture="user"></label>
<ul id="checks" class="checks" aria-live="polite"></ul>
<button type="submit" class="primary" disabled>{enrol_go}</button>
</form>
<output id="enrol-result" aria-live="polite"></output>
</div>
<div class="camera-box">
<h3>{enrol_camera}</h3>
<p class="muted" id="cam-note">{enrol_camera_note}</p>
<video id="cam" autoplay muted playsinline hidden aria-label="{enrol_camera}"></video>
<p id="cam-verdict" class="verdict" role="status" aria-live="polite"></p>
<div class="actions"><button type="button" id="cam-start">{camera_start}</button>
<button type="button" id="cam-take" class="primary" disabled>{camera_take}</button>
<button type="button" id="cam-stop" hidden>{camera_stop}</button></div>
</div></div></section>""",
    "doors": """<h1 class="sr">{nav_doors}</h1>
<section class="card"><h2>{doors_open_title}</h2><div id="doors">{loading}</div></section>
<section class="card"><h2>{rights_title}</h2>
<form class="filters" id="pick"><label>{resident}<select name="rid" required
 id="rid"><option value="">{choose}</option></select></label></form>
<form id="rights" class="stack" hidden>
<fieldset><legend>{rights_doors}</legend><label class="check"><input type="checkbox"
 name="all_doors" id="all-doors"> {rights_all}</label><div id="door-boxes" class="row"></div>
<p id="rights-opens" class="muted" role="status"></p></fieldset>
<label>{rights_buildings}<input name="buildings" size="20" placeholder="1, 2"></label>
<fieldset><legend>{rights_windows}</legend><div id="windows"></div>
<button type="button" id="add-window">{add_window}</button></fieldset>
<p class="muted">{rights_note}</p>
<button type="submit" class="primary admin-only">{save}</button>
</form></section>""",
    "passes": """<h1 class="sr">{nav_passes}</h1>
<div class="cols">
<section class="card grow"><h2>{passes_list}</h2><div id="passes" class="scroll">{loading}</div>
</section>
<section class="card"><h2>{pass_new}</h2>
<form id="new-pass" class="stack admin-only">
<label>{resident}<select name="resident_id" required id="pass-rid">
<option value="">{choose}</option></select></label>
<label>{visitor}<input name="visitor" maxlength="100"></label>
<fieldset><legend>{pass_doors}</legend><div id="pass-doors" class="row"></div></fieldset>
<div class="row"><label>{pass_hours}<input name="hours" type="number" min="1" max="720"
 value="4"></label>
<label>{pass_uses}<input name="uses" type="number" min="1" max="100" value="1"></label></div>
<button type="submit" class="primary">{pass_issue}</button>
</form>
<div id="pass-out" aria-live="polite"></div></section>
</div>""",
    "blocks": """<h1 class="sr">{nav_blocks}</h1>
<div class="cols">
<section class="card grow"><h2>{blocks_list}</h2><div id="blocks" class="scroll">{loading}</div>
</section>
<section class="card"><h2>{block_new}</h2>
<form id="new-block" class="stack admin-only">
<label>{resident}<select name="resident_id" required id="block-rid">
<option value="">{choose}</option></select></label>
<label>{door_optional}<select name="door_id" id="block-door"><option value="">{all_doors}
</option></select></label>
<label>{reason}<input name="reason" maxlength="500" size="28"></label>
<label>{block_until}<input name="until" type="datetime-local"></label>
<button type="submit" class="danger">{block_go}</button>
</form></section></div>""",
    "moderation": """<h1 class="sr">{nav_moderation}</h1>
<section class="card"><h2>{moderation_queue}</h2><div id="queue">{loading}</div></section>""",
    "devices": """<h1 class="sr">{nav_devices}</h1>
<section class="card"><h2>{devices_title}</h2><div id="devices" class="scroll">{loading}</div>
</section>
<section class="card"><h2>{cameras_title}</h2><div id="cameras" class="cams">{loading}</div>
</section>""",
    "log": """<h1 class="sr">{nav_log}</h1>
<form class="filters card" id="filters">
<label>{door}<select name="door" id="log-door"><option value="">{all}</option></select></label>
<label>{decision}<select name="decision"><option value="">{all}</option>
<option value="granted">{granted}</option><option value="denied">{denied}</option></select></label>
<button type="submit" class="primary">{apply}</button>
<span class="muted">{refreshing}</span></form>
<section class="card"><div id="events" class="scroll">{loading}</div></section>""",
    # the city console's audit page (common/console_static/console.js pages.audit) as is
    "audit": """<h1 class="sr">{nav_audit}</h1>
<form class="filters card" id="filters"><label>{actor}<input name="actor" size="16"></label>
<button type="submit">{filter}</button></form>
<section class="card"><div id="audit">{loading}</div>
<button type="button" id="more" hidden>{more}</button></section>""",
}


class Pages:
    def __init__(self, svc: OfficeService) -> None:
        self.svc = svc

    def shell(self, user: dict[str, Any] | None = None) -> Shell:
        box = self.svc.box.config.box
        return Shell(
            "office_title", f"{PREFIX}/static", "/api/v1", NAV if user else [],
            user["name"] if user else "", user["role"] if user else "",
            box.name or box.community, user["csrf"] if user else "",
            f"{PREFIX}/logout" if user else "",
            scripts=(f"{PREFIX}/app/office.js",), styles=(f"{PREFIX}/app/office.css",),
            extra_strings=office_strings(),
        )

    def login_form(self, request: web.Request, error: str = "", status: int = 200
                   ) -> web.Response:
        lang = lang_of(request)
        t = words(lang)
        token = secrets.token_urlsafe(18)
        nxt = _safe_next(request.query.get("next"))
        action = f"{PREFIX}/login?next={quote(nxt, safe='/')}"
        help_ = f'<p class="muted">{esc(t["office_login_help"])}</p>'
        body = login_body(t, "office_title", action, token, error, after=help_)
        resp = html_response(request, render(self.shell(), lang, "login", "", body), status)
        resp.set_cookie(LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="Strict",
                        secure=request.secure)
        return resp

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        if await self.svc.session_of(request) is not None:
            raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
        return self.login_form(request, "login_expired" if request.query.get("expired") else "")

    async def login_post(self, request: web.Request) -> web.StreamResponse:
        form = await form_post(request, max_fields=8)
        sent, want = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
        if not (sent and want and hmac.compare_digest(sent.encode(), want.encode())):
            return self.login_form(request, "login_csrf", 403)
        name = str(form.get("name", ""))[:100]
        ip = request.remote or ""
        async with self.svc.login_lock(name):  # the failure is counted before the next try
            try:
                value, user, device = await self.svc.login(
                    name, str(form.get("password", ""))[:1000], str(form.get("totp", ""))[:12],
                    ip, request.cookies.get(DEVICE_COOKIE, "")[:200])
            except LoginRefused as e:
                # checked passwords count (per pair and per name); refusals that checked
                # nothing (locked, slow) are kept apart, so they extend nobody's wait
                checked = str(e).startswith("bad_")
                await self.svc.audit(name, "login", "login_failed" if checked else
                                     "login_refused", e.pair, f"{e} {ip}", 401)
                return self.login_form(request, login_error(str(e)), 401)
        await self.svc.audit(name, "login", "login", "", f"{user['role']} {ip}", 200)
        resp = web.HTTPSeeOther(_safe_next(request.query.get("next")))
        self.svc.set_cookie(request, resp, value)
        self.svc.set_device_cookie(request, resp, device)
        resp.del_cookie(LOGIN_COOKIE, path="/")
        raise resp

    async def logout(self, request: web.Request) -> web.StreamResponse:
        user = await self.svc.session_of(request)
        resp = web.HTTPSeeOther(f"{PREFIX}/login")
        if user is not None:
            form = await form_post(request, max_fields=8)
            sent = str(form.get("csrf", ""))
            if not (sent and hmac.compare_digest(sent.encode(), user["csrf"].encode())):
                return json_error(403, "csrf: missing or wrong", field="csrf")
            await self.svc.logout(request)
            await self.svc.audit(user["name"], "session", "logout")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    def page(self, page: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            user = await self.svc.session_of(request)
            if user is None:
                expired = "&expired=1" if request.cookies.get(COOKIE) else ""
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path)}{expired}")
            lang = lang_of(request)
            body = BODIES[page].format(**{k: esc(v) for k, v in words(lang).items()})
            # The audit page is the city console's own (console.js pages.audit); the others
            # are the office's (office.js), named apart so that console.js leaves them alone.
            page_id = page if page in SHARED else f"office-{page}"
            return html_response(request, render(self.shell(user), lang, page_id,
                                                 f"nav_{page}", body))

        handler.__name__ = f"page_{page}"
        return handler

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/today")


class Api:
    def __init__(self, svc: OfficeService) -> None:
        self.svc = svc

    async def audit(self, request: web.Request) -> web.Response:
        require_staff(request)
        before = query_int(request, "before", 0, 0, 2**62)
        limit = query_int(request, "limit", 100, 1, 500)
        rows = await self.svc.db(audit_page, limit, before or None,
                                 request.query.get("actor") or None)
        area = request.app[BOX].config.box.community
        for r in rows:
            r["area_path"] = area  # the shared audit page's column (the cloud's area)
        nxt = rows[-1]["id"] if len(rows) == limit else None
        return web.json_response({"items": rows, "next_before": nxt})

    async def devices(self, request: web.Request) -> web.Response:
        require_staff(request)
        return web.json_response({"items": self.svc.devices()})

    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        require_staff(request)
        cam = request.match_info["id"]
        try:
            jpeg = await self.svc.snapshot(cam)
        except KeyError:
            return json_error(404, f"id: no camera {cam!r}", field="id")
        if jpeg is None:
            return json_error(503, f"camera {cam} has no picture yet (is it online?)")
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store"})

    async def face_check(self, request: web.Request) -> web.Response:
        require_staff(request)
        form = await read_form(request, files={"photo": (1, MAX_CHECK_BYTES)})
        photos = form.files.get("photo", [])
        if not photos:
            return json_error(400, "photo: no 'photo' file in the upload", field="photo")
        out = await self.svc.face_check(photos[0][1], form.fields.get("resident_id", ""))
        if out is None:
            return json_error(503, "face recognition is disabled ([faces] enabled = false)")
        return web.json_response(out)


def add_routes(app: web.Application, svc: OfficeService) -> None:
    r = app.router
    api = Api(svc)
    r.add_get("/api/v1/audit", api.audit)
    r.add_get("/api/v1/office/devices", api.devices)
    r.add_get("/api/v1/office/cameras/{id}/snapshot.jpg", api.snapshot)
    r.add_post("/api/v1/office/face-check", api.face_check)
    if not svc.cfg.enabled:
        return
    p = Pages(svc)
    r.add_get(PREFIX, p.root)
    r.add_get(f"{PREFIX}/", p.root)
    r.add_get(f"{PREFIX}/login", p.login_page)
    r.add_post(f"{PREFIX}/login", p.login_post)
    r.add_post(f"{PREFIX}/logout", p.logout)
    for page in PAGES:
        r.add_get(f"{PREFIX}/{page}", p.page(page))
    r.add_static(f"{PREFIX}/static", STATIC_DIR)
    r.add_static(f"{PREFIX}/app", APP_DIR)
