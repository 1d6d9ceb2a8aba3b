"""Console sign-in: passwords (scrypt), optional TOTP, cookie sessions that expire, CSRF.

A signed-in browser calls the same ops API as scripts do: the authenticate middleware
(cloudsync/app.py) accepts either the bearer token or this session cookie, and for the cookie
every write must carry the session's CSRF token in ``X-CSRF-Token`` (forms: a ``csrf`` field).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from cloudsync.context import CLOUD
from cloudsync.storage import Storage

# Passwords and TOTP live in common/ (the box's property office uses the same code).
from common.relay import SAFE_METHODS  # noqa: F401 - re-exported (app.py, audit.py)
from common.staffauth import (  # noqa: F401 - re-exported for the cloud's callers
    MIN_PASSWORD,
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    check_password,
    check_totp,
    device_cookie,
    device_ok,
    device_pair,
    hash_password,
    new_totp_secret,
    slow_down_s,
    totp_uri,
)

COOKIE = "qilu_ops"
DEVICE_COOKIE = "qilu_ops_device"  # this browser signed in before (common/staffauth.py)
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class ConsoleSettings:
    idle_s: float = 30 * 60  # a session ends after this long unused...
    absolute_s: float = 12 * 3600  # ...and at the latest this long after sign-in
    offline_after_s: float = 180.0  # a box unheard this long shows offline (3 heartbeats)
    alert_poll_s: float = 0.5  # how often the live alert feed looks for new arrivals
    # per user and address (or remembered device) in lockout_s, then that address waits;
    # per user from everywhere, further tries slow down (common/staffauth.py slow_down_s)
    max_failed_logins: int = 5
    lockout_s: float = 15 * 60
    slow_base_s: float = 1.0  # the first wait, doubling per failure ...
    slow_max_s: float = 60.0  # ... up to this
    device_days: float = 90.0  # a browser that signed in is remembered this long
    rollout_poll_s: float = 5.0  # how often running update roll-outs look at heartbeats


SETTINGS = web.AppKey("console_settings", ConsoleSettings)
SESSION_ID: web.RequestKey[str] = web.RequestKey("console_session")
VIA: web.RequestKey[str] = web.RequestKey("auth_via")  # "token" or "session"


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


class LoginRefused(Exception):
    """Why a sign-in failed, in words safe to show (never which of name/password was wrong):
    ``bad_credentials``, ``bad_totp``, ``locked`` (this address or device, for this name) or
    ``slow`` (the name's sign-ins slowed down); ``pair``: where the try came from, as counted."""

    def __init__(self, reason: str, pair: str = "") -> None:
        super().__init__(reason)
        self.pair = pair


async def login(
    storage: Storage, settings: ConsoleSettings, name: str, password: str, totp: str,
    ip: str = "", device: str = "",
) -> tuple[str, str, dict[str, Any], str]:
    """Check the credentials; a new session (cookie value, csrf token, user row) and the
    remembered-device cookie for this browser (``device``: the one it sent)."""
    now = datetime.now(UTC)
    user = await storage.ops_user_get(name)
    stored = user["password_hash"] if user is not None else None
    trusted = bool(device) and device_ok(stored, name, device, now.timestamp(),
                                         settings.device_days)
    pair = device_pair(device) if trusted else f"ip={ip}"
    since = iso(now - timedelta(seconds=settings.lockout_s))
    n_pair, n_name, last = await storage.login_failures(name, since, pair)
    if n_pair >= settings.max_failed_logins:
        raise LoginRefused("locked", pair)
    age = (now - datetime.fromisoformat(last)).total_seconds() if last else 1e9
    if not trusted and slow_down_s(n_name, age, settings.max_failed_logins,
                                   settings.slow_base_s, settings.slow_max_s) > 0:
        raise LoginRefused("slow", pair)
    ok = await asyncio.to_thread(check_password, password, stored)
    if not ok or user is None or stored is None:
        raise LoginRefused("bad_credentials", pair)
    if user["totp_secret"] and not check_totp(user["totp_secret"], totp):
        raise LoginRefused("bad_totp", pair)
    value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await storage.session_add(
        session_hash(value),
        name,
        csrf,
        iso(now + timedelta(seconds=settings.absolute_s)),
        iso(now + timedelta(seconds=settings.idle_s)),
    )
    return value, csrf, user, device_cookie(stored, name, now.timestamp())


def session_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def session_user(request: web.Request) -> dict[str, Any] | None:
    """The signed-in user of this request's cookie (name, role, scope, csrf), or None; slides
    the idle deadline forward when half of it is used up (not a write on every request)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    settings = request.app[SETTINGS]
    storage = request.app[CLOUD].storage
    now = datetime.now(UTC)
    h = session_hash(value)
    row = await storage.session_user(h, iso(now))
    if row is None:
        return None
    idle_until = datetime.fromisoformat(row["idle_until"])
    if (idle_until - now).total_seconds() < settings.idle_s / 2:
        await storage.session_touch(h, iso(now + timedelta(seconds=settings.idle_s)))
    request[SESSION_ID] = h
    return row


def csrf_ok(request: web.Request, user: dict[str, Any], form_value: str | None = None) -> bool:
    sent = form_value if form_value is not None else request.headers.get(CSRF_HEADER, "")
    return bool(sent) and hmac.compare_digest(sent, user["csrf"])


def over_https(request: web.Request) -> bool:
    """Whether the browser spoke HTTPS: to this worker, or to the balancer in front of it
    (docs/deploy.md ends TLS there), which says so in X-Forwarded-Proto, believed only from
    a ``--trusted-proxy`` address (cloudsync/relay.py ``Relays.https``)."""
    relays = request.app[CLOUD].relays
    return relays.https(request) if relays is not None else request.secure


def set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(settings.absolute_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=over_https(request),  # over HTTPS the cookie never travels in clear
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")


def set_device_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    days = request.app[SETTINGS].device_days
    response.set_cookie(DEVICE_COOKIE, value, max_age=int(days * 86400), path="/console/",
                        httponly=True, samesite="Strict", secure=over_https(request))
