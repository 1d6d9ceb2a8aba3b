"""Bad input on public endpoints answers 4xx naming the problem, never a 500 (issue 13 #9)."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import STAFF_TOKEN, api_url, db_count

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 1000 + b"]" * 1000


@pytest.fixture
async def box(make_config, run_box):
    return await run_box(make_config())


@pytest.mark.parametrize(
    ("path", "body", "headers", "says"),
    [
        ("/api/v1/portal/login", b'{"code": "\xff\xfe"}', JSON, "UTF-8"),
        ("/api/v1/reports/classify", b'{"text": "\xc3\x28"}', JSON, "UTF-8"),
        ("/api/v1/portal/login", DEEP, JSON, "deep"),
        ("/api/v1/reports/classify", DEEP, JSON, "deep"),
        ("/api/v1/reports", b"--x\r\n", {"Content-Type": "multipart/form-data"}, "boundary"),
        (
            "/api/v1/reports",
            b'--xyz\r\nContent-Disposition: form-data; name="text"\r\n\r\nhal',
            {"Content-Type": "multipart/form-data; boundary=xyz"},
            "multipart",
        ),
        ("/api/v1/tickets", b"--x\r\n", {"Content-Type": "multipart/form-data"}, "boundary"),
        ("/r/login", b"--x\r\n", {"Content-Type": "multipart/form-data"}, "boundary"),
        (
            "/api/v1/reports",
            b'--b\r\nContent-Disposition: form-data; name="\x00\x1e"\r\n\r\nx\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
            "multipart",
        ),
    ],
)
async def test_undecodable_bodies_are_400(box, path, body, headers, says) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url(box)}{path}", data=body, headers=headers) as r:
            got = await r.json()
            assert r.status == 400, got
    assert says.lower() in got["error"].lower(), got
    assert db_count(box, "SELECT count(*) FROM reports") == 0


async def test_non_ascii_follow_key_is_403(box) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url(box)}/api/v1/reports", json={"text": "楼道灯坏了"}) as r:
            rep = await r.json()
        for path in (f"/api/v1/reports/{rep['id']}", f"/api/v1/tickets/{rep['ticket_id']}"):
            if path.endswith("None"):
                continue
            async with s.get(f"{api_url(box)}{path}", params={"key": "钥匙é"}) as r:
                assert r.status == 403, await r.text()


@pytest.mark.parametrize(
    "path", ["/api/v1/reports", "/api/v1/alerts", "/api/v1/tickets", "/api/v1/access/events"]
)
async def test_limit_not_a_number_is_400(box, path) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url(box)}{path}?limit=abc", headers=STAFF) as r:
            got = await r.json()
            assert r.status in (400, 404), got  # 404: the service is not in this build
    if r.status == 400:
        assert got["field"] == "limit" and "abc" in got["error"]
