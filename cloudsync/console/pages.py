"""The city operations console's pages (城市运营中心, ``/console/``): sign-in, sign-out and the
page shells. Each page's data comes from the ops API in the browser (common/console_static/
console.js) with the session cookie, so a page shows exactly what the API allows its user.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web
from multidict import MultiDict

from cloudsync.body import read_wire
from cloudsync.console import api
from cloudsync.console.auth import (
    DEVICE_COOKIE,
    SESSION_ID,
    SETTINGS,
    LoginRefused,
    clear_cookie,
    csrf_ok,
    iso,
    login,
    over_https,
    session_user,
    set_cookie,
    set_device_cookie,
)
from cloudsync.context import CLOUD
from cloudsync.routing import BadRequest
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

PREFIX = "/console"
# The cloud-only pages' script, style and words (roll-outs, statistics, library), beside the
# shared look in common/console_static: the box's office console never loads them.
CLOUD_STATIC = Path(__file__).resolve().parent.parent / "static" / "console"
CLOUD_STATIC_URL = f"{PREFIX}/cloud-static"
LOGIN_COOKIE = "qilu_login"  # double-submit token of the sign-in form (no session yet)
NAV = [
    (f"{PREFIX}/overview", "nav_overview"),
    (f"{PREFIX}/alerts", "nav_alerts"),
    (f"{PREFIX}/reports", "nav_reports"),
    (f"{PREFIX}/tickets", "nav_tickets"),
    (f"{PREFIX}/content", "nav_content"),
    (f"{PREFIX}/library", "nav_library"),
    (f"{PREFIX}/stats", "nav_stats"),
    (f"{PREFIX}/fleet", "nav_fleet"),
    (f"{PREFIX}/audit", "nav_audit"),
]


def cloud_host_only(request: web.Request) -> None:
    """The console answers only on the cloud's own host, never on a box's relay origin
    (``<box id>.<relay domain>`` serves pages a box writes)."""
    relays = request.app[CLOUD].relays
    if relays is not None and relays.box_of_host(request.host):
        raise web.HTTPNotFound()


def _safe_next(value: str | None) -> str:
    return safe_next(value, PREFIX, f"{PREFIX}/overview")


def login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    lang = lang_of(request)
    t = strings(lang)
    token = secrets.token_urlsafe(18)
    nxt = _safe_next(request.query.get("next"))
    action = f"{PREFIX}/login?next={quote(nxt, safe='/')}"
    body = login_body(t, "cloud_title", action, token, error)
    shell = Shell("cloud_title", f"{PREFIX}/static", "/api/v1/ops")
    resp = html_response(request, render(shell, lang, "login", "", body), status)
    resp.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="Strict",
        secure=over_https(request),
    )
    return resp


async def login_page(request: web.Request) -> web.StreamResponse:
    cloud_host_only(request)
    if await session_user(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return login_form(request, "login_expired" if request.query.get("expired") else "")


# One sign-in per user name at a time (per worker), from the lock-out check until its failure
# is in the audit log: passwords posted together used to pass the check before any of them
# had failed (each waits for its scrypt hash), so the lock-out bounded nothing.
LOGIN_LOCKS: web.AppKey[dict[str, asyncio.Lock]] = web.AppKey("console_login_locks", dict)


def _login_lock(app: web.Application, name: str) -> asyncio.Lock:
    locks = app[LOGIN_LOCKS]
    if len(locks) > 1000:  # names are the caller's: forget the idle ones
        for idle in [k for k, v in locks.items() if not v.locked()]:
            del locks[idle]
    return locks.setdefault(name, asyncio.Lock())


FORM_MAX = 16 * 1024  # a sign-in or sign-out form is a few hundred bytes


async def small_form(request: web.Request) -> MultiDict[str]:
    """A URL-encoded form of at most FORM_MAX bytes (413 past it, before the rest arrives):
    anyone may post the sign-in form, and ``request.post()`` would first take up to the
    app's 64 MB body limit (security probe 5)."""
    data = await read_wire(request, FORM_MAX)
    try:
        return MultiDict(parse_qsl(data.decode(), keep_blank_values=True))
    except UnicodeDecodeError as e:
        raise BadRequest("body: a form in UTF-8 is expected", "body") from e


async def login_post(request: web.Request) -> web.StreamResponse:
    cloud_host_only(request)
    form = await small_form(request)
    sent, want = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not (sent and want and hmac.compare_digest(sent, want)):
        return login_form(request, "login_csrf", 403)
    name = str(form.get("name", ""))[:100]
    storage = request.app[CLOUD].storage
    # failures lock (name, address) pairs: behind a reverse proxy that is the address the
    # proxy vouches for (serve --trusted-proxy), or every user would share the proxy's pair
    relays = request.app[CLOUD].relays
    ip = relays.client(request) if relays is not None else request.remote or ""
    async with _login_lock(request.app, name):  # the failure is counted before the next try
        try:
            value, _csrf, user, device = await login(
                storage,
                request.app[SETTINGS],
                name,
                str(form.get("password", ""))[:1000],
                str(form.get("totp", ""))[:12],
                ip,
                request.cookies.get(DEVICE_COOKIE, "")[:200],
            )
        except LoginRefused as e:
            known = await storage.ops_user_get(name)
            # checked passwords count (per pair and per name); refusals that checked nothing
            # (locked, slow) are kept apart, so they extend nobody's wait
            action = "login_failed" if str(e).startswith("bad_") else "login_refused"
            await storage.audit_add(name, "login", action, known["scope"] if known else "/",
                                    e.pair, f"{e} {ip}", 401)
            return login_form(request, login_error(str(e)), 401)
    await storage.audit_add(name, "login", "login", user["scope"], "", ip, 200)
    resp = web.HTTPSeeOther(_safe_next(request.query.get("next")))
    set_cookie(request, resp, value)
    set_device_cookie(request, resp, device)
    resp.del_cookie(LOGIN_COOKIE, path="/")
    raise resp


async def logout(request: web.Request) -> web.StreamResponse:
    cloud_host_only(request)
    user = await session_user(request)
    resp = web.HTTPSeeOther(f"{PREFIX}/login")
    if user is not None:
        form = await small_form(request)
        if not csrf_ok(request, user, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="CSRF token missing or wrong")
        storage = request.app[CLOUD].storage
        await storage.session_end(request[SESSION_ID], iso(datetime.now(UTC)))
        await storage.audit_add(user["name"], "session", "logout", user["scope"], "", "", 200)
    clear_cookie(resp)
    raise resp


BODIES = {
    "overview": """<h1 class="sr">{nav_overview}</h1>
<section class="kpis" id="kpis" aria-live="polite"></section>
<div class="cols">
<section class="card grow"><h2>{area_tree}</h2><div id="tree">{loading}</div></section>
<section class="card"><h2>{map}</h2><div id="map"></div></section>
</div>""",
    "alerts": """<h1 class="sr">{nav_alerts}</h1>
<form class="filters card" id="filters">
<label>{level}<select name="level"><option value="">{all}</option>
<option value="critical">{critical}</option><option value="warning">{warning}</option>
<option value="info">{info}</option></select></label>
<label>{type}<input name="type" size="14"></label>
<label>{area}<input name="area" size="14"></label>
<button type="button" id="sound">{sound_on}</button>
<span id="live" class="live" aria-live="polite"></span>
</form>
<section class="card"><ol id="alerts" class="feed" aria-live="polite"></ol></section>""",
    "reports": """<h1 class="sr">{nav_reports}</h1>
<form class="filters card" id="filters">
<label>{search}<input name="q" size="18" type="search"></label>
<label>{category}<select name="category" data-options="cat">
<option value="">{all}</option></select></label>
<label>{urgency}<select name="urgency" data-options="urg">
<option value="">{all}</option></select></label>
<label>{area}<input name="area" size="12" pattern="[a-z0-9][a-z0-9_\\-]*"></label>
<label>{weeks}<select name="weeks"><option>4</option><option selected>12</option>
<option>26</option><option>52</option></select></label>
<button type="submit" class="primary">{apply}</button>
</form>
<div class="cols">
<section class="card grow"><h2>{mood_weekly}</h2><div id="mood">{loading}</div></section>
<section class="card"><h2>{category_mix}</h2><div id="cats"></div></section>
</div>
<section class="card"><h2>{heat_table}</h2><div id="heat" class="scroll"></div></section>
<section class="card"><h2>{report_list}</h2><div id="reports">{loading}</div>
<button type="button" id="more" hidden>{more}</button></section>""",
    "tickets": """<h1 class="sr">{nav_tickets}</h1>
<form class="filters card" id="filters">
<label>{area}<input name="area" size="12" pattern="[a-z0-9][a-z0-9_\\-]*"></label>
<button type="submit" class="primary">{apply}</button>
<span class="muted">{refreshing}</span></form>
<div id="board" class="board">{loading}</div>""",
    "content": """<h1 class="sr">{nav_content}</h1>
<div class="cols">
<section class="card grow"><h2>{publish_title}</h2>
<form id="publish" class="stack">
<div class="row">
<label>{file}<input type="file" name="file" accept="image/*,video/mp4"></label>
<label class="grow">{notice_text}<input name="notice" maxlength="500"></label>
</div>
<div class="row">
<label>{title}<input name="title" required maxlength="200" size="18"></label>
<label>{duration_s}<input name="duration" type="number" min="1" max="3600" value="10"></label>
</div>
<fieldset><legend>{targets}</legend><div class="row">
<label>{target_areas}<input name="areas" size="18" pattern="[a-z0-9_, \\-]*"></label>
<label>{target_boxes}<input name="boxes" size="18"></label>
<label>{target_tags}<input name="tags" size="12"></label></div></fieldset>
<fieldset><legend>{daypart}</legend><div class="row">
<span class="weekdays" role="group" aria-label="{weekdays}">
<label><input type="checkbox" name="wd" value="1" checked>{wd1}</label>
<label><input type="checkbox" name="wd" value="2" checked>{wd2}</label>
<label><input type="checkbox" name="wd" value="3" checked>{wd3}</label>
<label><input type="checkbox" name="wd" value="4" checked>{wd4}</label>
<label><input type="checkbox" name="wd" value="5" checked>{wd5}</label>
<label><input type="checkbox" name="wd" value="6" checked>{wd6}</label>
<label><input type="checkbox" name="wd" value="7" checked>{wd7}</label></span>
<label>{start_time}<input name="start" type="time" value="00:00"></label>
<label>{end_time}<input name="end" type="time" value="00:00"></label>
<label>{date_from}<input name="date_from" type="date"></label>
<label>{date_to}<input name="date_to" type="date"></label>
<label>{priority}<input name="priority" type="number" value="10" min="-1000" max="1000"></label>
</div></fieldset>
<button type="submit" class="primary">{publish}</button>
<output id="publish-result" aria-live="polite"></output>
</form></section>
<section class="card"><h2>{emergency_title}</h2>
<form id="emergency" class="stack">
<label>{title}<input name="title" maxlength="200"></label>
<label>{em_message}<textarea name="message" required maxlength="2000" rows="3"></textarea></label>
<label>{level}<select name="level"><option value="critical">{critical}</option>
<option value="warning">{warning}</option><option value="info">{info}</option></select></label>
<label>{em_minutes}<input name="minutes" type="number" min="1" max="10080" value="60"></label>
<label>{target_areas}<input name="areas" size="18"></label>
<label>{target_tags}<input name="tags" size="12"></label>
<button type="submit" class="danger">{em_prepare}</button>
<div id="em-confirm" class="confirm" hidden role="alertdialog" aria-labelledby="em-q">
<p id="em-q"><b>{em_confirm_q}</b></p><p id="em-summary"></p>
<button type="button" id="em-go" class="danger">{em_confirm}</button>
<button type="button" id="em-back">{cancel}</button></div>
<output id="em-result" aria-live="polite"></output>
</form></section>
</div>
<section class="card"><h2>{preview_title}</h2>
<form id="preview" class="filters">
<label>{box}<input name="box" required size="18"></label>
<label>{screen_id}<input name="screen" size="10" value="scr-1"></label>
<label>{target_tags}<input name="tags" size="12"></label>
<label>{at_time}<input name="at" type="datetime-local"></label>
<button type="submit" class="primary">{preview}</button>
<span class="muted">{preview_note}</span></form>
<div id="preview-out" aria-live="polite"></div></section>
<section class="card"><h2>{play_stats}</h2><div id="plays">{loading}</div></section>""",
    "fleet": """<h1 class="sr">{nav_fleet}</h1>
<section class="card" id="rollouts-card"><h2>{ro_title}</h2>
<form id="rollout" class="filters admin-only">
<label>{ro_version}<input name="version" required size="10" pattern="[A-Za-z0-9][A-Za-z0-9.+_~\\-]*"
></label>
<label>{target_areas}<input name="areas" size="14" pattern="[a-z0-9_, \\-]*"></label>
<label>{target_boxes}<input name="boxes" size="14"></label>
<label>{ro_waves}<input name="waves" size="12" value="1, 10%, 100%"></label>
<label>{ro_timeout}<input name="timeout" type="number" min="1" max="10080" value="60"></label>
<label>{ro_url}<input name="url" type="url" size="18"></label>
<label>{ro_sha}<input name="sha256" size="12" pattern="[0-9a-f]{{64}}"></label>
<button type="submit" class="primary">{ro_prepare}</button>
<div id="ro-confirm" class="confirm" hidden role="alertdialog" aria-labelledby="ro-q">
<p id="ro-q"><b>{ro_confirm_q}</b></p><p id="ro-summary"></p>
<button type="button" id="ro-go" class="danger">{ro_go}</button>
<button type="button" id="ro-back">{cancel}</button></div>
<output id="ro-result" aria-live="polite"></output></form>
<div id="rollouts" aria-live="polite">{loading}</div></section>
<section class="card"><h2>{claim_title}</h2>
<form id="claim" class="filters">
<label>{community}<input name="community" required size="16"
 pattern="[a-z0-9][a-z0-9_\\-]*"></label>
<label>{claim_ttl}<input name="ttl" type="number" min="1" max="2160" value="72"></label>
<button type="submit" class="primary">{claim_make}</button>
<output id="claim-result" aria-live="polite"></output></form></section>
<section class="card"><h2>{fleet_boxes}</h2><div id="fleet" class="scroll">{loading}</div>
<button type="button" id="more" hidden>{more}</button></section>""",
    "stats": """<h1 class="sr">{nav_stats}</h1>
<form class="filters card" id="filters">
<label>{area}<input name="area" size="12" pattern="[a-z0-9][a-z0-9_\\-]*"></label>
<label>{st_days}<select name="days"><option>7</option><option selected>30</option>
<option>90</option><option>365</option></select></label>
<button type="submit" class="primary">{apply}</button>
<output id="st-since" class="muted" aria-live="polite"></output>
<span class="muted">{st_note}</span></form>
<div class="cols">
<section class="card grow"><h2>{st_plays_by_item}</h2>
<div id="plays-items">{loading}</div></section>
<section class="card grow"><h2>{st_reads_by_item}</h2>
<div id="reads-items">{loading}</div></section>
</div>
<section class="card"><h2>{st_by_area}</h2>
<div id="areas" class="scroll">{loading}</div></section>""",
    "library": """<h1 class="sr">{nav_library}</h1>
<div class="cols">
<section class="card grow"><h2>{lib_files}</h2><div id="library" class="scroll">{loading}</div>
<button type="button" id="more" hidden>{more}</button></section>
<div class="side">
<section class="card admin-only"><h2>{lib_upload}</h2>
<form id="upload" class="stack">
<label>{title}<input name="title" required maxlength="200" size="24"></label>
<label>{lib_file}<input type="file" name="file" accept="image/*,video/mp4"></label>
<label>{lib_notice}<textarea name="notice" maxlength="2000" rows="3"></textarea></label>
<button type="submit" class="primary">{lib_upload}</button>
<output id="upload-result" aria-live="polite"></output></form></section>
<section class="card admin-only"><h2>{lib_reuse}</h2>
<form id="reuse" class="stack">
<p id="picked" class="muted" aria-live="polite"></p>
<label>{lib_playlist}<input name="title" required maxlength="200" size="24"></label>
<div class="row">
<label>{duration_s}<input name="duration" type="number" min="1" max="3600" value="10"></label>
<label>{priority}<input name="priority" type="number" value="10" min="-1000" max="1000"></label>
</div>
<label>{target_areas}<input name="areas" size="24" pattern="[a-z0-9_, \\-]*"></label>
<label>{target_boxes}<input name="boxes" size="24"></label>
<label>{target_tags}<input name="tags" size="12"></label>
<div class="row">
<label>{start_time}<input name="start" type="time" value="00:00"></label>
<label>{end_time}<input name="end" type="time" value="00:00"></label>
</div>
<button type="submit" class="primary">{publish}</button>
<output id="reuse-result" aria-live="polite"></output></form></section>
</div></div>""",
    "audit": """<h1 class="sr">{nav_audit}</h1>
<form class="filters card" id="filters"><label>{actor}<input name="actor" size="16"></label>
<button type="submit">{filter}</button></form>
<section class="card"><div id="audit">{loading}</div>
<button type="button" id="more" hidden>{more}</button></section>""",
}


def page_handler(page: str) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        cloud_host_only(request)
        user = await session_user(request)
        if user is None:
            expired = "&expired=1" if request.cookies.get("qilu_ops") else ""
            raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path)}{expired}")
        lang = lang_of(request)
        t = strings(lang)
        shell = Shell(
            "cloud_title",
            f"{PREFIX}/static",
            "/api/v1/ops",
            NAV,
            user["name"],
            user["role"],
            user["scope"],
            user["csrf"],
            f"{PREFIX}/logout",
        )
        words = {**t, **cloud_strings(lang)}
        body = BODIES[page].format(**{k: esc(v) for k, v in words.items()})
        return html_response(
            request, with_cloud_assets(render(shell, lang, page, f"nav_{page}", body), lang)
        )

    handler.__name__ = f"page_{page}"
    return handler


@cache
def cloud_strings(lang: str) -> dict[str, str]:
    data = json.loads((CLOUD_STATIC / "i18n.json").read_text(encoding="utf-8"))
    return data[lang if lang in data else "zh"]


def with_cloud_assets(page: str, lang: str) -> str:
    """The cloud pages' own style, words and script after the shared ones (common/console.py
    renders the frame for both consoles; this adds to it without changing it). Deferred
    scripts run in order, so cloud.js finds console.js's helpers."""
    words = json.dumps(cloud_strings(lang), ensure_ascii=False).replace("<", "\\u003c")
    extra = (
        f'<link rel="stylesheet" href="{CLOUD_STATIC_URL}/cloud.css">\n'
        f'<script type="application/json" id="i18n-cloud">{words}</script>\n'
        f'<script src="{CLOUD_STATIC_URL}/cloud.js" defer></script>\n'
    )
    return page.replace("</head>", extra + "</head>", 1)


async def root(request: web.Request) -> web.StreamResponse:
    cloud_host_only(request)
    raise web.HTTPSeeOther(f"{PREFIX}/overview")


def install(app: web.Application) -> None:
    api.install(app)
    app[LOGIN_LOCKS] = {}
    app.router.add_get("/", root)
    app.router.add_get(PREFIX, root)
    app.router.add_get(f"{PREFIX}/", root)
    app.router.add_get(f"{PREFIX}/login", login_page)
    app.router.add_post(f"{PREFIX}/login", login_post)
    app.router.add_post(f"{PREFIX}/logout", logout)
    for page in BODIES:
        app.router.add_get(f"{PREFIX}/{page}", page_handler(page))
    app.router.add_static(f"{PREFIX}/static", STATIC_DIR)
    app.router.add_static(CLOUD_STATIC_URL, CLOUD_STATIC)
