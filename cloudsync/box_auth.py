"""Box request authentication on the hot path (PostgreSQL): secrets cached per worker, nonces
used in batches.

Every signed box request needs the box's secret (to check the signature) and a nonce used
once. Each took its own database round trip (a box lookup, then a nonce insert); when a
city-wide broadcast woke 10,000 long-polls and every box re-polled at once, those round trips
and the pool queue behind them were most of the fan-out's cost (bench/fleet.py). Now:

- the secrets come from a worker-local cache, filled by the first lookup of a box;
- the nonces of all requests that arrive while one batch is in flight go in together, one
  statement for the lot, and that statement also reads each box's current secrets and
  revocation. The cache is thus checked against the database on every request at no extra
  round trip: a revoked box is refused at once on every worker, and a secret rotated on
  another worker replaces the cached one.

Uploads of a cached box use their nonce in the batch too (before, in their own transaction
after a box lookup): one round trip less per upload, and the batch statement is what checks
the cache. A box's first request on a worker (cache miss) takes the uncached path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

# (box id, nonce, ts) -> the box's current row (secret, prev_secret, revoked_at) for each
# nonce that was fresh; a nonce missing from the answer was used before.
RunBatch = Callable[[list[tuple[str, str, int]]], Awaitable[dict[tuple[str, str], dict[str, Any]]]]
Prune = Callable[[int], Awaitable[None]]

BATCH_MAX = 2000  # nonces per statement: keeps one statement's arrays and time bounded
PRUNE_EVERY_S = 10.0  # forget nonces outside the window this often per worker


class BoxCache:
    """box id -> (secret, prev_secret) as stored; revoked boxes are never kept."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._rows: dict[str, tuple[str, str | None]] = {}

    def get(self, box_id: str) -> dict[str, Any] | None:
        got = self._rows.get(box_id)
        if got is None:
            return None
        return {"id": box_id, "secret": got[0], "prev_secret": got[1], "revoked_at": None}

    def put(self, box: dict[str, Any]) -> None:
        if box["revoked_at"]:
            self._rows.pop(box["id"], None)
            return
        if len(self._rows) >= self.limit and box["id"] not in self._rows:
            del self._rows[next(iter(self._rows))]  # the oldest entry: bounded memory
        self._rows[box["id"]] = (box["secret"], box["prev_secret"])

    def drop(self, box_id: str) -> None:
        self._rows.pop(box_id, None)

    def __len__(self) -> int:
        return len(self._rows)


class NonceBatch:
    """Uses nonces in batches: one statement for every request that arrived meanwhile."""

    def __init__(self, run: RunBatch, prune: Prune, window_s: int) -> None:
        self.run, self.prune, self.window_s = run, prune, window_s
        self._pending: dict[tuple[str, str], tuple[int, asyncio.Future[dict[str, Any] | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pruning: asyncio.Task[None] | None = None
        self._pruned = 0.0
        self.batches = self.nonces = 0  # counters (tests, bench)

    async def use(self, box_id: str, nonce: str, ts: int) -> dict[str, Any] | None:
        """The box's current row if the nonce was fresh; None if it was used before."""
        key = (box_id, nonce)
        if key in self._pending:  # the same signed request twice in one batch: a replay
            return None
        fut: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = (ts, fut)
        if self._task is None:
            self._task = asyncio.create_task(self._flush())
        return await fut

    async def _prune(self, older_than: int) -> None:
        try:
            await self.prune(older_than)
        except Exception as e:  # pruning waits for the next turn; requests don't
            log.warning("nonce prune failed: %s", e)
        finally:
            self._pruning = None

    async def _flush(self) -> None:
        try:
            # One turn of the loop first: the requests parsed in this turn join the batch.
            await asyncio.sleep(0)
            while self._pending:
                keys = list(self._pending)[:BATCH_MAX]
                batch = {k: self._pending.pop(k) for k in keys}
                try:
                    rows = await self.run([(b, n, ts) for (b, n), (ts, _f) in batch.items()])
                except BaseException as e:  # the database is down: every request says so
                    for _ts, fut in batch.values():
                        if not fut.done():
                            fut.set_exception(e if isinstance(e, Exception) else RuntimeError())
                    if not isinstance(e, Exception):
                        raise
                    continue
                self.batches += 1
                self.nonces += len(batch)
                for k, (_ts, fut) in batch.items():
                    if not fut.done():
                        fut.set_result(rows.get(k))
                now = time.time()
                if now - self._pruned > PRUNE_EVERY_S and self._pruning is None:
                    # Beside the batches, not between them: awaited here, every request of
                    # the worker waited for the DELETE (seconds on a loaded database).
                    self._pruned = now
                    self._pruning = asyncio.create_task(self._prune(int(now) - 2 * self.window_s))
        finally:
            self._task = None
            if self._pending:  # arrived during the last await of a failing flush
                self._task = asyncio.create_task(self._flush())
