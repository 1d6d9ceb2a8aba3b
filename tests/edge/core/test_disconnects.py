"""The box's web server: a client that leaves mid-request (a phone closing the page during an
upload) is one INFO line and an audit row saying so (499), not two tracebacks (aiohttp's and
the office audit's); a real error still logs its traceback."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from tests.cloudsync.helpers import wait_for
from tests.conftest import STAFF_TOKEN, api_url, db_count

PATH = "/api/v1/installer/setup/validate"


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]


def left(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        r.name == "common.disconnect" and f"POST {PATH}" in r.getMessage() for r in caplog.records
    )


async def test_cut_request_is_one_line_and_real_errors_keep_their_traceback(
    make_config: Any, run_box: Any, caplog: pytest.LogCaptureFixture
) -> None:
    box = await run_box(make_config())
    caplog.set_level(logging.INFO)
    port = box.service("api").port
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {STAFF_TOKEN}\r\n"
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"community": '.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body now
    writer.transport.abort()

    async def handled() -> bool:  # logged either way (the old code: two tracebacks)
        return left(caplog) or bool(tracebacks(caplog))

    await wait_for(handled, 10, 0.05)
    assert tracebacks(caplog) == []
    assert left(caplog)
    audited = f"SELECT count(*) FROM office_audit WHERE action = 'POST {PATH}' AND status = 499"
    assert db_count(box, audited) == 1

    # A real error in the same handler: a 500 and its traceback, as before.
    caplog.clear()

    async def broken(request: Any) -> Any:
        raise RuntimeError("disk on fire")

    box.service("installer")._proposed = broken
    async with (
        aiohttp.ClientSession() as s,
        s.post(api_url(box) + PATH, json={}, headers={"Authorization": f"Bearer {STAFF_TOKEN}"})
        as r,
    ):
        assert r.status == 500
    assert any("disk on fire" in str(r.exc_info[1]) for r in tracebacks(caplog))
    assert not left(caplog)
