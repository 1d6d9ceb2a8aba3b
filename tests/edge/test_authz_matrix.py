"""The box's authorisation matrix: every route of a real box (all services, two doors, a door
screen) x every caller kind, with the expected answer written once in :data:`EXPECT`
(issue 13). Path parameters are real ids from a seeded box: the objects named in paths
belong to resident r-101 (building 1, door d-1), so ``resident`` is the owner and ``other``
(r-202, building 2, door d-2) a neighbour. ``/r/`` pages answer 303 to /r/login without a
session; their 303s carry the outcome in the Location (checked with "~words").

Set QILU_AUTHZ_OBSERVE=1 to print what every caller gets (to classify a new route).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest

from tests.authz import coverage, fill, matches, routes_of, row
from tests.conftest import STAFF_TOKEN, api_url
from tests.edge.portal.helpers import login

# "panel": a keypad / QR panel's token bound to door d-1 (security probe 2026-11): only the
# PIN / QR / call-panel routes of its own door; every other /api/ route refuses it (403).
CALLERS = ("none", "wrong", "resident", "other", "staff", "screen", "panel")
PANEL_TOKEN = "test-panel-token-0123456789"
EXTRA = """
[[api.tokens]]
name = "panel-d1"
role = "panel"
doors = ["d-1"]
token = "test-panel-token-0123456789"

[portal]
stats_interval_s = 3600
max_login_failures = 1000  # the matrix sends wrong codes on purpose

[[doors]]
id = "d-1"
type = "sim"
building = "1"

[[doors]]
id = "d-2"
type = "sim"
building = "2"

[[screens]]
id = "scr-1"
type = "sim"
door = "d-1"

[[screens]]
id = "scr-2"
type = "sim"
"""

# The screen device credential (issue 13 #2): a per-screen key provisioned by staff, sent
# as X-Screen-Key (or ?key= on the WebSocket). seed() provisions scr-1's key.
SCREEN_KEY: dict[str, str] = {}


def screen_headers() -> dict[str, str]:
    return dict(SCREEN_KEY)


API = {"none": 401, "wrong": 401, "screen": 401}  # /api/ routes without a valid bearer
STAFF_ONLY = row(CALLERS, 403, **API, staff="2xx")
STAFF_AUTH = row(CALLERS, 403, **API, staff="auth")  # staff passes; the body decides the rest
PUBLIC = row(CALLERS, "2xx")
# A resident's own API (portal session); staff tokens are not residents.
RESIDENT_API = row(CALLERS, 403, **API, resident="2xx", other="2xx")
# /r/ pages: no session -> the login page.
PAGE = row(CALLERS, "303~/r/login", resident="2xx", other="2xx")
# Screen routes: the screen's own device key; staff tokens and sessions are not screens.
SCREEN = row(CALLERS, 401, screen="2xx")

# Staff acting on objects named in paths that the seed did not make (or bodies the route
# refuses): "auth" = got past authentication and authorisation; the table is about who.
RES_PAGE_POST = row(CALLERS, "303~/r/login")  # a /r/ form post without a session

EXPECT: dict[tuple[str, str], dict[str, Any]] = {
    # --- public: health, status, static files, the login forms ----------------------------
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/api/v1/status"): PUBLIC,  # box id, versions, outbox counts: no personal data
    ("GET", "/api/v1/taxonomy"): PUBLIC,
    ("GET", "/api/v1/openapi.json"): PUBLIC,  # the API's shape, no data
    ("GET", "/api/v1/reports/challenge"): PUBLIC,  # proof of work for anonymous relay reports
    ("GET", "/installer/app.js"): PUBLIC,
    ("GET", "/r/dwell.js"): PUBLIC,
    ("GET", "/api/v1/tickets/faults"): PUBLIC,
    ("GET", "/installer"): row(CALLERS, 302),
    ("GET", "/installer/"): PUBLIC,  # the page; its API calls need the staff token
    ("GET", "/r"): row(CALLERS, 302),
    ("GET", "/r/"): PUBLIC,
    ("GET", "/r/static"): PUBLIC,
    ("POST", "/r/prefs"): row(CALLERS, "303~/r/"),  # large text: a cookie, + the login's
    ("GET", "/r/login"): PUBLIC,
    ("POST", "/r/login"): row(CALLERS, 401),  # a wrong code for everyone
    ("POST", "/api/v1/portal/login"): row(CALLERS, 401),
    ("GET", "/screen/sw.js"): PUBLIC,
    ("GET", "/screen/static/{name}"): PUBLIC,
    # Content files by SHA-256 (a capability: the screens are public displays); unknown: 404.
    ("GET", "/screen/content/{sha}"): row(CALLERS, 404),
    # Residents report and ask for repairs without an account; staff read them. Reading one
    # needs the follow key given at submission (its owner's session alone is not enough).
    ("POST", "/api/v1/reports"): PUBLIC,
    ("POST", "/api/v1/reports/classify"): PUBLIC,
    ("GET", "/api/v1/reports"): row(CALLERS, "401|403", staff="2xx"),
    ("GET", "/api/v1/reports/{id}"): row(CALLERS, "401|403", staff="2xx"),
    ("POST", "/api/v1/reports/{id}/status"): row(CALLERS, "401|403", staff="2xx"),
    ("POST", "/api/v1/reports/{id}/correction"): row(CALLERS, "401|403", staff="2xx"),
    ("POST", "/api/v1/tickets"): PUBLIC,
    ("GET", "/api/v1/tickets"): row(CALLERS, "401|403", staff="2xx"),
    ("GET", "/api/v1/tickets/{id}"): row(CALLERS, "401|403", staff="2xx"),
    # confirm: a resident needs the follow key; staff pass but the ticket is not resolved.
    ("POST", "/api/v1/tickets/{id}/{action}"): row(CALLERS, "401|403", staff="409"),
    # --- staff only -----------------------------------------------------------------------
    ("GET", "/api/v1/alerts"): STAFF_ONLY,
    ("GET", "/api/v1/photos/{id}"): row(CALLERS, 403, **API, staff=404),
    ("GET", "/api/v1/access/blocks"): STAFF_ONLY,
    ("POST", "/api/v1/access/blocks"): STAFF_AUTH,
    ("DELETE", "/api/v1/access/blocks/{id}"): STAFF_ONLY,
    ("GET", "/api/v1/access/events"): STAFF_ONLY,
    ("GET", "/api/v1/access/events/{id}/thumbnail.jpg"): STAFF_AUTH,  # a face: staff only; 404
    ("GET", "/api/v1/residents"): STAFF_ONLY,
    ("POST", "/api/v1/residents"): STAFF_ONLY,
    ("GET", "/api/v1/residents/{rid}"): STAFF_ONLY,  # not even the resident (face data)
    ("DELETE", "/api/v1/residents/{rid}"): STAFF_AUTH,
    ("POST", "/api/v1/residents/{rid}/photos"): STAFF_AUTH,
    ("GET", "/api/v1/residents/{id}/access"): STAFF_ONLY,
    ("PUT", "/api/v1/residents/{id}/access"): STAFF_ONLY,
    ("POST", "/api/v1/faces/identify"): STAFF_AUTH,
    ("POST", "/api/v1/faces/wrong-match"): STAFF_AUTH,
    # The keypad and QR panels hold staff-role tokens; a wrong PIN / QR is a refused entry.
    # (Panels hold a panel token bound to their door: d-1 here, tests/edge/access/test_panel.py
    # checks another door.)
    ("POST", "/api/v1/doors/{id}/pin"): row(CALLERS, 403, **API, staff='403~"granted": false',
                                            panel='403~"granted": false'),
    ("POST", "/api/v1/doors/{id}/qr"): row(CALLERS, 403, **API, staff='403~"granted": false',
                                           panel='403~"granted": false'),
    # Face doors' second factor: a resident's own PIN (staff or themselves), the phone's
    # confirmation (only the resident the door recognised; nothing waits in the matrix: 409).
    ("PUT", "/api/v1/residents/{id}/pin"): row(CALLERS, 403, **API, resident="2xx",
                                               staff="2xx"),
    ("DELETE", "/api/v1/residents/{id}/pin"): row(CALLERS, 403, **API, resident="2xx",
                                                  staff="2xx"),
    ("POST", "/api/v1/doors/{id}/confirm"): row(CALLERS, 403, **API, resident=409, other=409),
    ("GET", "/api/v1/access/challenges"): row(CALLERS, "2xx", **API, panel=403),
    ("GET", "/api/v1/installer/setup"): STAFF_ONLY,
    ("POST", "/api/v1/installer/setup"): STAFF_AUTH,
    ("POST", "/api/v1/installer/setup/validate"): STAFF_AUTH,
    ("POST", "/api/v1/installer/provision"): STAFF_AUTH,
    ("POST", "/api/v1/installer/modbus-scan"): STAFF_AUTH,
    ("GET", "/api/v1/installer/doctor"): STAFF_ONLY,
    ("POST", "/api/v1/installer/doctor"): STAFF_ONLY,
    ("GET", "/api/v1/sync/status"): STAFF_ONLY,
    ("POST", "/api/v1/sync/rotate"): STAFF_AUTH,  # 409: this box is not provisioned
    ("GET", "/api/v1/screens"): STAFF_ONLY,
    ("POST", "/api/v1/screens"): STAFF_AUTH,
    ("GET", "/api/v1/screens/content"): STAFF_ONLY,
    ("POST", "/api/v1/screens/content"): STAFF_AUTH,
    ("PUT", "/api/v1/screens/content/{content_id}/file"): STAFF_AUTH,
    ("GET", "/api/v1/screens/playlists"): STAFF_ONLY,
    ("POST", "/api/v1/screens/playlists"): STAFF_AUTH,
    ("GET", "/api/v1/screens/schedules"): STAFF_ONLY,
    ("POST", "/api/v1/screens/schedules"): STAFF_AUTH,
    ("DELETE", "/api/v1/screens/schedules/{entry_id}"): STAFF_AUTH,
    ("GET", "/api/v1/screens/emergencies"): STAFF_ONLY,
    ("POST", "/api/v1/screens/emergencies"): STAFF_AUTH,
    ("POST", "/api/v1/screens/emergencies/{em_id}/cancel"): STAFF_AUTH,
    ("POST", "/api/v1/screens/{screen_id}/key"): STAFF_ONLY,  # on scr-2 (PARAM_OVERRIDES)
    ("DELETE", "/api/v1/screens/{screen_id}/key"): STAFF_AUTH,  # 404: scr-2 has no key yet
    ("GET", "/api/v1/screens/{screen_id}/now"): STAFF_ONLY,
    ("GET", "/api/v1/screens/{screen_id}/plays"): STAFF_ONLY,
    ("POST", "/api/v1/portal/codes"): STAFF_ONLY,
    ("GET", "/api/v1/portal/sessions"): STAFF_ONLY,
    ("POST", "/api/v1/portal/sessions/revoke"): STAFF_ONLY,
    ("POST", "/api/v1/portal/articles"): STAFF_ONLY,
    ("GET", "/api/v1/portal/stats"): STAFF_ONLY,
    ("POST", "/api/v1/portal/stats/flush"): STAFF_ONLY,
    ("POST", "/api/v1/portal/events"): STAFF_ONLY,
    ("POST", "/api/v1/portal/events/{event_id}/attendance"): STAFF_AUTH,  # 404: not signed up
    ("POST", "/api/v1/portal/posts/{post_id}/moderate"): STAFF_ONLY,
    ("GET", "/api/v1/portal/moderation"): STAFF_ONLY,
    # --- doors and passes: residents for themselves, within their door rights --------------
    ("POST", "/api/v1/doors/{id}/open"): row(CALLERS, 403, **API, resident="2xx", staff="2xx"),
    ("POST", "/api/v1/passes"): row(CALLERS, 403, **API, resident="2xx", staff="auth"),
    # a resident's own (leak check)
    ("GET", "/api/v1/passes"): row(CALLERS, "2xx", **API, panel=403),
    ("GET", "/api/v1/passes/{id}"): row(CALLERS, 404, **API, resident="2xx", staff="2xx",
                                        panel=403),
    ("GET", "/api/v1/passes/{id}/qr.png"): row(CALLERS, 404, **API, resident="2xx",
                                                staff="2xx", panel=403),
    ("DELETE", "/api/v1/passes/{id}"): row(CALLERS, 404, **API, resident="2xx", staff="2xx",
                                           panel=403),
    # --- the resident portal API (a portal session; staff tokens are not residents) --------
    ("GET", "/api/v1/portal/me"): RESIDENT_API,
    ("GET", "/api/v1/portal/feed"): RESIDENT_API,
    ("POST", "/api/v1/portal/reads"): RESIDENT_API,
    ("POST", "/api/v1/portal/reads/{read_id}/dwell"): row(CALLERS, 403, **API, resident="2xx",
                                                         other=404),
    ("POST", "/api/v1/portal/acks"): RESIDENT_API,
    ("POST", "/api/v1/portal/logout"): RESIDENT_API,
    ("GET", "/api/v1/portal/events"): row(CALLERS, "2xx", **API, panel=403),
    ("POST", "/api/v1/portal/events/{event_id}/signup"): RESIDENT_API,
    ("DELETE", "/api/v1/portal/events/{event_id}/signup"): row(CALLERS, 403, **API,
                                                               resident="auth", other="auth"),
    ("GET", "/api/v1/portal/posts"): row(CALLERS, "2xx", **API, panel=403),
    ("POST", "/api/v1/portal/posts"): row(CALLERS, "2xx", **API, panel=403),  # staff post notices
    ("POST", "/api/v1/portal/posts/{post_id}/flag"): RESIDENT_API,
    # --- /r/ pages (cookie session; forms answer with a redirect naming the outcome) -------
    ("GET", "/r/read"): PAGE,
    ("GET", "/r/read/{cid}"): PAGE,
    ("POST", "/r/read/{cid}/dwell"): PAGE,
    ("POST", "/r/read/{cid}/ack"): row(CALLERS, "303~/r/login", resident="303~/r/read",
                                       other="303~/r/read"),
    ("GET", "/r/media/{cid}"): row(CALLERS, "303~/r/login", resident=404, other=404),
    ("GET", "/r/events"): PAGE,
    ("POST", "/r/events/{eid}/signup"): row(CALLERS, "303~/r/login", resident="303~/r/events",
                                            other="303~/r/events"),
    ("POST", "/r/events/{eid}/cancel"): row(CALLERS, "303~/r/login", resident="303~/r/events",
                                            other="303~/r/events"),
    ("GET", "/r/board"): PAGE,
    ("POST", "/r/board"): row(CALLERS, "303~/r/login", resident="303~/r/board",
                              other="303~/r/board"),
    ("POST", "/r/board/{pid}/flag"): row(CALLERS, "303~/r/login", resident="303~/r/board",
                                         other="303~/r/board"),
    ("GET", "/r/me"): PAGE,
    # the resident's own reports and tickets (JSON for the report page's progress tab)
    ("POST", "/r/api/mine"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("GET", "/r/doors/{door}/open"): row(CALLERS, "303~/r/login", resident="2xx",
                                         other="303~没有这扇门的权限"),  # the confirmation
    ("POST", "/r/doors/{door}/open"): row(CALLERS, "303~/r/login", resident="303~门已打开",
                                          other="303~没有这扇门的权限"),
    ("POST", "/r/passes"): row(CALLERS, "303~/r/login", resident="2xx",
                               other="303~没有这扇门的权限"),
    ("POST", "/r/passes/{pid}/revoke"): row(CALLERS, "303~/r/login", resident="303~作废",
                                            other=404),
    ("POST", "/r/logout"): row(CALLERS, "303~/r/login"),
    # a visitor's shared pass: no login; only the unguessable token opens it (none here: 404)
    ("GET", "/r/v/{token}"): row(CALLERS, 404),
    # --- the screen player (see SCREEN_KEY) --------------------------------------------------
    # The page shell is public: it must load to read its key from the address fragment.
    ("GET", "/screen/{screen_id}"): PUBLIC,
    ("GET", "/screen/{screen_id}/plan"): SCREEN,
    ("GET", "/screen/{screen_id}/ws"): row(CALLERS, 401, screen=101),
    ("POST", "/screen/{screen_id}/plays"): SCREEN,
    # --- the intercom: door screens by their key, phones of the called flat only ------------
    # seed() dials r-101's flat 1-1-101 from scr-1; r-202 (flat 2-1-202) is the neighbour,
    # for whom the call does not exist (404). Residents' answers depend on the order the
    # table runs them in (answer, decline, ... end the call), hence "auth".
    ("GET", "/intercom/static"): PUBLIC,
    # the call panel is part of the player page now: the old address redirects there
    ("GET", "/screen/{screen_id}/intercom"): row(CALLERS, "302~/screen/scr-1"),
    ("GET", "/screen/{screen_id}/intercom/directory"): SCREEN,
    ("POST", "/screen/{screen_id}/intercom/calls"): row(CALLERS, 401, screen="auth"),
    ("GET", "/screen/{screen_id}/intercom/calls/{call_id}"): SCREEN,
    ("POST", "/screen/{screen_id}/intercom/calls/{call_id}/hangup"): SCREEN,
    ("GET", "/r/intercom"): PAGE,
    ("GET", "/r/intercom/manifest.webmanifest"): PUBLIC,
    ("GET", "/r/intercom/sw.js"): PUBLIC,
    ("GET", "/r/intercom/static/{name}"): PUBLIC,
    ("GET", "/r/intercom/ws"): row(CALLERS, 401, resident=101, other=101),
    ("GET", "/r/intercom/poll"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("GET", "/r/intercom/rtc"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("GET", "/r/intercom/push"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("POST", "/r/intercom/push"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("POST", "/r/intercom/push/remove"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("GET", "/r/intercom/calls/{call_id}/snapshot.jpg"): row(CALLERS, 401, resident="auth",
                                                             other=404),
    ("POST", "/r/intercom/calls/{call_id}/answer"): row(CALLERS, 401, resident="2xx",
                                                        other=404),
    ("POST", "/r/intercom/calls/{call_id}/decline"): row(CALLERS, 401, resident="auth",
                                                         other=404),
    ("POST", "/r/intercom/calls/{call_id}/later"): row(CALLERS, 401, resident="auth",
                                                       other=404),
    ("POST", "/r/intercom/calls/{call_id}/open"): row(CALLERS, 401, resident="auth",
                                                      other=404),
    ("POST", "/r/intercom/calls/{call_id}/rtc"): row(CALLERS, 401, resident="auth",
                                                     other=404),
    ("GET", "/api/v1/intercom/calls"): STAFF_ONLY,
    ("POST", "/api/v1/intercom/calls"): row(CALLERS, 403, **API, staff="auth", panel="auth"),
    # --- the property office (edge/office): pages need its own session cookie, which no
    # caller here has (tests/edge/office/ signs in); its API routes are staff routes -------
    ("GET", "/office"): row(CALLERS, "303~/office/today"),
    ("GET", "/office/"): row(CALLERS, "303~/office/today"),
    ("GET", "/office/login"): PUBLIC,
    ("POST", "/office/login"): row(CALLERS, 403),  # no sign-in form token
    ("POST", "/office/logout"): row(CALLERS, "303~/office/login"),
    **{("GET", f"/office/{p}"): row(CALLERS, "303~/office/login") for p in (
        "today", "tickets", "residents", "doors", "passes", "blocks", "moderation", "devices",
        "log", "audit")},
    ("GET", "/office/static"): PUBLIC,
    ("GET", "/office/app"): PUBLIC,
    ("GET", "/api/v1/audit"): STAFF_ONLY,
    ("GET", "/api/v1/office/devices"): STAFF_ONLY,
    ("GET", "/api/v1/office/cameras/{id}/snapshot.jpg"): row(CALLERS, 403, **API, staff=404),
    ("POST", "/api/v1/office/face-check"): STAFF_AUTH,  # 415: not multipart
    # --- the second factor at face doors as pages (edge/portal/factor_pages.py): the
    # resident's own PIN, the phone's prompt (nothing waits in the matrix: 409), the door
    # screen's keypad by the screen's key ---------------------------------------------------
    ("GET", "/r/pin"): PAGE,
    ("POST", "/r/pin"): row(CALLERS, "303~/r/login", resident="303~开门密码已保存",
                            other="303~开门密码已保存"),
    ("POST", "/r/pin/remove"): row(CALLERS, "303~/r/login", resident="303~开门密码已删除",
                                   other="303~开门密码已删除"),
    ("GET", "/r/api/factor"): row(CALLERS, 401, resident="2xx", other="2xx"),
    ("POST", "/r/api/factor/{door}/confirm"): row(CALLERS, 401, resident=409, other=409),
    ("POST", "/r/api/factor/{door}/refuse"): row(CALLERS, 401, resident=409, other=409),
    ("GET", "/screen/{screen_id}/factor"): SCREEN,
    ("POST", "/screen/{screen_id}/factor/pin"): row(CALLERS, 401, screen=409),
}  # fmt: skip


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def seed(base: str) -> dict[str, Any]:
    """Residents, sessions and one object of each kind owned by r-101; their ids."""
    staff = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    ids: dict[str, Any] = {}
    async with aiohttp.ClientSession() as s:

        async def call(method: str, path: str, headers: dict, **kw: Any) -> Any:
            async with s.request(method, base + path, headers=headers, **kw) as r:
                body = await r.json(content_type=None)
                assert r.status < 300, (path, r.status, body)
                return body

        for rid, building, door in (("r-101", "1", "d-1"), ("r-202", "2", "d-2")):
            await call("POST", "/api/v1/residents", staff, json={
                "id": rid, "name": rid, "building": building, "unit": "1", "room": rid[2:],
            })  # fmt: skip
            await call("PUT", f"/api/v1/residents/{rid}/access", staff, json={"doors": [door]})
            ids[rid] = await login(s, base, rid, building)
        mine = ids["r-101"]
        p = await call("POST", "/api/v1/passes", mine,
                       json={"doors": ["d-1"], "valid_to": in_an_hour()})  # fmt: skip
        ids["pass"] = p["id"]
        rep = await call("POST", "/api/v1/reports", mine, json={"text": "楼道灯坏了"})
        ids["report"] = rep["id"]
        t = await call("POST", "/api/v1/tickets", mine, json={"title": "水管漏水"})
        ids["ticket"] = t["id"]
        await call("POST", "/api/v1/portal/articles", staff,
                   json={"id": "art-1", "title": "停水通知", "body": "明天停水。"})  # fmt: skip
        rd = await call("POST", "/api/v1/portal/reads", mine, json={"content_id": "art-1"})
        ids["read"] = rd.get("read_id") or rd.get("id")
        await call("POST", "/api/v1/portal/events", staff, json={
            "id": "ev-1", "title": "义诊", "starts_at": in_an_hour(), "ends_at": in_an_hour(),
            "capacity": 10,
        })  # fmt: skip
        post = await call("POST", "/api/v1/portal/posts", mine, json={"title": "闲置自行车"})
        ids["post"] = post["id"]
        blk = await call("POST", "/api/v1/access/blocks", staff, json={"resident_id": "r-202"})
        ids["block"] = blk["id"]
        ids["category"] = (await call("GET", "/api/v1/taxonomy", {}))["categories"][0]["code"]
        key = await call("POST", "/api/v1/screens/scr-1/key", staff)
        SCREEN_KEY["X-Screen-Key"] = key["key"]
        rung = await call("POST", "/screen/scr-1/intercom/calls", screen_headers(),
                          json={"flat": "1-1-101"})  # fmt: skip
        ids["call"] = rung["id"]
        # What callers other than r-101 and staff must never see in an answer.
        ids["secrets"] = [
            ids["pass"],
            ids["report"],
            ids["ticket"],
            rep["follow_key"],
            t["follow_key"],
            mine["Authorization"].removeprefix("Bearer "),
        ]
    return ids


async def request_as(
    s: aiohttp.ClientSession, base: str, caller: str, ids: dict[str, Any], method: str,
    path: str, body: Any,
) -> tuple[int, str]:  # fmt: skip
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if caller == "wrong":
        headers["Authorization"] = "Bearer not-a-token-but-long-enough-0000"
        cookies["qilu_rs"] = "not-a-session-but-long-enough-0000"
    elif caller == "staff":
        headers["Authorization"] = f"Bearer {STAFF_TOKEN}"
    elif caller in ("resident", "other"):
        auth = ids["r-101" if caller == "resident" else "r-202"]
        headers.update(auth)
        cookies["qilu_rs"] = auth["Authorization"].removeprefix("Bearer ")
    elif caller == "screen":
        headers.update(screen_headers())
    elif caller == "panel":
        headers["Authorization"] = f"Bearer {PANEL_TOKEN}"
    kw: dict[str, Any] = {}
    if isinstance(body, dict) and body.get("_form"):
        kw["data"] = {k: v for k, v in body.items() if k != "_form"}
    elif isinstance(body, bytes):
        kw["data"] = body
    elif body is not None:
        kw["json"] = body
    s.cookie_jar.clear()
    s.cookie_jar.update_cookies(cookies)
    async with s.request(method, base + path, headers=headers, allow_redirects=False, **kw) as r:
        text = unquote(r.headers.get("Location", "")) if 300 <= r.status < 400 else ""
        return r.status, text or (await r.read())[:300].decode("utf-8", "replace")


# Which id fills each {name}, per route prefix (the first matching prefix wins).
PARAMS: list[tuple[str, dict[str, str]]] = [
    ("/api/v1/doors/", {"id": "=d-1"}),
    ("/api/v1/passes/", {"id": "pass"}),
    ("/api/v1/residents/", {"id": "=r-101", "rid": "=r-101"}),
    ("/api/v1/access/blocks/", {"id": "block"}),
    ("/api/v1/access/events/", {"id": "=ae-none"}),
    ("/api/v1/reports/", {"id": "report"}),
    ("/api/v1/photos/", {"id": "=ph-none"}),
    ("/api/v1/tickets/", {"id": "ticket", "action": "=confirm"}),
    ("/api/v1/portal/", {"read_id": "read", "event_id": "=ev-1", "post_id": "post"}),
    ("/api/v1/screens/", {"screen_id": "=scr-1", "content_id": "=ci-none",
                          "entry_id": "=e-none", "em_id": "=em-none"}),
    ("/screen/static/", {"name": "=player.js"}),
    ("/screen/content/", {"sha": "=" + "0" * 64}),
    ("/screen/", {"screen_id": "=scr-1", "call_id": "call"}),
    ("/r/intercom/static/", {"name": "=phone.js"}),
    ("/api/v1/office/", {"id": "=cam-none"}),
    ("/r/", {"cid": "=art-1", "eid": "=ev-1", "pid": "post", "door": "=d-1",
             "call_id": "call", "token": "=no-such-link"}),
]  # fmt: skip
PARAM_OVERRIDES = {  # destructive routes act on objects of their own
    ("DELETE", "/api/v1/residents/{rid}"): {"rid": "=r-303"},
    ("POST", "/r/passes/{pid}/revoke"): {"pid": "pass2"},
    # a new key (or none) for scr-2, so scr-1's key stays valid for the screen caller
    ("POST", "/api/v1/screens/{screen_id}/key"): {"screen_id": "=scr-2"},
    ("DELETE", "/api/v1/screens/{screen_id}/key"): {"screen_id": "=scr-2"},
}
STATIC_PATHS = {  # add_static's pattern has no file
    "/r/static": "/r/static/index.html", "/intercom/static": "/intercom/static/door.js",
    "/office/static": "/office/static/console.css", "/office/app": "/office/app/office.js",
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/doors/{id}/pin"): {"pin": "000000"},
    ("POST", "/api/v1/doors/{id}/qr"): {"text": "not-a-pass"},
    ("PUT", "/api/v1/residents/{id}/pin"): {"pin": "482916"},
    ("POST", "/api/v1/passes"): lambda ids: {"doors": ["d-1"], "valid_to": in_an_hour()},
    ("PUT", "/api/v1/residents/{id}/access"): {"doors": ["d-1"]},
    ("POST", "/api/v1/access/blocks"): {"resident_id": "r-303"},
    ("POST", "/api/v1/residents"): {"id": "r-404", "name": "新住户"},
    ("POST", "/api/v1/reports"): {"text": "电梯异响"},
    ("POST", "/api/v1/reports/classify"): {"text": "电梯异响"},
    ("POST", "/api/v1/reports/{id}/status"): {"status": "in_progress"},
    ("POST", "/api/v1/reports/{id}/correction"): {"urgency": "high"},
    ("POST", "/api/v1/tickets"): {"title": "门禁坏了"},
    ("POST", "/api/v1/tickets/{id}/{action}"): {"note": "好"},
    ("POST", "/api/v1/portal/login"): {"code": "00000000"},
    ("POST", "/api/v1/portal/reads"): {"content_id": "art-1"},
    ("POST", "/api/v1/portal/reads/{read_id}/dwell"): {"dwell_ms": 1000},
    ("POST", "/api/v1/portal/acks"): {"content_id": "art-1"},
    ("POST", "/api/v1/portal/codes"): {"resident_id": "r-303", "building": "3"},
    ("POST", "/api/v1/portal/sessions/revoke"): {"resident_id": "r-303"},
    ("POST", "/api/v1/portal/articles"): {"title": "通知", "body": "内容"},
    ("POST", "/api/v1/portal/events"): {"title": "活动", "starts_at": "2099-01-01T08:00:00+00:00",
                                        "ends_at": "2099-01-01T09:00:00+00:00", "capacity": 5},
    ("POST", "/api/v1/portal/events/{event_id}/attendance"): {"resident_id": "r-101"},
    ("POST", "/api/v1/portal/posts"): {"title": "出租车位"},
    ("POST", "/api/v1/portal/posts/{post_id}/flag"): lambda ids: {"category": ids["category"]},
    ("POST", "/api/v1/portal/posts/{post_id}/moderate"): {"action": "restore"},
    ("POST", "/api/v1/screens/emergencies"): {"message": "演练", "minutes": 1},
    ("POST", "/screen/{screen_id}/plays"): {"records": []},
    ("POST", "/r/login"): {"_form": True, "code": "00000000"},
    ("POST", "/r/board"): {"_form": True, "title": "闲置书架"},
    ("POST", "/r/board/{pid}/flag"): lambda ids: {"_form": True, "category": ids["category"]},
    ("POST", "/r/passes"): {"_form": True, "door": "d-1", "hours": "1"},
    ("POST", "/screen/{screen_id}/intercom/calls"): {"flat": "1-1-101"},
    ("POST", "/api/v1/intercom/calls"): {"door_id": "d-1", "flat": "1-1-101"},
    ("POST", "/r/intercom/calls/{call_id}/rtc"): {"type": "offer", "sdp": "v=0 not an offer"},
    ("POST", "/r/intercom/push"): {"endpoint": "https://push.example/sub-1",
                                   "keys": {"p256dh": "B" * 87, "auth": "A" * 22}},
    ("POST", "/r/intercom/push/remove"): {"endpoint": "https://push.example/sub-1",
                                          "keys": {"p256dh": "B" * 87, "auth": "A" * 22}},
    ("POST", "/r/api/mine"): {"items": []},
    ("POST", "/r/pin"): {"_form": True, "pin": "482916", "pin2": "482916"},
    ("POST", "/screen/{screen_id}/factor/pin"): {"pin": "000000"},
}  # fmt: skip
LAST = ("/api/v1/portal/logout", "/r/logout")  # they end the residents' sessions


def path_of(method: str, pattern: str, ids: dict[str, Any]) -> str:
    if pattern in STATIC_PATHS:
        return STATIC_PATHS[pattern]
    names = next((m for prefix, m in PARAMS if pattern.startswith(prefix)), {})
    names = {**names, **PARAM_OVERRIDES.get((method, pattern), {})}
    values = {k: v[1:] if v.startswith("=") else str(ids[v]) for k, v in names.items()}
    return fill(pattern, values)


async def run_matrix(tmp_path: Path, make_config: Any, run_box: Any) -> None:
    box = await run_box(make_config(extra=EXTRA))
    base = api_url(box)
    observe = os.environ.get("QILU_AUTHZ_OBSERVE") == "1"
    expect = dict(EXPECT)
    if observe:  # unclassified routes get a placeholder so that every route is tried
        for key in routes_of(box.http) - expect.keys():
            expect[key] = row(CALLERS, "?")
    coverage(expect, box.http)
    ids = await seed(base)
    wrong, seen = [], []
    routes = sorted(expect, key=lambda k: (k[1] in LAST, k[1], k[0]))
    async with aiohttp.ClientSession() as s:
        for method, pattern in routes:
            if pattern in LAST:  # fresh sessions: the route ends them
                for rid, building in (("r-101", "1"), ("r-202", "2")):
                    ids[rid] = await login(s, base, rid, building)
            if (method, pattern) == ("POST", "/r/passes/{pid}/revoke"):
                ids["pass2"] = await fresh_pass(s, base, ids)
            path = path_of(method, pattern, ids)
            body = BODIES.get((method, pattern))
            body = body(ids) if callable(body) else body
            expected = expect[(method, pattern)]
            got_row = {}
            for caller in CALLERS:
                if pattern.endswith("/ws"):
                    status, text = await ws_status(s, base + path, caller, ids)
                else:
                    status, text = await request_as(s, base, caller, ids, method, path, body)
                got_row[caller] = status
                leaked = [x for x in ids["secrets"] if x in text] if caller not in (
                    "resident", "staff") else []  # fmt: skip
                if not matches(expected[caller], status, text) or leaked:
                    wrong.append(f"{method} {pattern} as {caller}: expected "
                                 f"{expected[caller]}, got {status} {text[:100]!r}"
                                 + (f" leaking {leaked}" if leaked else ""))  # fmt: skip
            seen.append(f"{method:6} {pattern:55} {json.dumps(got_row)}")
    if observe:
        print("\n".join(seen))
    assert not wrong, "\n".join(wrong)


async def fresh_pass(s: aiohttp.ClientSession, base: str, ids: dict[str, Any]) -> str:
    async with s.post(base + "/api/v1/passes", headers=ids["r-101"],
                      json={"doors": ["d-1"], "valid_to": in_an_hour()}) as r:  # fmt: skip
        assert r.status == 201, await r.text()
        return (await r.json())["id"]


async def ws_status(
    s: aiohttp.ClientSession, url: str, caller: str, ids: dict[str, Any]
) -> tuple[int, str]:
    headers = screen_headers() if caller == "screen" else {}
    if caller in ("staff", "panel"):
        token = STAFF_TOKEN if caller == "staff" else PANEL_TOKEN
        headers = {"Authorization": f"Bearer {token}"}
    s.cookie_jar.clear()  # a resident's socket (the phone page's) carries the session cookie
    if caller in ("resident", "other"):
        auth = ids["r-101" if caller == "resident" else "r-202"]["Authorization"]
        s.cookie_jar.update_cookies({"qilu_rs": auth.removeprefix("Bearer ")})
    try:
        async with s.ws_connect(url.replace("http", "ws", 1), headers=headers) as ws:
            await ws.close()
            return 101, ""
    except aiohttp.WSServerHandshakeError as e:
        return e.status, e.message


async def test_every_box_route_for_every_caller(tmp_path: Path, make_config, run_box) -> None:
    await run_matrix(tmp_path, make_config, run_box)


def test_a_route_without_an_entry_fails_the_matrix() -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/api/v1/new-thing", handler)
    with pytest.raises(AssertionError, match=r"no entry.*new-thing"):
        coverage({}, app)
    with pytest.raises(AssertionError, match=r"no longer exist.*gone"):
        coverage({("GET", "/api/v1/new-thing"): {}, ("GET", "/gone"): {}}, app)
