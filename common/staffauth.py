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
