"""Box secrets derived from a server master key, so the database holds no usable secret.

With a master key (``serve --master-key-file`` or env ``QILU_CLOUD_MASTER_KEY_FILE``) a box's
secret is HMAC-SHA256(master key, "box_id|generation"), base64url, and the boxes table keeps
only the marker "gen:N" in ``secret`` / ``prev_secret``. Rotation moves the box to generation
N+1 and keeps the generation it signed with as previous until it first signs with the new one
(as with stored secrets); revocation is unchanged. Boxes provisioned before the key was set
keep their stored secret and still verify; their next rotation moves them to derived secrets.
Without a master key the service stores random secrets as before. A "gen:N" marker cannot
collide with a stored secret: those are base64url and hold no ':'.

Rotating the master key itself is not covered (it would need a key id in the marker); losing
it means re-provisioning every box with a derived secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

MARK = "gen:"
ENV_FILE = "QILU_CLOUD_MASTER_KEY_FILE"


class BoxKeys:
    def __init__(self, master: bytes | None = None) -> None:
        if master is not None and len(master) < 32:
            raise ValueError("master key: at least 32 bytes")
        self.master = master

    @classmethod
    def from_env(cls) -> BoxKeys:
        path = os.environ.get(ENV_FILE)
        return cls(Path(path).read_bytes().strip() if path else None)

    def derive(self, box_id: str, generation: int) -> str:
        assert self.master is not None
        mac = hmac.new(self.master, f"{box_id}|{generation}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def new(self, box_id: str, current: str | None = None) -> tuple[str, str]:
        """(what the database keeps, the secret the box gets) for a new or rotated secret."""
        if self.master is None:
            secret = secrets.token_urlsafe(32)
            return secret, secret
        gen = (generation(current) or 0) + 1
        return f"{MARK}{gen}", self.derive(box_id, gen)

    def usable(self, box_id: str, stored: str | None) -> str | None:
        """The secret to verify with, from what the database keeps (None: cannot verify)."""
        if not stored:
            return None
        if (gen := generation(stored)) is not None:
            return self.derive(box_id, gen) if self.master else None
        return stored


def generation(stored: str | None) -> int | None:
    """N of a "gen:N" marker; None for a stored secret (or nothing)."""
    return int(stored[len(MARK) :]) if stored and stored.startswith(MARK) else None
