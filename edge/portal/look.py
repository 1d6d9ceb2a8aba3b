"""The one look of the resident app /r/: the page frame (header with the community's name and
the large-text switch, the bottom tab bar), messages, and times in the community's zone.

The report page (static/index.html) and the server-rendered portal pages both use it, so they
look and navigate the same. Large text (适老化) is a cookie the pages read on the server (no
flash of small text, no script needed) and, for a logged-in resident, a stored preference
that is put back into the cookie at login on any phone.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web

SESSION_COOKIE = "qilu_rs"  # the resident's login (edge/portal/service.py), HttpOnly
# On every page of a logged-in resident: the prompt when a door waits for their confirmation
# (edge/portal/factor_pages.py).
FACTOR_JS = "/r/static/factor.js"
BIG_COOKIE = "qilu_big"  # "1": large text; readable by the page script too (not HttpOnly)
BIG_MAX_AGE = 400 * 24 * 3600  # browsers cap cookies at 400 days


@dataclass(frozen=True)
class Look:
    community: str  # shown in every page's header
    tz: ZoneInfo  # the community's time zone ([box] timezone): every time a resident reads


LOOK = web.AppKey("portal_look", Look)

# (path, label, icon path data): the same five places at the bottom of every page.
TABS = (
    ("/r/", "报事", '<path d="M4 20h4L20 8l-4-4L4 16z"/><path d="M14 6l4 4"/>'),
    ("/r/read", "阅读", '<path d="M3 5h7a2 2 0 0 1 2 2v13H5a2 2 0 0 1-2-2z"/>'
                        '<path d="M21 5h-7a2 2 0 0 0-2 2v13h7a2 2 0 0 0 2-2z"/>'),
    ("/r/events", "活动", '<rect x="3" y="5" width="18" height="16" rx="2"/>'
                          '<path d="M3 10h18M8 3v4M16 3v4"/>'),
    ("/r/board", "邻里", '<circle cx="9" cy="8" r="3.2"/><circle cx="17" cy="9" r="2.4"/>'
                        '<path d="M3 20c0-3.5 2.7-6 6-6s6 2.5 6 6M15.5 14.2c3 0 5.5 2 5.5 5.3"/>'),
    ("/r/me", "我的", '<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4.4 3.6-7 8-7s8 2.6 8 7"/>'),
)


def esc(s: Any) -> str:
    return html.escape("" if s is None else str(s))


def is_big(request: web.Request) -> bool:
    return request.cookies.get(BIG_COOKIE) == "1"


def set_big(resp: web.StreamResponse, big: bool) -> None:
    resp.set_cookie(BIG_COOKIE, "1" if big else "0", max_age=BIG_MAX_AGE, path="/",
                    samesite="Lax")  # fmt: skip


def tabbar(current: str | None) -> str:
    links = "".join(
        f'<a href="{h}"{" class=on aria-current=page" if h == current else ""}>'
        f'<svg viewBox="0 0 24 24" aria-hidden=true>{icon}</svg>{t}</a>'
        for h, t, icon in TABS
    )
    return f'<nav class=tabbar aria-label="主菜单">{links}</nav>'


def header(request: web.Request, title: str) -> str:
    """Title, community and the large-text switch (a plain form: works without script)."""
    big = is_big(request)
    back = request.path_qs if request.method == "GET" else "/r/"
    where = esc(request.app[LOOK].community) if LOOK in request.app else ""
    return (
        f"<header class=top><h1>{esc(title)}<span class=where>{where}</span></h1>"
        "<form method=post action=/r/prefs>"
        f"<input type=hidden name=back value='{esc(back)}'>"
        f"<button class=bigtoggle name=big value={'0' if big else '1'}"
        f" aria-pressed={'true' if big else 'false'} title=大字模式>大字</button></form></header>"
    )


def html_tag(request: web.Request) -> str:
    return "<html lang=zh-CN class=big>" if is_big(request) else "<html lang=zh-CN>"


def page(
    request: web.Request,
    title: str,
    body: str,
    *,
    nav: str | None = None,
    status: int = 200,
    scripts: tuple[str, ...] = (),
    styles: tuple[str, ...] = (),
    tabs: bool = True,
    headers: dict[str, str] | None = None,
    head: str = "",
) -> web.Response:
    """A whole /r/ page. Scripts are files (the box's Content-Security-Policy allows no inline
    script); ``styles``: the page's own sheets after the app's. ``tabs=False``: no tab bar (a
    page for someone who is not a resident, e.g. a visitor's pass). ``head``: more of the
    page's own head markup (a web-app manifest link), trusted."""
    if tabs and request.cookies.get(SESSION_COOKIE):
        scripts = (*scripts, FACTOR_JS)
    tags = "".join(f"<script src='{esc(s)}' defer></script>" for s in scripts)
    tags += "".join(f"<link rel=stylesheet href='{esc(s)}'>" for s in styles) + head
    text = (
        f"<!doctype html>{html_tag(request)}<head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><link rel=stylesheet href=/r/static/app.css>{tags}</head>"
        f"<body{'' if tabs else ' class=notabs'}>{header(request, title)}<main>{body}</main>"
        f"{tabbar(nav) if tabs else ''}</body></html>"
    )
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def msg(kind: str, text: str) -> str:
    """A message residents cannot mistake: ok (green, tick), err (red, cross), warn."""
    role = "alert" if kind == "err" else "status"
    return f"<p class='msg {kind}' role={role}>{esc(text)}</p>"


# Outcomes travel in the redirect's address (?ok= / ?err=), signed with a key of this process:
# any text in a link used to show as the box's own message (phishing residents in the box's
# voice, also on the cloud's domain: security probe 4). A redirect lives for a moment, so a
# key that a restart forgets loses at most a message in flight.
_SAY_KEY = secrets.token_bytes(16)


def _said_mac(kind: str, text: str) -> str:
    return hmac.new(_SAY_KEY, f"{kind}:{text}".encode(), hashlib.sha256).hexdigest()[:24]


def said(path: str, kind: str, text: str) -> str:
    """``path`` carrying the outcome ``text`` (kind "ok" or "err") that its page shows."""
    return f"{path}?{kind}={quote(text)}&m={_said_mac(kind, text)}"


def query_msg(request: web.Request) -> str:
    """The outcome a form's redirect carries (made by :func:`said`; anything else: nothing)."""
    q = request.query
    for kind in ("err", "ok"):
        if text := q.get(kind):
            if hmac.compare_digest(q.get("m", "").encode(), _said_mac(kind, text).encode()):
                return msg(kind, text[:200])
            return ""
    return ""


def when(request: web.Request, ts: str | datetime | None, *, date: bool = True) -> str:
    """A stored UTC time as residents read it: the community's zone, "11月30日 08:40"."""
    if not ts:
        return ""
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) if isinstance(ts, str) else ts
    local = t.astimezone(request.app[LOOK].tz)
    clock = f"{local.hour:02d}:{local.minute:02d}"
    return f"{local.month}月{local.day}日 {clock}" if date else clock
