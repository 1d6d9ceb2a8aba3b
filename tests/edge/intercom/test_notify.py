"""Notifiers: a call also texts the flat through an SMS gateway speaking Twilio's Messages API
(a local gateway started here checks the auth, the form fields and answers as Twilio does);
a gateway that refuses never stops the call."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import api_url
from tests.edge.intercom.helpers import camera_frames, intercom_toml, seed, tokens
from tests.edge.portal.helpers import STAFF
from tests.peers.http import serve

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "secret-auth-token"


class Gateway:
    """Twilio's Messages API shape: POST /2010-04-01/Accounts/<sid>/Messages.json, form-encoded
    To/From/Body, HTTP basic auth with the account SID and auth token; 201 + a message JSON."""

    def __init__(self) -> None:
        self.messages: list[dict[str, str]] = []
        self.refused = 0
        self.url = ""

    async def create(self, request: web.Request) -> web.Response:
        want = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if request.match_info["sid"] != SID or request.headers.get("Authorization") != want:
            self.refused += 1
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401},
                                     status=401)
        if not request.content_type == "application/x-www-form-urlencoded":
            return web.json_response({"code": 21601, "message": "not a form"}, status=400)
        form = await request.post()
        msg = {k: str(form[k]) for k in ("To", "From", "Body")}
        self.messages.append(msg)
        return web.json_response({"sid": f"SM{len(self.messages):032d}", "status": "queued",
                                  "to": msg["To"], "from": msg["From"], "body": msg["Body"]},
                                 status=201)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.create)
        return app


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    g = Gateway()
    async with serve(g.app()) as g.url:
        yield g


def sms_toml(url: str, token: str) -> str:
    return f"""
[intercom.sms]
url = "{url}"
account_sid = "{SID}"
auth_token = "{token}"
from_number = "+8610000000"
numbers = {{ "1-1-101" = ["+8613800000001", "+8613800000002"] }}
"""


async def dial(box: Any, flat: str) -> dict:
    async with aiohttp.ClientSession() as s, s.post(
        f"{api_url(box)}/api/v1/intercom/calls", headers=STAFF,
        json={"door_id": "d-gate", "flat": flat},
    ) as r:
        assert r.status == 201
        return await r.json()


async def test_a_call_texts_the_flats_numbers(make_config, run_box, board, tmp_path,
                                              gateway: Gateway) -> None:
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "c"))
                         + sms_toml(gateway.url, TOKEN))
    seed(config)
    box = await run_box(config)
    first = await dial(box, "1-1-101")
    await box.service("intercom").hang_up(first["id"], "d-gate")
    await dial(box, "1-1-102")  # no numbers on file for this flat: nothing sent
    for _ in range(100):
        if len(gateway.messages) >= 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    assert [m["To"] for m in gateway.messages] == ["+8613800000001", "+8613800000002"]
    assert all(m["From"] == "+8610000000" and "1-1-101" in m["Body"] and "1号楼大门" in m["Body"]
               for m in gateway.messages)
    assert box.service("intercom").notifiers[0].sent == 2


async def test_a_refusing_gateway_never_stops_the_call(make_config, run_box, board, tmp_path,
                                                       gateway: Gateway) -> None:
    config = make_config(extra=intercom_toml(board.tcp_port, camera_frames(tmp_path / "c"))
                         + sms_toml(gateway.url, "wrong-token"))
    seed(config)
    box = await run_box(config)
    call = await dial(box, "1-1-101")
    async with aiohttp.ClientSession() as s:
        tok = await tokens(s, api_url(box))
        for _ in range(100):
            if gateway.refused:
                break
            await asyncio.sleep(0.05)
        async with s.post(f"{api_url(box)}/r/intercom/calls/{call['id']}/answer",
                          headers={"Cookie": f"qilu_rs={tok['r-a']}"}) as r:
            assert r.status == 200
    assert gateway.refused == 1 and gateway.messages == []
