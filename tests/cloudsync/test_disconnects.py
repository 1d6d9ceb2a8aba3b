"""A client that leaves mid-request (a box's upload cut on a flaky link, a console tab closed)
is one INFO line naming the request, not aiohttp's "Error handling request" traceback; a real
error, also a connection error of ours while the client waits, still logs its traceback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from common import protocol as p
from tests.cloudsync.helpers import Cloud, start_cloud, wait_for


@pytest.fixture
async def cloud(tmp_path: Path) -> Any:
    # SQLite only: what happens to the connection does not depend on the backend.
    c = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    yield c
    await c.stop()


async def cut_mid_body(cloud: Cloud, head: str, headers: dict[str, str], sent: bytes) -> None:
    """Send the head and part of a body that claims 1000 bytes, then drop the connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", cloud.port)
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    writer.write(f"{head}\r\nHost: x\r\nContent-Length: 1000\r\n{lines}\r\n".encode() + sent)
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body now
    writer.transport.abort()


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]


async def test_cut_requests_log_one_line_real_errors_keep_their_traceback(
    cloud: Cloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ident = await cloud.new_box()

    def left(path: str) -> bool:
        return any(
            r.name == "common.disconnect" and path in r.getMessage() for r in caplog.records
        )

    # A box's upload cut mid-body (it reads the body to check the signature).
    signed = p.sign(ident.secret, ident.box_id, "POST", "/api/v1/box/upload", b"x" * 1000)
    await cut_mid_body(
        cloud,
        "POST /api/v1/box/upload HTTP/1.1",
        {**signed, "Content-Type": "application/json"},
        b'{"records": [',
    )
    # An ops write cut mid-body: its audit row says the client left (499), not 400/500.
    await cut_mid_body(
        cloud,
        "POST /api/v1/ops/areas HTTP/1.1",
        {"Authorization": f"Bearer {cloud.admin}", "Content-Type": "application/json"},
        b'{"id": "c9", "level": ',
    )

    async def both_handled() -> bool:  # logged either way (the old code: two tracebacks)
        return len(tracebacks(caplog)) + left("/box/upload") + left("/ops/areas") >= 2

    await wait_for(both_handled, 10)
    assert tracebacks(caplog) == []
    assert left("POST /api/v1/box/upload") and left("POST /api/v1/ops/areas")
    rows = await cloud.storage.audit_list("", None, 0, 10)
    assert [(r["action"], r["status"]) for r in rows][:1] == [("POST /api/v1/ops/areas", 499)]

    # A real error: a 500 and its traceback, as before.
    caplog.clear()

    async def broken(*a: Any) -> None:
        raise RuntimeError("disk on fire")

    cloud.storage.box_heartbeat = broken
    hb = p.Heartbeat(software_version="t")
    status, _ = await signed_post(cloud, ident, "/api/v1/box/heartbeat", hb.model_dump_json())
    assert status == 500
    assert any("disk on fire" in str(r.exc_info[1]) for r in tracebacks(caplog))

    # A connection error of ours while the client is still there is not "the client left".
    caplog.clear()

    async def reset(*a: Any) -> None:
        raise ConnectionResetError("database socket reset")

    cloud.storage.box_heartbeat = reset
    status, _ = await signed_post(cloud, ident, "/api/v1/box/heartbeat", hb.model_dump_json())
    assert status == 500
    assert any("database socket reset" in str(r.exc_info[1]) for r in tracebacks(caplog))
    assert not left("/api/v1/box/heartbeat")


async def signed_post(cloud: Cloud, ident: Any, path: str, body: str) -> tuple[int, str]:
    data = body.encode()
    h = p.sign(ident.secret, ident.box_id, "POST", path, data)
    h["Content-Type"] = "application/json"
    async with aiohttp.ClientSession() as s, s.post(cloud.url + path, data=data, headers=h) as r:
        return r.status, await r.text()
