"""Issue 13 hardening: the store file (face templates) is readable by its owner only, and
report/ticket photo files left without a row (a kill -9 between the file and its row) are
deleted at start-up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from edge.reports import store as reports_db


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_the_store_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        path = tmp_path / "qilu.db"
        store = Store(path, box_id="b")
        store_faces.add_resident(store, Resident(id="r1", name="x"))
        for suffix in ("", "-wal", "-shm"):
            f = Path(str(path) + suffix)
            assert f.exists() and mode(f) == 0o600, (suffix, oct(mode(f)))
        store.close()
        # An existing file from before (0644) is tightened when opened.
        os.chmod(path, 0o644)
        Store(path, box_id="b").close()
        assert mode(path) == 0o600
    finally:
        os.umask(old)


async def test_orphan_photo_files_are_deleted_at_start(make_config, run_box) -> None:
    config = make_config()
    data = config.box.data_dir
    folder = data / "photos" / "2026" / "11"
    folder.mkdir(parents=True)
    kept, orphan = folder / "ph-kept.jpg", folder / "ph-orphan.jpg"
    kept.write_bytes(b"\xff\xd8kept")
    orphan.write_bytes(b"\xff\xd8orphan")
    other = data / "photos" / "README.txt"  # not a photo the box wrote: left alone
    other.write_text("x")
    store = Store(config.db_path, box_id=config.box.id)
    with store.transaction():
        reports_db.insert_photo(store, {
            "id": "ph-kept", "owner_kind": "report", "owner_id": "rp-1", "ts": "2026-11-01",
            "path": str(kept.relative_to(data)), "mime": "image/jpeg", "bytes": 6,
            "sha256": "0" * 64})
    store.close()
    await run_box(config)
    assert kept.exists() and other.exists()
    assert not orphan.exists()
