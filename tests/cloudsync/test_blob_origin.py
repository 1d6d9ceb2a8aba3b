"""Content files are served on the console's own origin (``/api/v1/ops/content/<sha>``,
``/api/v1/blobs/<sha>``) with the type their uploader named: they must never run as a page
of that origin, or a district admin's upload scripts a city admin's console session."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.cloudsync.console_helpers import PASSWORD, user_with_password
from tests.cloudsync.helpers import Cloud
from tests.peers.chromium import browser

# What a district admin uploads as a "notice": on the console origin it would read the
# viewer's CSRF token from a console page and send an emergency to a district the uploader
# does not hold.
EVIL = b"""<!doctype html><html><body><script>
fetch('/console/overview').then(r => r.text()).then(t => {
  const csrf = t.match(/name="csrf" content="([^"]+)"/)[1];
  return fetch('/api/v1/ops/emergency', {method: 'POST', headers: {'X-CSRF-Token': csrf,
    'Content-Type': 'application/json'},
    body: JSON.stringify({message: 'evacuate now', targets: {areas: ['shizhong']}})});
}).then(r => { document.title = 'sent ' + r.status; })
  .catch(e => { document.title = 'blocked ' + e; });
</script></body></html>"""


@pytest.mark.parametrize("backend", ["postgres"])
async def test_an_uploaded_file_cannot_script_the_console_origin(cloud: Cloud) -> None:
    await cloud.community()  # jinan / lixia / quancheng / c1
    await cloud.community(district="shizhong", street="s2", community="c2")
    mallory = await cloud.ops_user("mallory", "admin", "lixia")  # a district admin
    await user_with_password(cloud, "boss", "admin", "jinan")  # the city's admin
    async with (
        aiohttp.ClientSession(headers=cloud.headers(mallory)) as s,
        s.post(f"{cloud.url}/api/v1/ops/content?title=notice", data=EVIL,
               headers={"Content-Type": "text/html"}) as r,
    ):
        assert r.status == 201, await r.text()
        up = await r.json()
    url = f"{cloud.url}/api/v1/ops/content/{up['sha256']}"
    async with browser() as b:
        page = await (await b.new_context()).new_page()
        await page.goto(f"{cloud.url}/console/login")
        await page.fill("input[name=name]", "boss")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/console/overview", timeout=10000)
        # The city admin opens the file (a link pasted in a chat, the library's address).
        await page.goto(url)
        for _ in range(50):  # bounded: 5 s for the script, if it runs, to finish
            if (await page.title()).startswith(("sent", "blocked")):
                break
            await asyncio.sleep(0.1)
    sent = [
        a for a in await cloud.storage.audit_list("/", "boss", 0, 50)
        if a["action"] == "POST /api/v1/ops/emergency"
    ]
    assert sent == [], sent  # nothing went out in the city admin's name
    async with (
        aiohttp.ClientSession(headers=cloud.headers()) as s,
        s.get(url) as r,
    ):
        assert r.status == 200 and await r.read() == EVIL  # the file itself still downloads
        assert "sandbox" in r.headers.get("Content-Security-Policy", "")
        assert r.headers.get("X-Content-Type-Options") == "nosniff"
        # only for who asked: a shared cache in front of the cloud keeps no copy for others
        cache = r.headers["Cache-Control"]
        assert "private" in cache and "public" not in cache
