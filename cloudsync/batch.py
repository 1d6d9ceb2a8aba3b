"""One database statement for many concurrent requests' keys (PostgreSQL hot paths).

When a worker dies its boxes reconnect to the others all at once: each reconnect missed the
box cache (a lookup) and took over its relay socket (a claim), one statement each, queued on
the pool (bench/fleet.py: 18 s median from socket lost to socket back for 1,278 boxes, with
no attempt failing). Keys that arrive while a statement is in flight wait for the next one,
which takes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

BATCH_MAX = 2000  # keys per statement: keeps one statement's arrays and time bounded


class Batch(Generic[K, V]):
    """``await batch.get(key)``: ``run(keys)`` answers a dict for many keys at once; a key it
    leaves out gets ``None``. A failing statement fails every request of its batch."""

    def __init__(self, run: Callable[[list[K]], Awaitable[dict[K, V]]]) -> None:
        self.run = run
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # counter (tests, bench)

    async def get(self, key: K) -> V | None:
        fut: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(fut)
        if self._task is None:
            self._task = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # the requests parsed in this turn of the loop join in
            while self._pending:
                keys = list(self._pending)[:BATCH_MAX]
                batch = {k: self._pending.pop(k) for k in keys}
                try:
                    got = await self.run(keys)
                except Exception as e:
                    for futs in batch.values():
                        for fut in futs:
                            if not fut.done():
                                fut.set_exception(e)
                    continue
                self.batches += 1
                for k, futs in batch.items():
                    for fut in futs:
                        if not fut.done():
                            fut.set_result(got.get(k))
        finally:
            self._task = None
            if self._pending:  # arrived during the last await of a cancelled flush
                self._task = asyncio.create_task(self._flush())
