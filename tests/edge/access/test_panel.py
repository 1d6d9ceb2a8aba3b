"""Keypad / QR panel tokens (security probe 2026-11, Medium B): a ``panel`` token is bound to
its door(s) and may only enter PINs and QR codes there; everything else refuses it, so a token
taken from a panel cannot open other doors, read residents or re-provision the box. Replacing
the box's cloud registration (``force``) needs an admin token. Real pymodbus relay board.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.core.config import ConfigError
from tests.conftest import api_url
from tests.edge.access.test_engine import ACCESS, door_toml
from tests.edge.portal.helpers import FAST, STAFF, staff

COIL_B1, COIL_B2 = 1, 2
PANEL = {"Authorization": "Bearer panel-token-for-d-b1-0000"}
ADMIN = {"Authorization": "Bearer admin-token-0123456789-0000"}
TOKENS = """
[[api.tokens]]
name = "keypad-b1"
role = "panel"
doors = ["d-b1"]
token = "panel-token-for-d-b1-0000"

[[api.tokens]]
name = "boss"
role = "admin"
token = "admin-token-0123456789-0000"
"""


async def test_a_panel_token_enters_pins_at_its_own_door_only(make_config, run_box, board):
    config = make_config(extra=FAST + TOKENS + ACCESS
                         + door_toml("d-b1", board.tcp_port, COIL_B1, None, "1")
                         + door_toml("d-b2", board.tcp_port, COIL_B2, None, "2"))
    box = await run_box(config)
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await staff(s, "POST", f"{base}/api/v1/residents",
                    json={"id": "r1", "name": "王阿姨", "building": "1"})
        await staff(s, "PUT", f"{base}/api/v1/residents/r1/access", json={"all_doors": True})
        until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        vp = await staff(s, "POST", f"{base}/api/v1/passes", json={
            "resident_id": "r1", "doors": ["d-b1", "d-b2"], "valid_to": until, "uses": 5})
        # Another door's keypad: refused before the PIN is even looked at.
        async with s.post(f"{base}/api/v1/doors/d-b2/pin", headers=PANEL,
                          json={"pin": vp["pin"]}) as r:
            assert r.status == 403 and "d-b2" in (await r.json())["error"]
        # Its own door: the visitor's PIN opens it (the relay coil really switched).
        async with s.post(f"{base}/api/v1/doors/d-b1/pin", headers=PANEL,
                          json={"pin": vp["pin"]}) as r:
            assert r.status == 200 and (await r.json())["granted"] is True
        assert board.first_write(1, COIL_B1, True) is not None
        # Everything a staff token could do is refused to it.
        for method, path, body in (
            ("POST", "/api/v1/doors/d-b1/open", None),
            ("POST", "/api/v1/doors/d-b2/open", None),
            ("GET", "/api/v1/residents", None),
            ("GET", "/api/v1/access/events", None),
            ("POST", "/api/v1/portal/codes", {"resident_id": "r1", "building": "1"}),
            ("POST", "/api/v1/installer/setup", {}),
            ("POST", "/api/v1/installer/provision",
             {"cloud_url": "https://127.0.0.1:9", "claim_code": "X", "force": True}),
        ):
            async with s.request(method, base + path, headers=PANEL, json=body) as r:
                assert r.status == 403, (path, r.status, await r.text())
    assert board.first_write(1, COIL_B2, True) is None
    uses = (await box.store.run(
        lambda st: st.db.execute("SELECT door_id FROM pass_uses").fetchall(), box.store.sync))
    assert [u[0] for u in uses] == ["d-b1"]


async def test_replacing_the_cloud_registration_needs_an_admin(make_config, run_box):
    box = await run_box(make_config(extra=TOKENS))
    base = api_url(box)
    body = {"cloud_url": "https://127.0.0.1:9", "claim_code": "CLAIM-1", "force": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/v1/installer/provision", headers=STAFF, json=body) as r:
            out = await r.json()
            assert r.status == 403 and out["field"] == "force", out
        # An admin gets past authorisation (the cloud at port 9 then cannot be reached).
        async with s.post(f"{base}/api/v1/installer/provision", headers=ADMIN, json=body) as r:
            out = await r.json()
            assert (r.status, out["field"]) == (502, "cloud_url"), out


def test_the_cli_issues_panel_tokens_bound_to_doors(make_config) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["token", "new", "--name", "keypad-b1", "--role", "panel",
                               "--door", "d-b1", "--door", "d-gate"])
    assert out.exit_code == 0, out.output
    entry = tomllib.loads(out.stdout)["api"]["tokens"][0]
    assert (entry["role"], entry["doors"]) == ("panel", ["d-b1", "d-gate"])
    missing = runner.invoke(main, ["token", "new", "--role", "panel"])
    assert missing.exit_code != 0 and "--door" in missing.output
    with pytest.raises(ConfigError, match="panel token must name the door"):
        make_config(extra='[[api.tokens]]\nname = "k"\nrole = "panel"\n'
                          'token_sha256 = "' + "0" * 64 + '"\n')
