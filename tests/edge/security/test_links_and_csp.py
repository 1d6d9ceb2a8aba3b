"""Links on phones are http(s) only, and the box's pages carry a CSP (issue 13 #11)."""

from __future__ import annotations

import json
import sqlite3

import aiohttp
import pytest

from tests.conftest import api_url, db_count
from tests.edge.portal.helpers import FAST, STAFF, login

SCREENS = """
[[screens]]
id = "s1"
type = "sim"
name = "门口屏"
"""


@pytest.fixture
async def box(make_config, run_box):
    return await run_box(make_config(extra=FAST + SCREENS))


@pytest.mark.parametrize(
    "url", ["javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,x",
            "//evil.example/x", "vbscript:x"]
)
async def test_script_links_refused_where_content_enters(box, url) -> None:
    item = {"id": "c-js", "kind": "url", "title": "点我", "url": url, "tags": ["phone"]}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{api_url(box)}/api/v1/screens/content", json=item,
                          headers=STAFF) as r:
            got = await r.json()
            assert r.status == 400, got
    assert "url" in got["error"]
    assert db_count(box, "SELECT count(*) FROM screen_content") == 0


async def test_old_script_link_is_not_rendered(box) -> None:
    """An item stored before the check (written straight into the file) is not shown."""
    bad = {"id": "c-old", "kind": "url", "title": "旧链接", "url": "javascript:alert(1)",
           "tags": ["phone"], "duration_s": 10.0}
    db = sqlite3.connect(box.config.db_path)
    with db:
        db.execute("INSERT INTO screen_content (id, kind, sha256, payload, updated_at)"
                   " VALUES ('c-old', 'url', NULL, ?, '2026-01-01T00:00:00+00:00')",
                   (json.dumps(bad),))
    db.close()
    good = {"id": "c-ok", "kind": "url", "title": "好链接", "url": "https://example.org/a",
            "tags": ["phone"]}
    url = api_url(box)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/api/v1/screens/content", json=good, headers=STAFF) as r:
            assert r.status == 201, await r.text()
        who = await login(s, url, "r-1")
        async with s.get(f"{url}/r/read/c-old", headers=who) as r:
            page = await r.text()
            assert r.status == 404
        assert "javascript:" not in page
        async with s.get(f"{url}/r/read/c-ok", headers=who) as r:
            page = await r.text()
            assert r.status == 200 and "https://example.org/a" in page
            assert "<script>" not in page  # no inline script: the CSP forbids it
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        async with s.get(f"{url}/r/read", headers=who) as r:
            assert r.status == 200 and "旧链接" not in await r.text()


@pytest.mark.parametrize("path", ["/r/login", "/r/", "/installer/", "/screen/s1"])
async def test_pages_send_security_headers(box, path) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url(box)}{path}") as r:
            assert r.status == 200, path
            h = r.headers
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert "script-src 'self'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"


async def test_json_answers_are_nosniff(box) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url(box)}/healthz") as r:
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert "Content-Security-Policy" not in r.headers
