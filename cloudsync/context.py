"""The cloud app's one context object (:class:`Cloud`, ``request.app[CLOUD]``) and what every
route module shares. Built by :func:`cloudsync.app.make_app`; no module keeps state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloudsync.blobs import BlobStore
from cloudsync.box_keys import BoxKeys
from cloudsync.storage import Storage
from cloudsync.storage.feed import FeedWake
from cloudsync.throttle import FailureWindow

if TYPE_CHECKING:
    from cloudsync.batch import Batch
    from cloudsync.box_auth import BoxCache, NonceBatch
    from cloudsync.relay import Relays


def err(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class Watch:
    """One waiting long-poll: its cursor and what notifications brought it."""

    __slots__ = ("cursor", "event", "items", "stale")

    def __init__(self, after: int) -> None:
        self.cursor = after  # the last feed id this poll will have answered
        self.event = asyncio.Event()
        self.items: list[FeedWake] = []  # carried by notifications, in order, gap-free
        self.stale = False  # woken without a usable item: query the feed


class FeedWaiter:
    """Wakes long-polls when a box's feed grows: at once in this worker, via PostgreSQL
    NOTIFY from other workers, or by polling (``poll_s``) when the backend cannot notify.

    While the notification listener is up (``live``), notifications carry the item with
    each box's feed id, and the waiter keeps ``heads``: per box, a feed id no item of the
    box lies above (learned from a feed query that found nothing above its cursor, raised by
    every notification). A long-poll whose cursor is at the head then waits without querying,
    and a notification whose item directly follows what the poll has (the head was at or
    below its cursor) answers it with no query at all: a city-wide broadcast costs each
    box its HTTP answer and re-poll, not two feed queries. Anything less certain (no head
    yet, the listener lost and back, a wake without item) falls back to querying the feed.
    """

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._watches: dict[str, set[Watch]] = defaultdict(set)
        self.heads: dict[str, int] = {}
        self.live = False  # notifications arrive (PostgreSQL listener up)
        self.epoch = 0  # bumped whenever notifications may have been missed

    def listening(self, up: bool) -> None:
        """The listener (re)started, or was lost: what the heads say is no longer known."""
        self.heads.clear()
        self.epoch += 1
        self.live = up
        if not up:  # wake every poll: it queries, rather than trust what it was told
            for watches in self._watches.values():
                for w in watches:
                    w.stale = True
                    w.event.set()

    def wake(self, box_id: str) -> None:
        """A feed insert in this worker. With a live listener the notification (carrying the
        item) reaches this worker too, so only the backends that cannot notify need this."""
        if not self.live:
            self.notified(box_id, None)

    def notified(self, box_id: str, item: FeedWake | None) -> None:
        head = self.heads.get(box_id)
        for w in self._watches.get(box_id, ()):
            if item is not None and head is not None and head <= w.cursor and not w.stale:
                if item[0] > w.cursor:
                    w.items.append(item)
                    w.cursor = item[0]
            else:
                w.stale = True
            w.event.set()
        if item is not None and head is not None and self.live:
            self.heads[box_id] = max(head, item[0])

    def nothing_after(self, box_id: str, after: int) -> bool:
        head = self.heads.get(box_id)
        return self.live and head is not None and head <= after

    def learn(self, box_id: str, after: int, epoch: int, w: Watch) -> None:
        """A feed query (started in ``epoch``, with ``w`` registered) found nothing above
        ``after``: that is the box's head, unless a notification came meanwhile."""
        if self.live and epoch == self.epoch and not w.stale and not w.items:
            self.heads[box_id] = max(self.heads.get(box_id, after), after)

    @contextlib.contextmanager
    def watch(self, box_id: str, after: int) -> Iterator[Watch]:
        """Register before querying the feed, so no notification falls between the two."""
        w = Watch(after)
        self._watches[box_id].add(w)
        try:
            yield w
        finally:
            self._watches[box_id].discard(w)
            if not self._watches[box_id]:
                del self._watches[box_id]

    async def wait(self, w: Watch, seconds: float) -> None:
        try:
            async with asyncio.timeout(min(seconds, self.poll_s)):
                await w.event.wait()
        except TimeoutError:
            pass
        w.event.clear()


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
    # PostgreSQL: box secrets cached per worker, nonces used in batches (cloudsync/box_auth.py)
    box_cache: BoxCache | None = None
    nonces: NonceBatch | None = None
    lookups: Batch[str, dict[str, Any]] | None = None  # cache misses, looked up together


CLOUD = web.AppKey("cloud", Cloud)
