"""Web Push: a call reaches a phone whose intercom page is closed or in the background, where
the platform delivers Web Push (docs/intercom.md lists where it does not).

The box holds its own VAPID key pair (``<data_dir>/intercom-vapid.pem``, made at its first use,
mode 0600); the phone's page subscribes with the public key and the box sends each ringing
call, encrypted for that phone (aes128gcm, RFC 8291) and signed (VAPID, RFC 8292), to the
browser vendor's push service with pywebpush. The payload names the door and the flat only.
A subscription the push service says is gone (404/410) is deleted.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.core.standard import IntercomCall
from edge.intercom import store as db

if TYPE_CHECKING:
    from py_vapid import Vapid

log = logging.getLogger(__name__)


def load_key(path: Path) -> Vapid:
    # py_vapid/pywebpush/cryptography (~12 MB RSS) load with the first key use, not at start
    from py_vapid import Vapid

    if not path.exists():
        v = Vapid()
        v.generate_keys()
        path.parent.mkdir(parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            v.save_key(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
    return Vapid.from_file(str(path))


class WebPush:
    name = "webpush"

    def __init__(self, store: Any, key_path: Path, subject: str) -> None:
        self.store = store  # the AsyncStore
        self.key_path = key_path
        self._vapid: Vapid | None = None
        self.subject = subject
        self.sent = 0
        self.dropped = 0

    @property
    def vapid(self) -> Vapid:
        """The key pair, made (or read) at its first use: a phone page asking for the key or
        the first call to ring."""
        if self._vapid is None:
            self._vapid = load_key(self.key_path)
        return self._vapid

    @property
    def public_key(self) -> str:
        """The applicationServerKey a page subscribes with (base64url, uncompressed point)."""
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = self.vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    async def ring(self, call: IntercomCall, door_name: str) -> None:
        subs = await self.store.run(db.flat_push, self.store.sync, call.flat)
        data = json.dumps({"call": call.id, "door": door_name, "flat": call.flat},
                          ensure_ascii=False)
        if not subs:
            return  # no phone subscribed: nothing to sign, pywebpush stays unloaded
        from pywebpush import WebPushException, webpush_async

        for sub in subs:
            try:
                await webpush_async(sub, data, vapid_private_key=self.vapid,
                                    vapid_claims={"sub": self.subject}, ttl=60, timeout=5,
                                    headers={"Urgency": "high"})
                self.sent += 1
            except WebPushException as e:
                if e.status_code in (404, 410):
                    self.dropped += await self.store.run(db.drop_push, self.store.sync,
                                                         sub["endpoint"])
                else:
                    log.warning("intercom: web push to %.40s failed: %s", sub["endpoint"], e)
