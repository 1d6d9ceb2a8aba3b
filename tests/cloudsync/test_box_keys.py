"""Box secrets derived from a master key: the database keeps only a generation marker, and
provisioning, signed uploads, rotation and revocation work as with stored secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudsync.box_keys import BoxKeys
from edge.sync.client import CloudClient, CloudError, Revoked
from edge.sync.identity import Identity
from tests.cloudsync.helpers import start_cloud
from tests.cloudsync.test_box_api import rows

KEY = b"k" * 40


async def test_derived_secrets_rotate_and_revoke(db_url: str, tmp_path: Path) -> None:
    cloud = await start_cloud(db_url, tmp_path, master_key=KEY)
    clients: list[CloudClient] = []
    try:
        ident = await cloud.new_box()
        box = await cloud.storage.box_get(ident.box_id)
        assert (box["secret"], box["prev_secret"]) == ("gen:1", None)  # nothing usable stored
        assert ident.secret == BoxKeys(KEY).derive(ident.box_id, 1)
        assert BoxKeys(None).usable(ident.box_id, "gen:1") is None  # the database alone: no
        old = CloudClient(ident)
        clients.append(old)
        assert (await old.upload(rows([1, 2]), floor=1)).acked_through == 2

        secret = await old.rotate()
        box = await cloud.storage.box_get(ident.box_id)
        assert (box["secret"], box["prev_secret"]) == ("gen:2", "gen:1")
        assert secret == BoxKeys(KEY).derive(ident.box_id, 2) != ident.secret
        # Until the box signs with the new secret, the old one still works...
        assert (await old.upload(rows([3]), floor=3)).acked_through == 3
        new = CloudClient(Identity(ident.cloud, ident.box_id, secret))
        clients.append(new)
        assert (await new.upload(rows([4]), floor=4)).acked_through == 4
        # ...then it is retired.
        assert (await cloud.storage.box_get(ident.box_id))["prev_secret"] is None
        with pytest.raises(CloudError) as e:
            await old.upload(rows([5]), floor=5)
        assert e.value.status == 401

        status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{ident.box_id}/revoke")
        assert status == 200
        with pytest.raises(Revoked):
            await new.upload(rows([5]), floor=5)
    finally:
        for c in clients:
            await c.close()
        await cloud.stop()
