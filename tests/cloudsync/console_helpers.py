"""Console test helpers: a cloud with console settings, users with passwords, a signed-in
HTTP session (the real sign-in form, cookie jar and CSRF token)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cloudsync.console.auth import ConsoleSettings, hash_password
from tests.cloudsync.helpers import Cloud, start_cloud

PASSWORD = "长城-correct-horse-9"


async def console_cloud(db: str, tmp: Path, **settings: Any) -> Cloud:
    return await start_cloud(db, tmp, console=ConsoleSettings(**settings))


async def user_with_password(
    cloud: Cloud, name: str, role: str = "admin", area: str | None = None, totp: str | None = None
) -> str:
    token = "" if name == "root" else await cloud.ops_user(name, role, area)
    await cloud.storage.ops_user_set_password(name, hash_password(PASSWORD), totp)
    return token


@dataclass
class Browserless:
    """A signed-in console session over plain HTTP, as a browser holds it."""

    cloud: Cloud
    http: aiohttp.ClientSession
    csrf: str = ""
    login_page: str = ""  # what the sign-in POST answered

    async def call(
        self, method: str, path: str, *, csrf: bool = True, **kw: Any
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and method != "GET" else {}
        headers.update(kw.pop("headers", {}))
        async with self.http.request(
            method, self.cloud.url + path, headers=headers, allow_redirects=False, **kw
        ) as r:
            try:
                return r.status, await r.json(content_type=None)
            except ValueError:
                return r.status, await r.text()

    async def close(self) -> None:
        await self.http.close()


async def sign_in(
    cloud: Cloud, name: str, password: str = PASSWORD, totp: str = "",
    http: aiohttp.ClientSession | None = None,
) -> tuple[Browserless, int, aiohttp.ClientResponse]:
    """Fill in the real sign-in form; the session (csrf read from a page), the POST status.
    ``http``: a browser's client to use (its cookies, its address), else a new one."""
    if http is None:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # 127.0.0.1
    async with http.get(cloud.url + "/console/login") as r:
        form = await r.text()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token, form
    async with http.post(
        cloud.url + "/console/login",
        data={"csrf": token.group(1), "name": name, "password": password, "totp": totp},
        allow_redirects=False,
    ) as r:
        status, resp = r.status, r
        text = await r.text()
    s = Browserless(cloud, http, login_page=text)
    if status == 303:
        async with http.get(cloud.url + "/console/overview", allow_redirects=False) as r:
            page = await r.text()
        m = re.search(r'<meta name="csrf" content="([^"]+)"', page)
        assert m, page
        s.csrf = m.group(1)
    return s, status, resp
