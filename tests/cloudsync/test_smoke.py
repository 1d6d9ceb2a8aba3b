from __future__ import annotations

from tests.cloudsync.helpers import Cloud


async def test_provision_and_me(cloud: Cloud) -> None:
    ident = await cloud.new_box()
    assert ident.box_id.startswith("box-")
    status, body = await cloud.call("GET", "/api/v1/ops/boxes")
    assert status == 200, body
    assert [b["id"] for b in body["items"]] == [ident.box_id]
