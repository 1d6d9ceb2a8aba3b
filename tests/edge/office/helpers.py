"""Shared steps of the office tests: a box with office users made by the real CLI, and a
signed-in aiohttp session (the sign-in form, as a browser posts it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from click.testing import CliRunner

from edge.cli import main
from tests.conftest import STAFF_TOKEN

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
PASSWORDS = {"ann": "ann-password-123", "vic": "vic-password-456"}


def session() -> aiohttp.ClientSession:
    """A client that keeps cookies from 127.0.0.1 (aiohttp's default jar ignores IP hosts)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def add_users(config_path: Path) -> None:
    """ann (admin) and vic (viewer), through `qilu-edge office user add --password-stdin`."""
    for name, role in (("ann", "admin"), ("vic", "viewer")):
        out = CliRunner().invoke(
            main, ["office", "user", "add", name, "--role", role, "--password-stdin",
                   "-c", str(config_path)], input=PASSWORDS[name] + "\n")  # fmt: skip
        assert out.exit_code == 0, out.output
        assert "/office/" in out.output


async def sign_in(s: aiohttp.ClientSession, base: str, name: str, password: str | None = None,
                  totp: str = "") -> tuple[int, str]:  # fmt: skip
    """Post the sign-in form; (status, final URL or body). Cookies stay in ``s``."""
    async with s.get(f"{base}/office/login") as r:
        assert r.status == 200
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert token is not None
    form = {"csrf": token.group(1), "name": name, "password": password or PASSWORDS[name],
            "totp": totp}
    async with s.post(f"{base}/office/login?next=/office/tickets", data=form,
                      allow_redirects=False) as r:  # fmt: skip
        return r.status, r.headers.get("Location", "") or await r.text()


def csrf_of(html: str) -> str:
    m = re.search(r'<meta name="csrf" content="([^"]+)">', html)
    assert m is not None, "no csrf meta on the page"
    return m.group(1)


async def page_csrf(s: aiohttp.ClientSession, base: str) -> str:
    async with s.get(f"{base}/office/today", allow_redirects=False) as r:
        assert r.status == 200, r.status
        return csrf_of(await r.text())


async def new_ticket(s: aiohttp.ClientSession, base: str, title: str = "3号楼电梯异响") -> Any:
    async with s.post(f"{base}/api/v1/tickets", headers=STAFF,
                      json={"title": title, "building": "3", "urgency": "high"}) as r:
        body = await r.json()
        assert r.status == 201, body
        return body
