"""The first-boot wizard provisions the box (cloud URL + claim code) against a real cloud."""

from __future__ import annotations

import stat
from pathlib import Path

import aiohttp

from tests.cloudsync.helpers import start_cloud, wait_for
from tests.conftest import STAFF_TOKEN, api_url, free_port

H = {"Authorization": f"Bearer {STAFF_TOKEN}"}
ADMIN = {"Authorization": "Bearer test-admin-token-0123456789"}
FAST = (
    "\n[[api.tokens]]\nname = \"boss\"\nrole = \"admin\"\n"
    "token = \"test-admin-token-0123456789\"\n"
    "\n[sync]\nfeed_wait_s = 1\nheartbeat_s = 0.5\nrequest_timeout_s = 5\n"
)


async def test_wizard_provisions_and_refuses_bad_codes(
    make_config, run_box, tmp_path: Path
) -> None:
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path)
    try:
        await cloud.community(community="c1")
        code = await cloud.claim("c1")
        box = await run_box(make_config(extra=FAST))
        ident_file = box.config.box.data_dir / "cloud-identity.json"
        base = f"{api_url(box)}/api/v1/installer"
        async with aiohttp.ClientSession() as s:

            async def post(body: dict, headers: dict = H) -> tuple[int, dict]:
                async with s.post(f"{base}/provision", json=body, headers=headers) as r:
                    return r.status, await r.json()

            async with s.get(f"{base}/setup", headers=H) as r:
                assert (await r.json())["provisioned"] is None
            async with s.post(f"{base}/provision", json={}) as r:
                assert r.status == 401  # staff only

            # Bad input names the field; an invalid code is refused by the cloud; no file.
            st, b = await post({"cloud_url": "ftp://x", "claim_code": code})
            assert st == 400 and b["field"] == "cloud_url", b
            st, b = await post({"cloud_url": cloud.url, "claim_code": " "})
            assert st == 400 and b["field"] == "claim_code", b
            st, b = await post({"cloud_url": cloud.url, "claim_code": "NOT-A-CODE"})
            assert st == 409 and b["field"] == "claim_code", b
            # Chinese by default (the installer's language), the English beside it
            assert "不存在、已使用或已过期" in b["error"], b
            assert "unknown, used or expired" in b["error_en"]
            dead = f"http://127.0.0.1:{free_port()}"
            st, b = await post({"cloud_url": dead, "claim_code": code})
            assert st == 502 and b["field"] == "cloud_url" and "连不上云端" in b["error"], b
            assert "unreachable" in b["error_en"], b
            assert not ident_file.exists()

            # The real code provisions: identity 0600, the sync service starts without restart.
            st, b = await post({"cloud_url": cloud.url + "/", "claim_code": code})
            assert st == 200, b
            assert b["box_id"].startswith("box-") and b["community_id"] == "c1", b
            assert stat.S_IMODE(ident_file.stat().st_mode) == 0o600
            sync = box.service("sync")

            async def syncing() -> bool:
                return sync.status()["box_id"] == b["box_id"]

            await wait_for(syncing, 8)

            async def seen() -> bool:
                _, fleet = await cloud.call("GET", f"/api/v1/ops/boxes/{b['box_id']}")
                return bool(fleet.get("software_version"))

            await wait_for(seen, 8)
            async with s.get(f"{base}/setup", headers=H) as r:
                setup = await r.json()
            assert setup["provisioned"]["box_id"] == b["box_id"]
            assert setup["cloud_url"] == cloud.url

            # Again: refused while provisioned; with "replace", the used code is refused.
            st, again = await post({"cloud_url": cloud.url, "claim_code": code})
            assert st == 409 and again["field"] == "force", again
            # Replacing the registration needs an admin token, not any staff token.
            force = {"cloud_url": cloud.url, "claim_code": code, "force": True}
            st, again = await post(force)
            assert st == 403 and again["field"] == "force", again
            st, again = await post(force, ADMIN)
            assert st == 409 and again["field"] == "claim_code", again
            assert b["box_id"] in ident_file.read_text()  # the working identity is kept
    finally:
        await cloud.stop()
