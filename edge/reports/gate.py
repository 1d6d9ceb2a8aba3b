"""Who a report or repair request is from, and the gate for anonymous ones from the internet.

Identity comes from the session only (issue 13 #8): a resident's report carries the resident
of their portal session (cookie or bearer); staff may file one on a resident's behalf; nobody
else may name a resident in the body. Anonymous reports stay possible, as residents want.

Through the cloud relay an anonymous report is the one thing a stranger on the internet can
post, so it passes a small proof of work and a rate limit: the page asks for a challenge,
finds a nonce whose SHA-256 starts with ``proof_bits`` zero bits (a second or two on a phone,
invisible to the resident: no puzzle to read, which elderly residents would struggle with),
and sends ``X-Qilu-Proof: <challenge>:<nonce>``. Each challenge works once, for ten minutes.
On the community Wi-Fi, and for logged-in residents anywhere, there is no challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from typing import Any

from aiohttp import web

from edge.core.http import ROLE, client_of, resident_of
from edge.reports.inputs import InputError

PROOF_HEADER = "X-Qilu-Proof"
CHALLENGE_TTL_S = 600.0
WINDOW_S = 3600.0


class Gate:
    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.key = secrets.token_bytes(32)  # challenges live for minutes: a per-run key is enough
        self.used: OrderedDict[str, float] = OrderedDict()
        self.per_client: OrderedDict[str, deque[float]] = OrderedDict()
        self.all: deque[float] = deque()

    def challenge(self) -> dict[str, Any]:
        body = f"{int(time.time())}.{secrets.token_hex(8)}"
        sig = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()[:32]
        return {"challenge": f"{body}.{sig}", "bits": self.cfg.proof_bits,
                "header": PROOF_HEADER}

    def _proof_ok(self, proof: str) -> bool:
        challenge, _, nonce = proof.rpartition(":")
        parts = challenge.split(".")
        if len(parts) != 3 or not nonce or len(nonce) > 32 or not parts[0].isdigit():
            return False
        body = f"{parts[0]}.{parts[1]}"
        sig = hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(sig.encode(), parts[2].encode()):
            return False
        if not 0 <= time.time() - int(parts[0]) <= CHALLENGE_TTL_S or challenge in self.used:
            return False
        digest = hashlib.sha256(f"{challenge}:{nonce}".encode()).digest()
        if int.from_bytes(digest, "big") >> (256 - self.cfg.proof_bits):
            return False
        self.used[challenge] = time.time()
        while self.used and next(iter(self.used.values())) < time.time() - CHALLENGE_TTL_S:
            self.used.popitem(last=False)
        return True

    def admit_anonymous(self, request: web.Request) -> None:
        """Raise InputError unless an anonymous post may pass (only relayed ones are gated)."""
        client = client_of(request)
        if not client.startswith("relay:"):
            return
        now = time.monotonic()
        q = self.per_client.pop(client, None) or deque()
        while q and q[0] < now - WINDOW_S:
            q.popleft()
        self.per_client[client] = q
        while len(self.per_client) > 10_000:
            self.per_client.popitem(last=False)
        while self.all and self.all[0] < now - WINDOW_S:
            self.all.popleft()
        if len(q) >= self.cfg.relay_anonymous_per_hour or len(self.all) >= (
            self.cfg.relay_anonymous_all_per_hour
        ):
            raise InputError("(body)", "too many anonymous reports from the internet; log in"
                             " with your code or try again later", 429)
        if not self._proof_ok(request.headers.get(PROOF_HEADER, "")):
            raise InputError("proof", "anonymous reports from outside the community need the"
                             " page's proof of work (GET /api/v1/reports/challenge)", 428)
        q.append(now)
        self.all.append(now)


async def reporter(box: Any, request: web.Request, claimed: str | None, gate: Gate) -> str | None:
    """The resident a submission is from: the session's, or the one staff named, or None
    (anonymous, gated through the relay). A body naming a resident otherwise is refused."""
    if request[ROLE] in ("staff", "admin"):
        return claimed
    res = await resident_of(request)  # the portal's session, if the box has the portal
    if res is not None:
        if claimed and claimed != res["resident_id"]:
            raise InputError("resident_id", "you can only report in your own name", 403)
        return res["resident_id"]
    if claimed:
        raise InputError("resident_id", "log in to report in your name; anonymous reports"
                         " leave resident_id out", 403)
    gate.admit_anonymous(request)
    return None
