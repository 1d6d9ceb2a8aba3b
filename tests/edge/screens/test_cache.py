"""Content cache against a real aiohttp file server on loopback (Range, cut connections)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from aiohttp import web

from edge.core.store import AsyncStore, Store
from edge.screens.cache import CacheError, CacheFullError, ContentCache
from tests.conftest import free_port


@pytest.fixture
async def astore(tmp_path: Path):
    s = AsyncStore(Store(tmp_path / "q.db"))
    yield s
    s.close()


class Blobs:
    """A blob server like the cloud's: GET /blob/<name> with HTTP Range; can cut a transfer."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None  # send this many bytes of the next full GET, then drop
        self.requests: list[str | None] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        data = self.files[request.match_info["name"]]
        self.requests.append(request.headers.get("Range"))
        if self.cut_after is not None and "Range" not in request.headers:
            cut, self.cut_after = self.cut_after, None
            resp = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await resp.prepare(request)
            await resp.write(data[:cut])
            request.transport.close()  # the link drops mid-file
            return resp
        rng = request.http_range
        if rng.start is not None:
            body = data[rng.start :]
            return web.Response(
                status=206,
                body=body,
                headers={"Content-Range": f"bytes {rng.start}-{len(data) - 1}/{len(data)}"},
            )
        return web.Response(body=data)


@pytest.fixture
async def blobs():
    b = Blobs()
    app = web.Application()
    app.router.add_get("/blob/{name}", b.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    b.base = f"http://127.0.0.1:{port}/blob"
    yield b
    await runner.cleanup()


def blob(n: int, seed: int = 0) -> tuple[bytes, str]:
    data = (hashlib.sha256(str(seed).encode()).digest() * (n // 32 + 1))[:n]
    return data, hashlib.sha256(data).hexdigest()


async def test_download_is_verified_and_resumes_with_range(tmp_path, astore, blobs):
    data, sha = blob(2_000_000)
    blobs.files["a"] = data
    blobs.cut_after = 700_000
    cache = ContentCache(tmp_path / "c", astore, 10_000_000)
    with pytest.raises(Exception):  # noqa: B017 - the cut surfaces as a client payload error
        await cache.fetch(sha, f"{blobs.base}/a", size=len(data))
    assert not await cache.has(sha)
    partial = (tmp_path / "c" / "partial" / f"{sha}.part").stat().st_size
    assert 0 < partial < len(data)
    path = await cache.fetch(sha, f"{blobs.base}/a", size=len(data))
    assert path.read_bytes() == data
    assert blobs.requests[-1] == f"bytes={partial}-"
    # Resumed, not started over: about one file's worth was transferred in total.
    assert cache.downloaded_bytes == len(data)
    assert await cache.has(sha)


async def test_wrong_hash_is_refused_and_nothing_cached(tmp_path, astore, blobs):
    data, _ = blob(1000)
    _, other = blob(1000, seed=1)
    blobs.files["x"] = data
    cache = ContentCache(tmp_path / "c", astore, 10_000)
    with pytest.raises(CacheError, match="mismatch"):
        await cache.fetch(other, f"{blobs.base}/x")
    assert not await cache.has(other)
    assert not cache.path(other).exists()


async def test_tampered_file_is_rejected_and_fetched_again(tmp_path, astore, blobs):
    data, sha = blob(50_000)
    blobs.files["t"] = data
    cache = ContentCache(tmp_path / "c", astore, 1_000_000)
    path = await cache.fetch(sha, f"{blobs.base}/t")
    with path.open("r+b") as f:  # flip bytes in place, same size
        f.seek(100)
        f.write(b"\x00" * 16)
    os.utime(path, ns=(1, 1))
    assert not await cache.has(sha)
    assert not path.exists()
    await cache.fetch(sha, f"{blobs.base}/t")
    assert path.read_bytes() == data and await cache.has(sha)
    # verify_all catches tampering even when size and mtime were forged back
    st = path.stat()
    with path.open("r+b") as f:
        f.write(b"\xff")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert await cache.verify_all() == [sha]


async def test_lru_eviction_never_removes_scheduled_content(tmp_path, astore):
    cache = ContentCache(tmp_path / "c", astore, 3000)
    shas = []
    for i in range(3):
        data, _ = blob(1000, seed=i)
        shas.append(await cache.add_bytes(data))
    await cache.touch(shas[1])  # now shas[0] and shas[2] are older than shas[1]... order:
    # least recently used: shas[0] (protected), then shas[2]
    data, new = blob(1000, seed=9)
    await cache.add_bytes(data, protected={shas[0]})
    assert await cache.has(shas[0]) and await cache.has(shas[1]) and await cache.has(new)
    assert not await cache.has(shas[2])
    with pytest.raises(CacheFullError):
        big, _ = blob(2500, seed=5)
        await cache.add_bytes(big, protected={shas[0], shas[1], new})
    assert await cache.usage() <= 3000
    for s in (shas[0], shas[1], new):
        assert await cache.has(s)
