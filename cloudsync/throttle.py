"""Failed attempts counted in a sliding window, per source and over all sources.

Used for claim codes (issue 13 hardening): a code is 72 random bits, so guessing is hopeless,
but a flood of wrong codes costs database writes and fills the log. Each worker counts for
itself (``serve --workers N`` multiplies the limits by N); nothing is stored.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque


class FailureWindow:
    def __init__(self, per_source: int, overall: int, window_s: float) -> None:
        self.per_source, self.overall, self.window_s = per_source, overall, window_s
        self._by_source: dict[str, deque[float]] = defaultdict(deque)
        self._all: deque[float] = deque()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def retry_after(self, source: str) -> float:
        """Seconds until ``source`` may try again (0: now)."""
        now = time.monotonic()
        self._trim(self._all, now)
        mine = self._by_source.get(source)
        if mine is not None:
            self._trim(mine, now)
            if not mine:
                del self._by_source[source]
        waits = []
        if mine and len(mine) >= self.per_source:
            waits.append(mine[-self.per_source] + self.window_s - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[-self.overall] + self.window_s - now)
        return max(waits, default=0.0)

    def failed(self, source: str) -> None:
        now = time.monotonic()
        self._by_source[source].append(now)
        self._all.append(now)
        if len(self._by_source) > 10_000:  # forget sources that went quiet
            cutoff = now - self.window_s
            for k in [k for k, q in self._by_source.items() if not q or q[-1] <= cutoff]:
                del self._by_source[k]
