"""With ``--relay-domain`` every box has its own origin, ``<box id>.<domain>``, but all of
them are one *site*: a resident's ``SameSite=Lax`` session cookie for one box rides along on
a form another box's page posts to it. The resident pages have no CSRF token of their own,
so the cloud refuses writes sent from anywhere but the box's own origin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest
from aiohttp import web

from cloudsync.context import CLOUD
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from tests.cloudsync.helpers import Cloud
from tests.conftest import api_url, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import door_toml
from tests.edge.portal.helpers import staff
from tests.edge.portal.test_cloud import FAST
from tests.edge.portal.test_relay import relayed
from tests.peers.chromium import browser
from tests.peers.http import serve


@pytest.fixture
def board() -> Iterator[RelayBoard]:
    """A pymodbus TCP relay board as the door."""
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


async def resident_box(make_config, run_box, cloud: Cloud, board: RelayBoard
                       ) -> tuple[str, dict]:
    """A box in community c1 behind the relay (as `serve --relay-domain relay.test`) with door
    d1 on the board and resident r1 who may use it; returns the box id and r1's login code."""
    await cloud.community()  # c1
    config = make_config(extra=FAST + door_toml("d1", board.tcp_port, 5, None))
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1"))
    store.close()
    box, _ = await relayed(cloud, config, run_box)
    box_id = box.service("sync").client.ident.box_id
    cloud.app[CLOUD].relays.domain = "relay.test"
    async with aiohttp.ClientSession() as lan:
        code = await staff(lan, "POST", f"{api_url(box)}/api/v1/portal/codes",
                           json={"resident_id": "r1"})  # fmt: skip
        await staff(lan, "PUT", f"{api_url(box)}/api/v1/residents/r1/access",
                    json={"buildings": ["1"]})  # fmt: skip
    return box_id, code


@pytest.mark.parametrize("backend", ["postgres"])
async def test_another_boxs_page_cannot_open_a_residents_door(
    make_config, run_box, cloud: Cloud, board: RelayBoard
) -> None:
    box_id, code = await resident_box(make_config, run_box, cloud, board)
    own = f"{box_id}.relay.test:{cloud.port}"
    # The resident signs in on their box's origin, as their phone does.
    async with aiohttp.ClientSession(headers={"Host": own}) as phone:
        async with phone.post(f"{cloud.url}/r/login", data={"code": code["code"]},
                              headers={"Origin": f"http://{own}"},
                              allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            cookie = r.cookies[f"qilu_rs__{box_id}"].value
    session = {"Host": own, "Cookie": f"qilu_rs__{box_id}={cookie}"}
    # What the browser sends when a page of another box (same site: *.relay.test) submits
    # a form to this box: the Lax cookie goes along, Origin names the other box.
    for foreign in ({"Origin": f"http://box-evil.relay.test:{cloud.port}",
                     "Sec-Fetch-Site": "same-site"},
                    {"Origin": f"http://box-evil.relay.test:{cloud.port}"},
                    {"Sec-Fetch-Site": "cross-site"}):
        t0 = time.monotonic()
        async with aiohttp.ClientSession() as s, s.post(
            f"{cloud.url}/r/doors/d1/open", headers={**session, **foreign},
            allow_redirects=False,
        ) as r:
            assert r.status == 403, (foreign, r.status, await r.text())
        with pytest.raises(TimeoutError):  # the door stays shut
            await asyncio.to_thread(board.wait_for, 1, 5, True, 0.5, t0)
    # From its own page the same request opens the door.
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s, s.post(
        f"{cloud.url}/r/doors/d1/open",
        headers={**session, "Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    ) as r:
        assert r.status == 303, await r.text()
    await asyncio.to_thread(board.wait_for, 1, 5, True, 3.0, t0)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_in_a_browser_a_page_on_another_box_origin_opens_no_door(
    make_config, run_box, cloud: Cloud, board: RelayBoard
) -> None:
    """The same in Chromium: the resident signs in on their box's origin, then opens a page
    another origin of the relay domain serves (what a compromised box can serve), which
    submits a form to their box's door. The browser sends the resident's cookie along (one
    site); the door must stay shut."""
    box_id, code = await resident_box(make_config, run_box, cloud, board)
    own = f"http://{box_id}.relay.test:{cloud.port}"
    evil = web.Application()

    async def lure(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f"<form id=f method=post action='{own}/r/doors/d1/open'></form>"
            "<script>document.getElementById('f').submit()</script>"))

    evil.router.add_get("/", lure)
    async with serve(evil) as evil_url, browser(
        "--host-resolver-rules=MAP *.relay.test 127.0.0.1"
    ) as b:
        evil_port = evil_url.rsplit(":", 1)[1]
        page = await (await b.new_context()).new_page()
        await page.goto(f"{own}/r/login")
        await page.fill("input[name=code]", code["code"])
        await page.click("main form button")
        await page.wait_for_url(f"{own}/r/**", timeout=10000)
        t0 = time.monotonic()
        await page.goto(f"http://box-evil.relay.test:{evil_port}/")
        for _ in range(50):  # bounded: 5 s for the form to go and come back
            if page.url.startswith(own):
                break
            await asyncio.sleep(0.1)
        assert page.url.startswith(own), page.url  # the form did reach the box's origin
        with pytest.raises(TimeoutError):  # ... and the door stayed shut
            await asyncio.to_thread(board.wait_for, 1, 5, True, 1.0, t0)
        # The resident's own button still opens it.
        await page.goto(f"{own}/r/doors/d1/open")
        t1 = time.monotonic()
        await page.click("#confirm-open")
        await asyncio.to_thread(board.wait_for, 1, 5, True, 3.0, t1)
