"""Staff passwords and second factors, shared by both consoles: the city console on the cloud
(cloudsync/console/auth.py) and the property office on the box (edge/office/).

Passwords are hashed with scrypt; the parameters travel with each hash, so raising them later
leaves old hashes readable. TOTP (RFC 6238) is optional per user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pyotp

# scrypt at n=2**14, r=8 (16 MiB, ~50 ms here).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 10


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


def totp_uri(secret: str, name: str, issuer: str = "Qilu 城市运营中心") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


def check_totp(secret: str, code: str) -> bool:
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)


# --- sign-in limits both consoles share (probe finding: a per-name lock-out let anyone on the
# network keep a staff account locked by posting wrong passwords for its name) --------------
#
# Failures are counted per (name, where from): the client's address, or the remembered device
# below. That pair is locked after ``max_failed`` in the window, so a guesser locks only
# himself. Per name, from everywhere together, sign-ins slow down instead of locking: after
# ``max_failed`` failures each further try of the name waits a doubling delay (at most
# ``slow_max_s``) after the newest failure, which bounds guessing from many addresses without
# ever closing the account. A browser that signed in as that user before carries a device
# cookie signed by the server and skips the slow-down (OWASP Authentication Cheat Sheet,
# "account lockout": device cookies), so the real user gets in at once while a stranger guesses.

DEVICE_COOKIE_DAYS = 90


def _device_mac(key: str, name: str, issued: int) -> str:
    # keyed with the user's stored password hash (secret, server-side only): a new password
    # forgets every remembered device, and nothing new has to be kept or synced
    msg = f"qilu-device\n{name}\n{issued}".encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def device_cookie(password_hash: str, name: str, now: float) -> str:
    """The remembered-device cookie's value after ``name`` signed in on this browser."""
    issued = int(now)
    return f"{issued}.{_device_mac(password_hash, name, issued)}"


def device_ok(password_hash: str | None, name: str, value: str, now: float,
              days: float = DEVICE_COOKIE_DAYS) -> bool:
    """Is ``value`` a device cookie this server gave a browser that signed in as ``name``
    within ``days``?"""
    issued, _, mac = value.partition(".")
    if not password_hash or not issued.isdigit() or not mac.isascii():
        return False
    if not 0 <= now - int(issued) <= days * 86400:
        return False
    return hmac.compare_digest(_device_mac(password_hash, name, int(issued)), mac)


def device_pair(value: str) -> str:
    """What the failures of a remembered device are counted under (not the cookie itself)."""
    return "device=" + hashlib.sha256(value.encode()).hexdigest()[:24]


def slow_down_s(failures: int, since_last_s: float, after: int, base_s: float,
                max_s: float) -> float:
    """How long a sign-in of a name must still wait: nothing below ``after`` failures (from
    anywhere), then ``base_s`` doubling per further failure up to ``max_s``, counted from the
    newest failure."""
    if failures < after:
        return 0.0
    delay = min(max_s, base_s * 2.0 ** min(failures - after, 30))
    return max(0.0, delay - since_last_s)
