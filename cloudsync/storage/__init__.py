"""Cloud storage: ``open_storage(url)`` picks SQLite (a path or sqlite:///path) or PostgreSQL
(postgresql://...) behind one interface."""

from __future__ import annotations

from cloudsync.storage.areas import AreaStorage
from cloudsync.storage.base import NotFound, StorageBase, StorageError
from cloudsync.storage.boxes import BoxStorage
from cloudsync.storage.console import ConsoleStorage
from cloudsync.storage.content import ContentStorage
from cloudsync.storage.feed import FeedStorage
from cloudsync.storage.queries import OpsQueryStorage
from cloudsync.storage.records import RecordStorage


class Storage(
    AreaStorage,
    BoxStorage,
    RecordStorage,
    FeedStorage,
    OpsQueryStorage,
    ContentStorage,
    ConsoleStorage,
    StorageBase,
):
    """Backend-neutral operations, one mixin per domain; subclasses (SqliteStorage,
    PostgresStorage) implement the connection primitives."""


async def open_storage(url: str, *, migrate: bool = True, read_url: str | None = None) -> Storage:
    """``read_url``: a PostgreSQL streaming replica the ops lists and statistics read from."""
    if url.startswith(("postgres://", "postgresql://")):
        from cloudsync.storage.postgres import PostgresStorage

        storage: Storage = PostgresStorage(url, read_dsn=read_url)
    else:
        if read_url:
            raise StorageError("a read replica needs a PostgreSQL database")
        from cloudsync.storage.sqlite import SqliteStorage

        storage = SqliteStorage(url.removeprefix("sqlite://"))
    await storage.open()
    if migrate:
        await storage.migrate()
    else:
        await storage.detect_schema()
    return storage


__all__ = ["NotFound", "Storage", "StorageError", "open_storage"]
