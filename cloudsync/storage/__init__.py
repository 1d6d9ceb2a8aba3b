"""Cloud storage: ``open_storage(url)`` picks SQLite (a path or sqlite:///path) or PostgreSQL
(postgresql://...) behind one interface."""

from __future__ import annotations

from cloudsync.storage.base import NotFound, Storage, StorageError


async def open_storage(url: str, *, migrate: bool = True) -> Storage:
    if url.startswith(("postgres://", "postgresql://")):
        from cloudsync.storage.postgres import PostgresStorage

        storage: Storage = PostgresStorage(url)
    else:
        from cloudsync.storage.sqlite import SqliteStorage

        storage = SqliteStorage(url.removeprefix("sqlite://"))
    await storage.open()
    if migrate:
        await storage.migrate()
    return storage


__all__ = ["NotFound", "Storage", "StorageError", "open_storage"]
