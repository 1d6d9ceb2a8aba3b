"""Run store calls on one dedicated thread so SQLite never blocks the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from edge.core.store.core import Store

T = TypeVar("T")


class AsyncStore:
    """``await astore.call(Store.method, args...)`` or ``await astore.record(rec)``."""

    def __init__(self, store: Store) -> None:
        self.sync = store
        # One thread: SQLite has one writer anyway, and order of calls is kept.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # astore.record(rec) -> awaitable running store.record(rec) on the store thread.
        attr = getattr(self.sync, name)
        if not callable(attr):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.run(attr, *args, **kwargs)

        return call

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.sync.close()
