"""Residents away from home use their box's /r/ pages through the real cloud's relay."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from click.testing import CliRunner

from cloudsync import relay as proto
from cloudsync.context import CLOUD
from edge.access import store as access_db
from edge.cli import main
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from edge.features import parse_config
from tests.cloudsync.helpers import Cloud, cli_provision, start_cloud, wait_for
from tests.conftest import api_url, box_toml, free_port
from tests.drivers.doors.relay_peers import RelayBoard
from tests.edge.access.test_engine import door_toml
from tests.edge.portal.helpers import STAFF, article, staff
from tests.edge.portal.test_cloud import FAST
from tests.edge.portal.test_pages_chromium import PHONE, feed_ids
from tests.peers.chromium import browser


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    """A real cloud (in this process, SQLite) with the community c1."""
    c = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    await c.community(community="c1")
    yield c
    await c.stop()


@pytest.fixture
def board() -> Iterator[RelayBoard]:
    """A pymodbus TCP relay board as the doors."""
    b = RelayBoard(units=(1,), tcp_port=free_port()).start()
    yield b
    b.stop()


async def relayed(
    cloud: Cloud, config: Any, run_box: Any, community: str = "c1"
) -> tuple[Any, Any]:
    """A box provisioned into the community, running, with its relay socket open."""
    await cli_provision(config.source, cloud.url, await cloud.claim(community))
    box = await run_box(config)
    relay = box.service("portal_relay")
    await wait_for(lambda: _true(relay.connected), 10)
    return box, relay


def test_only_resident_paths_are_relayed() -> None:
    assert proto.allowed("/r/read") and proto.allowed("/r/read/a-1?x=1")
    assert proto.allowed("/api/v1/reports") and proto.allowed("/api/v1/taxonomy")
    for bad in (
        "/api/v1/status", "/api/v1/doors/d1/open", "/api/v1/portal/codes", "/screen/s1",
        "/r/../api/v1/status", "/r/%2e%2e/api/v1/status", "/r/a/%2E%2E/%2E%2E/healthz",
        "//evil/r/", "r/read", "/r\\..\\api",
    ):  # fmt: skip
        assert not proto.allowed(bad), bad


@pytest.mark.parametrize(
    "frame", [b"", b"\x00\x00", b"\x00\x00\x00\x09{}", b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x01x"]
)
def test_bad_frames_are_refused_by_name(frame: bytes) -> None:
    with pytest.raises(ValueError, match="relay frame"):
        proto.unpack(frame)


def test_frames_round_trip() -> None:
    head, body = proto.unpack(proto.pack({"id": 7, "path": "/r/读"}, b"\x00\xff"))
    assert head == {"id": 7, "path": "/r/读"} and body == b"\x00\xff"


async def test_a_resident_away_from_home_logs_in_reads_and_acknowledges(
    make_config, run_box, cloud: Cloud
) -> None:
    config = make_config(extra=FAST)
    box, relay = await relayed(cloud, config, run_box)
    assert relay.status()["away_url"] == f"{cloud.url}/r/at/c1"
    base = api_url(box)
    async with aiohttp.ClientSession() as lan:  # staff on the community network
        await article(lan, base, "a-1", "防汛通知", ["safety"], must_read=True)
        code = await staff(
            lan, "POST", f"{base}/api/v1/portal/codes",
            json={"resident_id": "r-9", "name": "李叔", "building": "2"},
        )  # fmt: skip

    jar = aiohttp.CookieJar(unsafe=True)  # cookies on a bare IP host, as a phone keeps them
    async with aiohttp.ClientSession(cookie_jar=jar) as phone:  # the resident, anywhere
        async with phone.get(f"{cloud.url}/r/read") as r:
            assert r.status == 404 and "请先选择小区" in await r.text()
        # a community's link only: a city or street id is no community (it used to pick some
        # box of the whole city, reading every box of the network per call: security probe 5)
        for where in ("nowhere", "jinan", "quancheng"):
            async with phone.get(f"{cloud.url}/r/at/{where}") as r:
                assert r.status == 404 and "未找到小区" in await r.text(), where
        async with phone.get(f"{cloud.url}/r/at/c1") as r:  # -> /r/read -> /r/login
            assert r.status == 200 and "社区居民登录" in await r.text()
            assert str(r.url).endswith("/r/login")
        async with phone.post(f"{cloud.url}/r/login", data={"code": "000000000000"}) as r:
            assert r.status == 401 and "登录码错误" in await r.text()
        assert len(code["code"]) == 12  # its link goes through the cloud: the long kind
        # The staff's link goes through the cloud (a phone on mobile data can follow it) and
        # only fills the form: opening it does not spend the code.
        assert code["link"].startswith(f"{cloud.url}/r/at/c1?next=")
        async with phone.get(code["link"]) as r:
            assert r.status == 200 and f"value='{code['code']}'" in await r.text()
        async with phone.post(f"{cloud.url}/r/login", data={"code": code["code"]}) as r:
            assert r.status == 200 and str(r.url).endswith("/r/read")
            assert "防汛通知" in await r.text()
        async with phone.post(f"{cloud.url}/r/read/a-1/ack") as r:
            assert r.status == 200
        async with phone.get(f"{cloud.url}/r/me") as r:
            assert r.status == 200 and "李叔" in await r.text()
        # the code was spent through the cloud: it does not work a second time on the LAN
        async with phone.post(f"{base}/api/v1/portal/login", json={"code": code["code"]}) as r:
            assert r.status == 401
        # a staff token never works through the cloud, and staff paths are not relayed
        async with phone.get(f"{cloud.url}/api/v1/reports", headers=STAFF) as r:
            assert r.status in (401, 403), await r.text()
        async with phone.get(f"{cloud.url}/r/%2e%2e/api/v1/status") as r:
            assert r.status == 404
        async with phone.get(f"{cloud.url}/api/v1/portal/sessions", headers=STAFF) as r:
            assert r.status == 404

    # Printed cards and the CLI point through the cloud too, once the box is provisioned.
    out = CliRunner().invoke(main, ["portal", "code", "-c", str(config.source), "r-10"]).output
    assert f"link {cloud.url}/r/at/c1?next=%2Fr%2Flogin%3Fcode%3D" in out, out

    db = sqlite3.connect(config.db_path)
    acks = db.execute("SELECT resident_id, content_id FROM portal_acks").fetchall()
    db.close()
    assert acks == [("r-9", "a-1")]
    assert relay.served >= 6



async def test_relayed_pages_keep_the_boxs_security_headers(
    make_config, run_box, cloud: Cloud
) -> None:
    """The box's pages forbid framing and inline script (Content-Security-Policy,
    X-Frame-Options) and say nosniff and their referrer policy; through the cloud these
    headers used to be dropped (not in the relay's answer headers), so the resident pages on
    the cloud's origin had none of them (outside probe)."""
    config = make_config(extra=FAST)
    box, _relay = await relayed(cloud, config, run_box)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone:
        async with phone.get(f"{api_url(box)}/r/login") as r:
            on_lan = r.headers.copy()
        async with phone.get(f"{cloud.url}/r/at/c1?next=/r/login") as r:
            assert r.status == 200 and "社区居民登录" in await r.text()
            away = r.headers.copy()
    for name in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                 "Referrer-Policy"):
        assert name in on_lan
        assert away.get(name) == on_lan[name], (name, away.get(name))
    assert "frame-ancestors 'none'" in away["Content-Security-Policy"]

async def test_the_cloud_says_so_when_the_box_is_offline(
    make_config, run_box, cloud: Cloud
) -> None:
    config = make_config(extra=FAST)
    box, relay = await relayed(cloud, config, run_box)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone:
        async with phone.get(f"{cloud.url}/r/at/c1") as r:
            assert r.status == 200
        await relay.stop()  # the box loses its link (or its power)

        async def offline() -> bool:
            async with phone.get(f"{cloud.url}/r/read") as r:
                return r.status == 503 and "暂时离线" in await r.text()

        await wait_for(offline, 10)
        async with phone.get(f"{cloud.url}/api/v1/taxonomy") as r:
            assert r.status == 503 and "error" in await r.json()
        await relay.start()  # back: the same cookie reaches the box again
        await wait_for(lambda: _true(relay.connected), 10)
        async with phone.get(f"{cloud.url}/r/read") as r:
            assert r.status == 200 and "社区居民登录" in await r.text()
        # Ops revoke the box: its open socket is closed and it cannot dial back in.
        box_id = box.service("sync").client.ident.box_id
        status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{box_id}/revoke")
        assert status == 200
        async with phone.get(f"{cloud.url}/r/read") as r:
            assert r.status == 503
        await wait_for(lambda: _true("403" in relay.last_error), 10)
        async with phone.get(f"{cloud.url}/r/read") as r:
            assert r.status == 503 and not relay.connected


async def _true(value: bool) -> bool:
    return value


async def test_away_from_home_a_resident_opens_their_door_and_issues_a_pass(
    make_config, run_box, cloud: Cloud, board: RelayBoard
) -> None:
    config = make_config(
        extra=FAST
        + door_toml("d1", board.tcp_port, 5, None)
        + door_toml("d2", board.tcp_port, 6, None, building="2")
    )
    store = Store(config.db_path, box_id=config.box.id)
    store_faces.add_resident(store, Resident(id="r1", name="张三", building="1"))
    store.close()
    box, _ = await relayed(cloud, config, run_box)
    async with aiohttp.ClientSession() as lan:
        code = await staff(
            lan, "POST", f"{api_url(box)}/api/v1/portal/codes", json={"resident_id": "r1"}
        )
        await staff(lan, "PUT", f"{api_url(box)}/api/v1/residents/r1/access",
                    json={"buildings": ["1"]})  # fmt: skip
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as phone:
        async with phone.get(f"{cloud.url}/r/at/c1?next=/r/me") as r:
            assert str(r.url).endswith("/r/login")
        async with phone.post(f"{cloud.url}/r/login", data={"code": code["code"]}) as r:
            assert r.status == 200
        async with phone.get(f"{cloud.url}/r/me") as r:
            text = await r.text()
        assert "远程开门" in text and f"{cloud.url}/r/at/c1" in text
        # Its own building's door opens: the coil goes on at the relay board.
        t0 = time.monotonic()
        async with phone.post(f"{cloud.url}/r/doors/d1/open") as r:
            assert r.status == 200 and "门已打开" in await r.text()
        await asyncio.to_thread(board.wait_for, 1, 5, True, 3.0, t0)
        # Another building's door stays shut and the page says why.
        t1 = time.monotonic()
        async with phone.post(f"{cloud.url}/r/doors/d2/open") as r:
            text = await r.text()
            assert "没有这扇门的权限" in text, re.findall(r"class=err>([^<]*)", text)
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(board.wait_for, 1, 6, True, 0.5, t1)
        # A visitor pass made through the cloud opens the door by its PIN, once.
        async with phone.post(
            f"{cloud.url}/r/passes", data={"visitor": "小王", "door": "d1", "uses": "1"}
        ) as r:
            assert r.status == 201
            text = await r.text()
        pin = re.search(r"密码 <b>(\d+)</b>", text).group(1)
        assert "data:image/png;base64," in text
        # the visitor's link goes through the cloud too (a visitor is not on the LAN) and
        # shows the pass without a login, until it is used up
        link = re.search(r"id=pass-link href='([^']+)'", text).group(1).replace("&amp;", "&")
        assert link.startswith(f"{cloud.url}/r/at/c1?next=/r/v/"), link
        visitor_jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=visitor_jar) as visitor:
            async with visitor.get(link) as r:
                page = await r.text()
                assert r.status == 200 and f"<b id=pin>{pin}</b>" in page, page[-500:]
        async with aiohttp.ClientSession(headers=STAFF) as panel:
            for want in (200, 403):
                async with panel.post(
                    f"{api_url(box)}/api/v1/doors/d1/pin", json={"pin": pin}
                ) as r:
                    assert r.status == want
        async with aiohttp.ClientSession(cookie_jar=visitor_jar) as visitor:
            async with visitor.get(link) as r:
                page = await r.text()
                assert r.status == 410 and "次数已用完" in page and pin not in page
        made = await box.store.run(access_db.list_passes, box.store.sync, "r1")
        assert [p["visitor"] for p in made] == ["小王"]
        async with phone.post(f"{cloud.url}/r/passes/{made[0]['id']}/revoke") as r:
            assert "已作废" in await r.text()
        made = await box.store.run(access_db.list_passes, box.store.sync, "r1")
        assert made[0]["revoked"]
        async with phone.post(f"{cloud.url}/r/passes", data={"visitor": "x"}) as r:
            assert "请至少选择一扇门" in await r.text()  # bad input: named, nothing stored
        assert len(await box.store.run(access_db.list_passes, box.store.sync, "r1")) == 1


async def test_the_pages_work_in_a_phone_browser_through_the_cloud(
    make_config, run_box, cloud: Cloud
) -> None:
    config = make_config(extra=FAST)
    box, _ = await relayed(cloud, config, run_box)
    base = api_url(box)
    async with aiohttp.ClientSession() as lan:
        await article(lan, base, "a-policy", "关于垃圾分类的新规定", ["policy"], must_read=True)
        await article(lan, base, "a-opera", "社区戏曲晚会", ["culture"])
        code = await staff(lan, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": "r-7", "building": "1"})  # fmt: skip
    link = f"{cloud.url}/r/at/c1?next={quote('/r/login?code=' + code['code'])}"
    async with browser() as b:
        ctx = await b.new_context(**PHONE)
        page = await ctx.new_page()
        await page.goto(link, timeout=15000)  # a staff link that works anywhere
        await page.click("main form button")
        await page.wait_for_url(f"{cloud.url}/r/read", timeout=10000)
        assert (await feed_ids(page))[0] == "a-policy"
        # the stylesheet came through the relay too: the header is the app's red
        bg = await page.eval_on_selector("header.top", "n => getComputedStyle(n).backgroundColor")
        assert bg == "rgb(163, 21, 21)"
        await page.click("ul.feed li:first-child a")
        await page.wait_for_selector("#ack", timeout=10000)
        await page.click("#ack")
        await page.wait_for_url("**/r/read?acked=1", timeout=10000)
        assert (await feed_ids(page))[-1] == "a-policy"
        await ctx.close()
    db = sqlite3.connect(config.db_path)
    acked = db.execute("SELECT content_id FROM portal_acks WHERE resident_id = 'r-7'")
    assert [r[0] for r in acked] == ["a-policy"]
    db.close()


def test_one_address_cannot_flood_a_box() -> None:
    relays = proto.Relays()
    assert not any(relays.too_many("203.0.113.9") for _ in range(proto.RATE_MAX))
    assert relays.too_many("203.0.113.9")  # the next one in the window is refused
    assert not relays.too_many("203.0.113.10")  # others are not affected


async def test_one_communitys_session_never_reaches_another_box(
    make_config, run_box, cloud: Cloud, tmp_path: Path
) -> None:
    box_a, _ = await relayed(cloud, make_config(extra=FAST), run_box)
    await cloud.community(community="c2")
    other = tmp_path / "b"
    other.mkdir()
    (other / "edge.toml").write_text(box_toml(other, extra=FAST))
    config_b = parse_config((other / "edge.toml").read_text(), source=other / "edge.toml")
    _, relay_b = await relayed(cloud, config_b, run_box, community="c2")
    seen_by_b: list[list[list[str]]] = []
    replay = relay_b._replay

    async def spy(head: dict, body: bytes) -> Any:
        seen_by_b.append(head.get("headers", []))
        return await replay(head, body)

    relay_b._replay = spy
    async with aiohttp.ClientSession() as lan:
        code = await staff(lan, "POST", f"{api_url(box_a)}/api/v1/portal/codes",
                           json={"resident_id": "r-a"})  # fmt: skip
    a_id = box_a.service("sync").client.ident.box_id
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as phone:
        async with phone.get(code["link"]) as r:
            assert r.status == 200
        async with phone.post(f"{cloud.url}/r/login", data={"code": code["code"]}) as r:
            assert str(r.url).endswith("/r/read")
        names = {c.key: c.value for c in jar}
        assert f"qilu_rs__{a_id}" in names and "qilu_rs" not in names
        token = names[f"qilu_rs__{a_id}"]
        async with phone.get(f"{cloud.url}/r/at/c2") as r:  # a look at another community
            assert str(r.url).endswith("/r/login")  # box B: not logged in there
        async with phone.get(f"{cloud.url}/r/at/c1") as r:  # back home: still logged in
            assert str(r.url).endswith("/r/read")
    assert seen_by_b  # B answered requests, and none of them carried A's session
    assert not any(token in v for headers in seen_by_b for _k, v in headers)


async def test_with_a_relay_domain_each_box_has_its_own_origin(
    make_config, run_box, cloud: Cloud
) -> None:
    box, _ = await relayed(cloud, make_config(extra=FAST), run_box)
    box_id = box.service("sync").client.ident.box_id
    cloud.app[CLOUD].relays.domain = "relay.test"  # as `serve --relay-domain relay.test`
    own = f"{box_id}.relay.test:{cloud.port}"
    async with aiohttp.ClientSession() as phone:
        async with phone.get(f"{cloud.url}/r/at/c1", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"http://{own}/r/read"
        # The host alone picks the box (no cookie): DNS would bring the phone here.
        async with phone.get(f"{cloud.url}/r/login", headers={"Host": own}) as r:
            assert r.status == 200 and "社区居民登录" in await r.text()
        async with phone.get(
            f"{cloud.url}/r/login", headers={"Host": f"box-nobody.relay.test:{cloud.port}"}
        ) as r:
            assert r.status == 503
        for foreign in (f"{box_id}.relay.test.evil.example", f"x.{box_id}.relay.test"):
            async with phone.get(f"{cloud.url}/r/login", headers={"Host": foreign}) as r:
                assert r.status == 404  # not a box host, and no community chosen
        # Probe finding F: on the cloud's own origin (the console's) a box's page is never
        # served, even with the community cookie: the resident is sent to the box's origin.
        pick = {"Cookie": f"qilu_box={box_id}"}
        async with phone.get(f"{cloud.url}/r/login", headers=pick, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"http://{own}/r/login"
        async with phone.post(f"{cloud.url}/api/v1/reports", headers=pick, data=b"{}") as r:
            assert r.status == 404
        evil = {"Cookie": "qilu_box=evil.example/x"}  # no open redirect through the cookie
        async with phone.get(f"{cloud.url}/r/login", headers=evil, allow_redirects=False) as r:
            assert r.status == 404


async def test_without_a_relay_domain_box_pages_are_not_served_on_the_console_origin(
    make_config, run_box, cloud: Cloud
) -> None:
    """Probe finding F: without --relay-domain every box's /r/ pages would share the origin of
    /console/, so a compromised box could script an ops user's session. Refused by default
    (serve --relay-same-origin-unsafe allows it, for demos and tests)."""
    await relayed(cloud, make_config(extra=FAST), run_box)
    cloud.app[CLOUD].relays.same_origin_unsafe = False  # the serve default
    async with aiohttp.ClientSession() as phone:
        async with phone.get(f"{cloud.url}/r/at/c1", allow_redirects=False) as r:
            assert r.status == 404 and "--relay-domain" in await r.text()
            assert "Set-Cookie" not in r.headers
        box_id = (await cloud.storage.boxes_for_targets("/", ["c1"], []))[0]
        async with phone.get(f"{cloud.url}/r/login",
                             headers={"Cookie": f"qilu_box={box_id}"}) as r:
            assert r.status == 404 and "社区居民登录" not in await r.text()
    cloud.app[CLOUD].relays.same_origin_unsafe = True
    async with aiohttp.ClientSession() as phone:
        async with phone.get(f"{cloud.url}/r/login",
                             headers={"Cookie": f"qilu_box={box_id}"}) as r:
            assert r.status == 200 and "社区居民登录" in await r.text()


async def test_behind_a_trusted_proxy_limits_are_per_resident(cloud: Cloud, monkeypatch) -> None:
    monkeypatch.setattr(proto, "RATE_MAX", 3)
    relays = cloud.app[CLOUD].relays

    async def status(forwarded_for: str) -> int:
        headers = {"X-Forwarded-For": forwarded_for, "Cookie": "qilu_box=box-none"}
        async with aiohttp.ClientSession() as s, s.get(f"{cloud.url}/r/read", headers=headers) as r:
            return r.status

    # Not a trusted proxy: the header is ignored, the peer's address counts for everyone.
    assert [await status(f"203.0.113.{i}") for i in range(4)] == [503, 503, 503, 429]
    relays._recent.clear()
    relays.trusted = frozenset({"127.0.0.1"})  # as `serve --trusted-proxy 127.0.0.1`
    assert [await status("203.0.113.5") for _ in range(4)] == [503, 503, 503, 429]
    assert await status("203.0.113.6") == 503  # another resident is not held back
    # A forged left part does not help: the hop the proxy added is what counts.
    assert await status("198.51.100.1, 203.0.113.5") == 429


async def test_relay_frames_not_signed_by_the_cloud_are_refused(
    make_config, run_box, cloud: Cloud
) -> None:
    """Probe finding: the feed's commands were signed, the relay's frames were not, so anyone
    on a plain-http or unverified-TLS path could inject resident requests into the socket
    (here: spend a resident's login code). Frames are signed now like the feed's answers
    (the box's secret, bound to the socket's request, each id once, each time fresh); the
    box refuses the rest, does nothing, and raises the critical alert the feed raises."""
    from common import protocol as p
    from common.relay import pack, signed_part

    config = make_config(extra=FAST)
    box, relay = await relayed(cloud, config, run_box)
    base = api_url(box)
    async with aiohttp.ClientSession() as lan:
        code = await staff(lan, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": "r-9", "name": "李叔", "building": "2"})
    box_id = box.service("sync").client.ident.box_id
    tunnel = cloud.app[CLOUD].relays.tunnels[box_id]  # the socket, as someone on its path
    login = {"method": "POST", "path": "/r/login", "client": "203.0.113.9", "https": False,
             "headers": [["content-type", "application/x-www-form-urlencoded"]]}
    body = f"code={code['code']}".encode()

    def signed(fid: int, ts: int, head: dict = login, payload: bytes = body) -> bytes:
        frame = {**head, "id": fid, "ts": str(ts)}
        frame["sig"] = p.sign_message(tunnel.secret, tunnel.subject,
                                      signed_part(frame, payload), ts=frame["ts"],
                                      nonce=str(fid))["sig"]
        return pack(frame, payload)

    now = int(time.time())
    tampered = signed(900_001, now, payload=b"code=000000000000")[:-12] + body[-12:]
    for frame in (pack({**login, "id": 900_000}, body),  # unsigned (an injected request)
                  tampered,  # a signed frame with another body
                  signed(900_002, now - 3600)):  # signed, but an hour old
        await tunnel.ws.send_bytes(frame)
    await wait_for(lambda: _true(relay.refused == 3), 10)
    assert relay.served == 0  # nothing was replayed against the box

    async def alerts() -> list:
        return await box.store.run(lambda st: st.db.execute(
            "SELECT level FROM alerts WHERE type = 'cloud_unsigned_command'").fetchall(),
            box.store.sync)

    assert await alerts() == [("critical",)]  # one alert, not one per frame
    # a frame signed right is served once; the same frame again is a replay
    good = signed(900_003, now, head={**login, "path": "/r/login", "method": "GET"},
                  payload=b"")
    await tunnel.ws.send_bytes(good)
    await wait_for(lambda: _true(relay.served == 1), 10)
    await tunnel.ws.send_bytes(good)
    await wait_for(lambda: _true(relay.refused == 4), 10)
    # the injected login did not spend the code: the resident still logs in with it
    async with aiohttp.ClientSession() as lan:
        async with lan.post(f"{base}/api/v1/portal/login", json={"code": code["code"]}) as r:
            assert r.status == 200
    # and the cloud's own frames still pass: a resident's page through the relay
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as phone:
        async with phone.get(f"{cloud.url}/r/at/c1") as r:
            assert r.status == 200 and "社区居民登录" in await r.text()
    assert relay.refused == 4
