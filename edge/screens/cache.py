"""The content cache: files named by their sha256, verified before they are ever served.

A file enters the cache only after its hash matched (downloads go to ``partial/<sha>.part``
and resume with HTTP Range after a cut). The index in the store keeps size and mtime of each
verified file; a file whose size or mtime changed since is re-hashed before use and dropped
if it no longer matches, so a corrupt or tampered file is never shown and gets fetched again.
A disk budget is kept by evicting the least recently used files, never ones that the caller
says are scheduled (the next N days).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import aiohttp

from edge.screens import store as db

log = logging.getLogger(__name__)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 256 * 1024


class CacheError(RuntimeError):
    """A file could not be cached; the message says why."""


class CacheFullError(CacheError):
    """Not enough room in the budget even after evicting every unscheduled file."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def _hash_or_drop(tmp: Path, sha: str | None) -> tuple[str, int]:
    """Hash a finished download; a file that is not what was announced is deleted."""
    actual = sha256_file(tmp)
    if sha is not None and actual != sha:
        tmp.unlink()
        raise CacheError(f"sha256 mismatch: expected {sha}, file has {actual}")
    return actual, tmp.stat().st_size


class ContentCache:
    def __init__(self, root: Path, store: object, budget_bytes: int) -> None:
        self.root = root
        self.store = store  # AsyncStore
        self.budget = budget_bytes
        self.partial = root / "partial"
        self.partial.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        self.downloaded_bytes = 0  # bytes actually transferred (resume proof, metrics)

    def path(self, sha: str) -> Path:
        if not SHA256.match(sha):
            raise CacheError(f"sha256: not a lowercase hex sha256: {sha!r}")
        return self.root / sha[:2] / sha

    def _lock(self, sha: str) -> asyncio.Lock:
        return self._locks.setdefault(sha, asyncio.Lock())

    # --- lookups --------------------------------------------------------------------------

    async def has(self, sha: str) -> bool:
        """True if a verified file with this hash is here (re-hashing it if it changed)."""
        row = await self.store.run(db.cache_get, self.store.sync, sha)
        if row is None:
            return False
        path = self.path(sha)
        try:
            st = path.stat()
        except FileNotFoundError:
            await self.store.run(db.cache_remove, self.store.sync, sha)
            return False
        if st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]:
            return True
        return await self.verify(sha)

    async def verify(self, sha: str) -> bool:
        """Re-hash one file; a mismatch removes it from disk and from the index."""
        path = self.path(sha)
        try:
            actual = await asyncio.to_thread(sha256_file, path)
        except FileNotFoundError:
            actual = None
        if actual == sha:
            st = path.stat()
            await self.store.run(db.cache_put, self.store.sync, sha, st.st_size, st.st_mtime_ns)
            return True
        log.warning(
            "cached file %s is corrupt (hash %s); removed, it will be fetched again", sha, actual
        )
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        await self.store.run(db.cache_remove, self.store.sync, sha)
        return False

    async def verify_all(self) -> list[str]:
        """Re-hash every cached file (at start-up); returns the hashes that were bad."""
        bad = []
        for row in await self.store.run(db.cache_entries, self.store.sync):
            if not await self.verify(row["sha256"]):
                bad.append(row["sha256"])
        return bad

    async def usage(self) -> int:
        return sum(r["size"] for r in await self.store.run(db.cache_entries, self.store.sync))

    async def touch(self, sha: str) -> None:
        await self.store.run(db.cache_touch, self.store.sync, sha)

    # --- room -------------------------------------------------------------------------------

    async def make_room(self, need: int, protected: set[str]) -> list[str]:
        """Evict least recently used unprotected files until ``need`` more bytes fit."""
        if need > self.budget:
            raise CacheFullError(f"file of {need} bytes is larger than the whole budget")
        entries = await self.store.run(db.cache_entries, self.store.sync)
        used = sum(r["size"] for r in entries)
        evicted = []
        for row in entries:  # least recently used first
            if used + need <= self.budget:
                break
            if row["sha256"] in protected:
                continue
            await self.remove(row["sha256"])
            used -= row["size"]
            evicted.append(row["sha256"])
        if used + need > self.budget:
            raise CacheFullError(
                f"cache budget {self.budget} bytes is full of scheduled content"
                f" ({used} used, {need} needed)"
            )
        if evicted:
            log.info("evicted %d unscheduled files to make room", len(evicted))
        return evicted

    async def remove(self, sha: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha).unlink()
        await self.store.run(db.cache_remove, self.store.sync, sha)

    # --- adding files -----------------------------------------------------------------------

    async def _install(self, tmp: Path, sha: str | None, protected: set[str]) -> str:
        actual, size = await asyncio.to_thread(_hash_or_drop, tmp, sha)
        if not await self.has(actual):
            await self.make_room(size, protected | {actual})
            dest = self.path(actual)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            st = dest.stat()
            await self.store.run(db.cache_put, self.store.sync, actual, size, st.st_mtime_ns)
        else:
            await asyncio.to_thread(tmp.unlink)
        return actual

    async def add_bytes(self, data: bytes, protected: set[str] = frozenset()) -> str:
        """Cache an uploaded file; returns its sha256."""
        tmp = self.partial / f"upload-{os.getpid()}-{id(data)}.tmp"
        await asyncio.to_thread(tmp.write_bytes, data)
        return await self._install(tmp, None, set(protected))

    async def fetch(
        self,
        sha: str,
        url: str,
        *,
        size: int | None = None,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
        protected: set[str] = frozenset(),
        timeout_s: float = 60.0,
    ) -> Path:
        """Download ``url`` into the cache as ``sha``, resuming a partial file with Range."""
        path = self.path(sha)
        async with self._lock(sha):
            if await self.has(sha):
                return path
            if size is not None:
                await self.make_room(size, set(protected) | {sha})
            part = self.partial / f"{sha}.part"
            have = part.stat().st_size if part.exists() else 0
            hdrs = dict((headers() if callable(headers) else headers) or {})
            if have:
                hdrs["Range"] = f"bytes={have}-"
            tmo = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s)
            async with aiohttp.ClientSession(timeout=tmo) as s, s.get(url, headers=hdrs) as r:
                if r.status == 416 and have:
                    pass  # the part is already whole (or wrong): hashing below decides
                elif r.status == 206 and have:
                    await self._write(r, part, append=True)
                elif r.status == 200:
                    await self._write(r, part, append=False)
                else:
                    raise CacheError(f"GET {url}: HTTP {r.status}")
            if size is not None and part.stat().st_size > size:
                part.unlink()
                raise CacheError(f"{url}: got more than the announced {size} bytes")
            if size is not None and part.stat().st_size < size:
                raise CacheError(f"{url}: incomplete ({part.stat().st_size}/{size} bytes)")
            try:
                await self._install(part, sha, set(protected))
            except CacheError:
                raise  # the bad part was deleted; the next try starts over
            return path

    async def _write(self, r: aiohttp.ClientResponse, part: Path, *, append: bool) -> None:
        f = await asyncio.to_thread(part.open, "ab" if append else "wb")
        try:
            async for chunk in r.content.iter_chunked(CHUNK):
                await asyncio.to_thread(f.write, chunk)
                self.downloaded_bytes += len(chunk)
        finally:
            await asyncio.to_thread(f.close)
