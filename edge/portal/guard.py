"""Limits on guessing one-time login codes (issue 13 #3).

Three layers, all in memory (a restart forgets them; the codes' own expiry still holds):

* per client address (``max_login_failures`` per 10 minutes): one phone or one host;
* per scope, all clients together (``login_scope_failures`` per 10 minutes): "lan" for the
  community network, "relay" for everything that comes through the cloud. Many addresses (50
  loopback addresses, 20 relay clients) no longer multiply the budget. When a scope's budget is
  spent, logins in that scope close for a back-off that doubles each time it trips again
  (``login_backoff_s`` up to one hour) and an alert is raised. Guessing from the internet
  therefore never locks residents out of the LAN login, and a LAN guesser is on the LAN;
* relay logins need the long code (``relay_code_digits``), see :func:`remote_ok`.

A wrong code names no resident, so a per-resident count cannot exist for guesses; the scope
budget is what bounds the total number of guesses against every live code together.
The client table is bounded (``MAX_CLIENTS``) and pruned as windows expire.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

WINDOW_S = 600.0
MAX_CLIENTS = 10_000  # addresses remembered at once; the oldest are forgotten first
MAX_BACKOFF_S = 3600.0


def scope_of(client: str) -> str:
    return "relay" if client.startswith("relay:") else "lan"


class LoginGuard:
    def __init__(self, cfg: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.clients: OrderedDict[str, deque[float]] = OrderedDict()
        self.scopes: dict[str, deque[float]] = {"lan": deque(), "relay": deque()}
        self.closed_until: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.trips = 0

    def _expire(self, q: deque[float], now: float) -> None:
        while q and q[0] < now - WINDOW_S:
            q.popleft()

    def prune(self) -> None:
        """Forget clients whose failures all left the window (keeps the table small)."""
        now = self.clock()
        for client in [c for c, q in self.clients.items() if not q or q[-1] < now - WINDOW_S]:
            del self.clients[client]

    def wait_s(self, client: str) -> float:
        """0 if this client may try a code now, else how long it must wait."""
        now = self.clock()
        scope = scope_of(client)
        closed = self.closed_until.get(scope, 0.0) - now
        if closed > 0:
            return closed
        q = self.clients.get(client)
        if q is not None:
            self._expire(q, now)
            if len(q) >= self.cfg.max_login_failures:
                return q[0] + WINDOW_S - now
        return 0.0

    def failed(self, client: str) -> bool:
        """Count a wrong code; True when this failure closed its scope (raise an alert)."""
        now = self.clock()
        q = self.clients.pop(client, None) or deque()
        q.append(now)
        self.clients[client] = q  # most recent last: the oldest are forgotten first
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)
        if len(self.clients) % 256 == 0:
            self.prune()
        scope = scope_of(client)
        sq = self.scopes[scope]
        self._expire(sq, now)
        sq.append(now)
        if len(sq) < self.cfg.login_scope_failures:
            return False
        last = self.backoff.get(scope, 0.0)
        # Tripping again soon after the last back-off doubles it; a quiet window resets it.
        grown = last * 2 if self.closed_until.get(scope, 0.0) > now - WINDOW_S else 0.0
        self.backoff[scope] = min(max(self.cfg.login_backoff_s, grown), MAX_BACKOFF_S)
        self.closed_until[scope] = now + self.backoff[scope]
        sq.clear()
        self.trips += 1
        return True

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "clients_tracked": len(self.clients),
            "closed": {s: round(t - now, 1) for s, t in self.closed_until.items() if t > now},
            "trips": self.trips,
        }


def remote_ok(cfg: Any, client: str, code: str) -> bool:
    """Through the cloud relay only long codes log in (a 12-digit code is 10,000 times harder
    to guess than 8 digits); the community network keeps the short, typeable ones."""
    return scope_of(client) != "relay" or len(code) >= cfg.relay_code_digits


def digits_for(cfg: Any, link_base: str) -> int:
    """How long a new code is: long when its link goes through the cloud (``/r/at/``)."""
    return cfg.relay_code_digits if "/r/at/" in link_base else cfg.code_digits
