"""First-boot wizard API: validates as it goes, writes the config keeping its comments."""

from __future__ import annotations

import aiohttp

from edge.features import load_config
from tests.conftest import STAFF_TOKEN, api_url

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}


async def test_wizard_validates_then_saves(make_config, run_box) -> None:
    cfg = make_config(extra='\n[[doors]]\nid = "door-1"\ntype = "sim"  # keep me\n')
    box = await run_box(cfg)
    base = f"{api_url(box)}/api/v1/installer"
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/setup", headers=H) as r:
            cur = await r.json()
        assert cur["community"] == "test-community" and cur["devices"][0]["id"] == "door-1"

        bad = {"community": "Not Valid!"}
        async with s.post(f"{base}/setup/validate", json=bad, headers=H) as r:
            body = await r.json()
        assert r.status == 400 and body["field"] == "box.community", body
        # Chinese unless the page (or a script) asks for English
        assert body["error"] == body["error_zh"] and "格式不对" in body["error"], body
        assert "box.community" in body["error"] and "Not Valid!" in body["error"], body
        for asks in ({"Accept-Language": "en-US,en;q=0.9"}, {}):
            url = f"{base}/setup/validate" + ("" if asks else "?lang=en")
            async with s.post(url, json=bad, headers={**H, **asks}) as r:
                en = await r.json()
            assert en["error"] == en["error_en"] and "should match" in en["error"], en
        async with s.post(f"{base}/setup/validate", data=b"{not json", headers=H) as r:
            assert r.status == 400 and (await r.json())["error"] == "提交的内容不是 JSON"
        async with s.post(f"{base}/modbus-scan", json={"units": "1-300", "host": "127.0.0.1"},
                          headers=H) as r:  # fmt: skip
            got = await r.json()
        assert r.status == 400 and got == {"error": "站号应在 0 到 247 之间",
                                           "error_en": "units: ids are 0..247",
                                           "error_zh": "站号应在 0 到 247 之间", "field": "units"}
        async with s.post(f"{base}/setup", json=bad, headers=H) as r:
            assert r.status == 400
        assert load_config(cfg.source).box.community == "test-community"  # nothing written

        dup = {"devices": [{"kind": "doors", "id": "door-1", "type": "sim"}]}
        async with s.post(f"{base}/setup/validate", json=dup, headers=H) as r:
            body = await r.json()
        assert r.status == 400 and "重复" in body["error"] and "used twice" in body["error_en"]

        good = {
            "community": "lixia-c1",
            "name": "历下一号社区",
            "devices": [{"kind": "doors", "id": "door-2", "type": "sim", "pulse_ms": 800}],
        }
        async with s.post(f"{base}/setup", json=good, headers=H) as r:
            assert r.status == 200, await r.text()
    saved = load_config(cfg.source)
    assert saved.box.community == "lixia-c1" and saved.box.name == "历下一号社区"
    assert [d.id for d in saved.doors] == ["door-1", "door-2"]
    assert saved.doors[1].options.pulse_ms == 800
    assert "# keep me" in cfg.source.read_text()
    assert cfg.source.with_name("edge.toml.bak").exists()


async def test_a_device_field_name_cannot_write_other_config(make_config, run_box) -> None:
    """Security probe 4: the wizard appended device fields as ``<name> = <value>`` with the
    name unchecked, so a staff token (any staff, not an admin) could smuggle whole TOML blocks
    into edge.toml through a field name: here an admin token of its own, which after the next
    restart passes the admin-only checks (force re-provisioning hands the box to another
    cloud). A field name is now a bare TOML key or the request is refused, nothing written."""
    import hashlib

    cfg = make_config(extra='\n[[doors]]\nid = "door-1"\ntype = "sim"\n')
    box = await run_box(cfg)
    base = f"{api_url(box)}/api/v1/installer"
    before = cfg.source.read_text()
    mine = "mallory-admin-token-0123456789"
    smuggled = ('pulse_ms = 200\n\n[[api.tokens]]\nname = "mallory"\nrole = "admin"\n'
                "token_sha256")
    evil = {"devices": [{"kind": "doors", "id": "door-2", "type": "sim",
                         smuggled: hashlib.sha256(mine.encode()).hexdigest()}]}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/setup", json=evil, headers=H) as r:
            body = await r.json()
    saved = load_config(cfg.source)
    roles = {t.name: t.role for t in saved.api.tokens}
    assert roles.get("mallory") != "admin", "a staff token wrote itself an admin token"
    assert r.status == 400 and body.get("field", "").startswith("devices"), body
    assert cfg.source.read_text() == before  # nothing written
