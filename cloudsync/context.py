"""The cloud app's one context object (:class:`Cloud`, ``request.app[CLOUD]``) and what every
route module shares. Built by :func:`cloudsync.app.make_app`; no module keeps state of its own.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloudsync.blobs import BlobStore
from cloudsync.box_keys import BoxKeys
from cloudsync.storage import Storage
from cloudsync.throttle import FailureWindow

if TYPE_CHECKING:
    from cloudsync.relay import Relays


def err(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class FeedWaiter:
    """Wakes long-polls when a box's feed grows: at once in this worker, via PostgreSQL
    NOTIFY from other workers, or by polling (``poll_s``) when the backend cannot notify."""

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._events: dict[str, set[asyncio.Event]] = defaultdict(set)

    def wake(self, box_id: str) -> None:
        for ev in self._events.get(box_id, ()):
            ev.set()

    async def wait(self, box_id: str, seconds: float) -> None:
        ev = asyncio.Event()
        self._events[box_id].add(ev)
        try:
            async with asyncio.timeout(min(seconds, self.poll_s)):
                await ev.wait()
        except TimeoutError:
            pass
        finally:
            self._events[box_id].discard(ev)
            if not self._events[box_id]:
                del self._events[box_id]


@dataclass
class Cloud:
    storage: Storage
    blobs: BlobStore
    feed: FeedWaiter
    keys: BoxKeys  # box secrets: stored, or derived from a master key
    max_record_chars: int  # payload limit (serve --max-record-kb)
    accept_sig_v1: bool = True  # serve --refuse-signature-v1 turns it off
    claims: FailureWindow | None = None  # wrong claim codes, per source and overall
    relays: Relays | None = None  # residents' /r/ pages relayed to boxes (cloudsync/relay.py)


CLOUD = web.AppKey("cloud", Cloud)
