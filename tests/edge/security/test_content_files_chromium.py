"""Content files (/screen/content/<sha>) are served from the box's own origin with the MIME
type their item names, which staff or a cloud ops admin choose (image/svg+xml is an image/*
upload; a published item may name any type). An outside probe published an SVG with a script:
opened in a resident's (or an office user's) browser on the LAN, it ran as the box's own page
and read their data with their cookie. Such files are now served sandboxed (no script, an
opaque origin); screens and phones showing them in <img>/<video> are not affected."""

from __future__ import annotations

import aiohttp

from tests.conftest import api_url
from tests.edge.portal.helpers import FAST, STAFF, staff
from tests.peers.chromium import browser

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
       b"<script>fetch('/r/me').then(r => r.text())"
       b".then(t => { window.leak = t })"
       b".catch(e => { window.leak = 'refused:' + e })</script>"
       b'<rect width="40" height="40" fill="#a31515"/></svg>')


async def test_a_content_file_cannot_run_script_on_the_box_origin(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        async with s.put(f"{base}/api/v1/screens/content/c-svg/file", data=SVG,
                         headers={**STAFF, "Content-Type": "image/svg+xml"}) as r:
            item = await r.json()
            assert r.status == 201, item
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": "r-1", "building": "1", "name": "王阿姨"})
        url = f"{base}/screen/content/{item['sha256']}"
        async with s.get(url) as r:  # still served, with its type, for <img> on screens
            assert r.status == 200 and r.content_type == "image/svg+xml"
            assert await r.read() == SVG
            csp = r.headers.get("Content-Security-Policy", "")
    async with browser() as b:
        phone = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = await phone.new_page()
        await page.goto(f"{base}/r/login?code={code['code']}")  # the resident's cookie
        await page.click("main form button")
        await page.wait_for_url("**/r/read", timeout=10000)
        await page.goto(url)
        await page.wait_for_timeout(1500)
        leak = await page.evaluate("() => window.leak")
        assert leak is None, "the file's script read /r/me: " + ("王阿姨" if "王阿姨" in leak
                                                                 else leak[:200])
        # The picture itself still shows on a box page (as screens and phones show it).
        await page.goto(f"{base}/r/read")
        ok = await page.evaluate("""url => new Promise(done => {
            const img = new Image(); img.onload = () => done(img.naturalWidth);
            img.onerror = () => done(-1); img.src = url; })""", url)
        assert ok == 40
    assert "sandbox" in csp and "default-src 'none'" in csp, csp
