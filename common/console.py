"""The look both staff consoles share: the city operations console on the cloud
(cloudsync/console/) and the property office on the box (/office/). One page shell, one
stylesheet, one small vanilla script, one dictionary (Chinese first, English available), so a
page that exists in both is one implementation.

The shell is server-rendered; a page's data comes from the scoped API of its side through
``console.js`` (``data-api`` names the API's base path). No inline script or style: the pages
run under a Content-Security-Policy of ``script-src 'self'``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:  # both consoles serve with aiohttp; common itself does not depend on it
    from aiohttp import web

STATIC_DIR = Path(__file__).parent / "console_static"
LANGS = ("zh", "en")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@cache
def strings(lang: str) -> dict[str, str]:
    data = json.loads((STATIC_DIR / "i18n.json").read_text(encoding="utf-8"))
    return data[lang if lang in data else "zh"]


def pick_lang(query_lang: str | None, cookie_lang: str | None) -> str:
    """?lang= wins, then the lang cookie; otherwise Chinese (English only when asked for)."""
    for cand in (query_lang, cookie_lang):
        if cand in LANGS:
            return cand
    return "zh"


def lang_of(request: web.Request) -> str:
    return pick_lang(request.query.get("lang"), request.cookies.get("lang"))


def html_response(request: web.Request, text: str, status: int = 200) -> web.Response:
    """A console page with the security headers; ?lang= is remembered in a cookie."""
    from aiohttp import web

    resp = web.Response(text=text, content_type="text/html", status=status)
    resp.headers.update(SECURITY_HEADERS)
    if request.query.get("lang") in LANGS:
        resp.set_cookie("lang", request.query["lang"], max_age=365 * 86400, samesite="Lax")
    return resp


def safe_next(value: str | None, prefix: str, default: str) -> str:
    """Where to go after sign-in: only the console's own pages ("<prefix>/x"), never
    "//evil" or "https://..."."""
    if not value or not value.startswith(f"{prefix}/") or value.startswith("//"):
        return default
    # A browser resolves "/console/../x" (also "%2e%2e", and "\\" as "/") off the console:
    # then the session cookie would follow the redirect to any address of this host.
    path = unquote(value.split("?", 1)[0].split("#", 1)[0])
    if "\\" in path or any(seg in (".", "..") for seg in path.split("/")):
        return default
    return value


def login_error(reason: str) -> str:
    """The message key a refused sign-in shows: a wrong one-time code looks exactly like a
    wrong password, or a guesser would learn the password was right (the audit log keeps
    the real reason)."""
    return "login_bad_credentials" if reason == "bad_totp" else f"login_{reason}"


def login_body(t: dict[str, str], title_key: str, action: str, csrf: str, error: str = "",
               after: str = "") -> str:
    """The sign-in form both consoles show (username, password, optional TOTP code)."""
    msg = f'<p class="error" role="alert">{esc(t[error])}</p>' if error else ""
    return f"""<section class="login card">
<h1>{esc(t[title_key])}</h1>{msg}
<form method="post" action="{esc(action)}">
<input type="hidden" name="csrf" value="{csrf}">
<label>{esc(t["username"])}<input name="name" autocomplete="username" required autofocus></label>
<label>{esc(t["password"])}<input name="password" type="password"
 autocomplete="current-password" required></label>
<label>{esc(t["totp"])}<input name="totp" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9 ]*" maxlength="8"></label>
<button type="submit" class="primary">{esc(t["sign_in"])}</button>
</form>{after}</section>"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclass
class Shell:
    """What every console page's frame shows: the product, the navigation, who is signed in."""

    title_key: str  # "cloud_title" or "office_title"
    static: str  # URL prefix of console_static
    api: str  # base path of the side's API, for console.js
    nav: list[tuple[str, str]] = field(default_factory=list)  # (href, i18n key)
    user: str = ""
    role: str = ""
    scope: str = ""
    csrf: str = ""
    logout: str = ""  # form action of "sign out"; empty: no sign-out button
    # A side's own additions: scripts loaded after console.js (their pages), and words of
    # theirs by language, over the shared dictionary (the box's office adds its pages' words).
    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    extra_strings: dict[str, dict[str, str]] = field(default_factory=dict)


def render(shell: Shell, lang: str, page: str, active: str, body: str) -> str:
    """A whole page: the frame around ``body`` (already-escaped HTML) for page id ``page``."""
    t = {**strings(lang), **shell.extra_strings.get(lang, {})}
    other = "en" if lang == "zh" else "zh"
    nav = "".join(
        f'<a href="{esc(href)}"{" aria-current=page" if key == active else ""}>{esc(t[key])}</a>'
        for href, key in shell.nav
    )
    who = ""
    if shell.user:
        role = t.get(f"role_{shell.role}", shell.role)
        scope = t["scope_all"] if shell.scope in ("", "/") else shell.scope
        who = (
            f'<span class="who">{esc(t["signed_in_as"])}: <b>{esc(shell.user)}</b>'
            f" · {esc(role)} · {esc(scope)}</span>"
        )
    logout = ""
    if shell.logout:
        logout = (
            f'<form method="post" action="{esc(shell.logout)}" class="inline">'
            f'<input type="hidden" name="csrf" value="{esc(shell.csrf)}">'
            f'<button type="submit" class="link">{esc(t["sign_out"])}</button></form>'
        )
    title = f"{t[active] if active in t else ''} · {t[shell.title_key]}".strip(" ·")
    return f"""<!doctype html>
<html lang="{"zh-CN" if lang == "zh" else "en"}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{esc(shell.csrf)}">
<title>{esc(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{esc(shell.static)}/console.css">
{"".join(f'<link rel="stylesheet" href="{esc(href)}">' for href in shell.styles)}
<script type="application/json" id="i18n">{_json_block(t)}</script>
<script src="{esc(shell.static)}/console.js" defer></script>
{"".join(f'<script src="{esc(src)}" defer></script>' for src in shell.scripts)}
</head>
<body data-page="{esc(page)}" data-api="{esc(shell.api)}" data-lang="{lang}"
 data-role="{esc(shell.role)}">
<a class="skip" href="#main">{"跳到内容" if lang == "zh" else "Skip to content"}</a>
<header class="top">
<span class="brand">{esc(t[shell.title_key])}</span>
<nav aria-label="{"主导航" if lang == "zh" else "Main"}">{nav}</nav>
<span class="right">{who}
<a class="lang" href="?lang={other}" hreflang="{other}">{esc(t["lang_switch"])}</a>{logout}</span>
</header>
<main id="main" tabindex="-1">
{body}
</main>
<div id="toast" role="status" aria-live="polite"></div>
</body>
</html>
"""


def _json_block(data: object) -> str:
    # "</" cannot end the data block early: escape "<" inside the JSON.
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
