"""A report names the resident of the session, never one from the body (issue 13 #8);
anonymous reports through the relay need a proof of work and are rate-limited."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from edge.core.http import CLIENT_HEADER, KEY_HEADER, RELAY_KEY
from tests.conftest import api_url, db_count
from tests.edge.portal.helpers import FAST, STAFF, login

GATE = FAST + "[reports]\nproof_bits = 8\nrelay_anonymous_per_hour = 2\n"
TEXT = "3号楼楼道灯不亮了"


@pytest.fixture
async def box(make_config, run_box):
    return await run_box(make_config(extra=GATE))


def solve(c: dict) -> str:
    for n in range(1 << 22):
        d = hashlib.sha256(f"{c['challenge']}:{n}".encode()).digest()
        if int.from_bytes(d, "big") >> (256 - c["bits"]) == 0:
            return f"{c['challenge']}:{n}"
    raise AssertionError("no nonce")


@pytest.mark.parametrize("path", ["/api/v1/reports", "/api/v1/tickets"])
async def test_body_cannot_name_a_resident(box, path) -> None:
    url = api_url(box)
    body = {"text": TEXT, "title": "灯坏了", "resident_id": "r-102"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}{path}", json=body) as r:
            got = await r.json()
            assert r.status == 403 and got["field"] == "resident_id", got
        me = await login(s, url, "r-7")
        async with s.post(f"{url}{path}", json=body, headers=me) as r:
            assert r.status == 403  # logged in as r-7, claiming r-102
        assert db_count(box, "SELECT count(*) FROM reports") == 0
        assert db_count(box, "SELECT count(*) FROM tickets") == 0
        async with s.post(f"{url}{path}", json={**body, "resident_id": None}, headers=me) as r:
            assert r.status == 201, await r.text()
            mine = (await r.json())["id"]
        async with s.post(f"{url}{path}", json=body, headers=STAFF) as r:
            assert r.status == 201
            theirs = (await r.json())["id"]
    table = path.rsplit("/", 1)[1]
    who = f"SELECT resident_id FROM {table} WHERE id = '{{}}'"
    assert db_count(box, who.format(mine)) == "r-7"  # from the session
    assert db_count(box, who.format(theirs)) == "r-102"  # staff may name the resident


async def test_anonymous_reports_through_the_relay_need_proof_and_are_limited(box) -> None:
    url = api_url(box)
    relay = {KEY_HEADER: box.http[RELAY_KEY], CLIENT_HEADER: "198.51.100.7"}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT}) as r:
            assert r.status == 201  # on the community network: no challenge
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT}, headers=relay) as r:
            assert r.status == 428 and (await r.json())["field"] == "proof"
        async with s.get(f"{url}/api/v1/reports/challenge") as r:
            c = await r.json()
        proof = {**relay, c["header"]: solve(c)}
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT}, headers=proof) as r:
            assert r.status == 201, await r.text()
            assert (await r.json())["resident_id"] is None
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT}, headers=proof) as r:
            assert r.status == 428  # a proof works once
        bad = {**relay, c["header"]: c["challenge"] + ":0x"}
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT}, headers=bad) as r:
            assert r.status == 428
        async with s.get(f"{url}/api/v1/reports/challenge") as r:
            c2 = await r.json()
        async with s.post(f"{url}/api/v1/tickets", json={"title": "电梯坏了"},
                          headers={**relay, c2["header"]: solve(c2)}) as r:
            assert r.status == 201, await r.text()
        async with s.get(f"{url}/api/v1/reports/challenge") as r:
            c3 = await r.json()
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT},
                          headers={**relay, c3["header"]: solve(c3)}) as r:
            assert r.status == 429  # 2 an hour from this relayed address
        me = await login(s, url, "r-8")
        async with s.post(f"{url}/api/v1/reports", json={"text": TEXT},
                          headers={**relay, **me}) as r:
            assert r.status == 201  # a logged-in resident is never challenged
    assert db_count(box, "SELECT count(*) FROM reports") == 3
