"""Console sign-in: passwords (scrypt), optional TOTP, cookie sessions that expire, CSRF.

A signed-in browser calls the same ops API as scripts do: the authenticate middleware
(cloudsync/app.py) accepts either the bearer token or this session cookie, and for the cookie
every write must carry the session's CSRF token in ``X-CSRF-Token`` (forms: a ``csrf`` field).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from aiohttp import web

from cloudsync.context import CLOUD
from cloudsync.storage import Storage

COOKIE = "qilu_ops"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# scrypt at n=2**14, r=8 (16 MiB, ~50 ms here): the parameters travel with each hash, so
# raising them later leaves old hashes readable.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10


@dataclass(frozen=True)
class ConsoleSettings:
    idle_s: float = 30 * 60  # a session ends after this long unused...
    absolute_s: float = 12 * 3600  # ...and at the latest this long after sign-in
    offline_after_s: float = 180.0  # a box unheard this long shows offline (3 heartbeats)
    alert_poll_s: float = 0.5  # how often the live alert feed looks for new arrivals
    max_failed_logins: int = 5  # per user in lockout_s, then sign-in waits
    lockout_s: float = 15 * 60
    rollout_poll_s: float = 5.0  # how often running update roll-outs look at heartbeats


SETTINGS = web.AppKey("console_settings", ConsoleSettings)
SESSION_ID: web.RequestKey[str] = web.RequestKey("console_session")
VIA: web.RequestKey[str] = web.RequestKey("auth_via")  # "token" or "session"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored:
        # Same work as a real check, so a missing user does not answer faster.
        hash_password(password)
        return False
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 << 20,
            dklen=len(want),
        )
    except ValueError:
        return False
    return algo == "scrypt" and hmac.compare_digest(got, want)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, name: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name="Qilu 城市运营中心")


def check_totp(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


class LoginRefused(Exception):
    """Why a sign-in failed, in words safe to show (never which of name/password was wrong)."""


async def login(
    storage: Storage, settings: ConsoleSettings, name: str, password: str, totp: str
) -> tuple[str, str, dict[str, Any]]:
    """Check the credentials; a new session (cookie value, csrf token, user row)."""
    now = datetime.now(UTC)
    since = iso(now - timedelta(seconds=settings.lockout_s))
    if await storage.failed_logins(name, since) >= settings.max_failed_logins:
        raise LoginRefused("locked")
    user = await storage.ops_user_get(name)
    stored = user["password_hash"] if user is not None else None
    ok = await asyncio.to_thread(check_password, password, stored)
    if not ok or user is None:
        raise LoginRefused("bad_credentials")
    if user["totp_secret"] and not check_totp(user["totp_secret"], totp):
        raise LoginRefused("bad_totp")
    value, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    await storage.session_add(
        session_hash(value),
        name,
        csrf,
        iso(now + timedelta(seconds=settings.absolute_s)),
        iso(now + timedelta(seconds=settings.idle_s)),
    )
    return value, csrf, user


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


def set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(settings.absolute_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,  # over HTTPS the cookie never travels in clear
    )


def clear_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/")
