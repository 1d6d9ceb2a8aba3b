"""Local store: :class:`Store` (synchronous, one writer) and :class:`AsyncStore` for the loop."""

from edge.core.store.aio import AsyncStore
from edge.core.store.core import (
    Event,
    Store,
    StoreError,
    StoreFullError,
    check_file,
    migrations,
    read_events,
)

__all__ = [
    "AsyncStore",
    "Event",
    "Store",
    "StoreError",
    "StoreFullError",
    "check_file",
    "migrations",
    "read_events",
]
