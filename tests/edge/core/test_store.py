"""The local store: migrations, integrity, corruption, atomic record + outbox, full disk."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from edge.core.standard import AccessEvent, DeviceHealth, Priority, Resident
from edge.core.store import Store, StoreError, StoreFullError, check_file, migrations
from edge.core.store import core as store_core
from tests.conftest import (
    DAEMON_UID,
    box_toml,
    daemon_user_folder,
    fill,
    free_port,
    needs_daemon_user,
    small_fs_at,
    start_daemon_as_user,
    stop_process,
)


def access(i: int) -> AccessEvent:
    return AccessEvent(id=f"a{i}", door_id="door-1", method="face", decision="granted")


def test_fresh_database_gets_every_migration_and_pragmas(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    assert store.schema_versions() == [m.version for m in migrations()]
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.integrity_check() == "ok"
    assert store.migrate() == []  # idempotent
    store.close()


def test_migration_from_a_previous_schema_keeps_data(tmp_path: Path, monkeypatch) -> None:
    all_migrations = migrations()
    extra = store_core.Migration(
        9999, "test_add_column", "ALTER TABLE access_events ADD COLUMN note TEXT;"
    )
    monkeypatch.setattr(store_core, "migrations", lambda: all_migrations[:1])
    old = Store(tmp_path / "q.db")
    # The row as the old code wrote it: only the columns that schema had (the record model
    # has grown since, e.g. fused_score in 0202).
    cols = {c.name for c in old.db["access_events"].columns}
    with old.transaction():
        old.db["access_events"].insert(
            {k: v for k, v in access(1).model_dump(mode="json").items() if k in cols})
    old.close()
    assert old.schema_versions  # opened at the old schema
    monkeypatch.setattr(store_core, "migrations", lambda: [*all_migrations, extra])
    new = Store(tmp_path / "q.db")
    assert new.schema_versions() == [m.version for m in all_migrations] + [9999]
    row = new.db.execute("SELECT id, note FROM access_events").fetchone()
    assert row == ("a1", None)
    new.close()


def test_failing_migration_leaves_schema_unchanged(tmp_path: Path, monkeypatch) -> None:
    base = migrations()
    bad = store_core.Migration(9998, "bad", "CREATE TABLE t1 (x);\nSELECT * FROM no_such_table;")
    monkeypatch.setattr(store_core, "migrations", lambda: [*base, bad])
    with pytest.raises(sqlite3.OperationalError):
        Store(tmp_path / "q.db")
    conn = sqlite3.connect(tmp_path / "q.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "t1" not in tables and "events" in tables
    assert 9998 not in {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}


def test_record_writes_row_event_and_outbox_together(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db", box_id="box-9")
    store.record(access(1))
    assert store.db.execute("SELECT door_id, decision FROM access_events").fetchall() == [
        ("door-1", "granted")
    ]
    ev = store.events_after(0)
    assert [(e.device_kind, e.device_id, e.event) for e in ev] == [("door", "door-1", "access")]
    assert ev[0].payload["schema"] == "qilu.v1.access_event"
    prio, kind, payload = store.db.execute(
        "SELECT priority, kind, payload FROM outbox"
    ).fetchone()
    assert (prio, kind) == (Priority.ACCESS, "access_event")
    assert json.loads(payload)["id"] == "a1"
    # A box-level record publishes under box/<box_id>.
    store.record(DeviceHealth(id="h1", device_kind="box", device_id="box-9", state="online"))
    assert store.events_after(ev[0].id)[0].device_id == "box-9"
    store.close()


def test_recording_a_record_again_keeps_the_rows_that_hang_off_it(tmp_path: Path) -> None:
    """Re-recording a resident (a new name) updates the row in place: the face templates that
    reference it (ON DELETE CASCADE) stay. INSERT OR REPLACE would delete them."""
    store = Store(tmp_path / "q.db", box_id="box-9")
    store.record(Resident(id="r-1", name="张三"))
    store.db.execute(
        "INSERT INTO face_templates (id, resident_id, embedding, quality, model, created_at)"
        " VALUES ('t-1', 'r-1', x'00', 1.0, 'sface', '2026-11-30T00:00:00Z')"
    )
    store.record(Resident(id="r-1", name="张三丰", building="5"))
    assert store.db.execute("SELECT name, building FROM residents").fetchall() == [("张三丰", "5")]
    assert store.db.execute("SELECT id FROM face_templates").fetchall() == [("t-1",)]
    store.close()


def test_failed_transaction_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.record(access(1))
        raise RuntimeError("crash after the record, before commit")
    assert store.db.execute("SELECT count(*) FROM access_events").fetchone()[0] == 0
    assert store.outbox_stats()["rows"] == 0
    assert store.events_after(0) == []
    with pytest.raises(StoreError, match="inside"):
        store.emit(access(2))
    store.close()


def test_outbox_seq_is_never_reused(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.record(access(1))
    store.record(access(2))
    with store.transaction():
        store.db.execute("DELETE FROM outbox")
    store.record(access(3))
    assert store.db.execute("SELECT seq FROM outbox").fetchone()[0] == 3
    store.close()


KILLER = """
import os, sys, time
from edge.core.store import Store
from edge.core.store import core
from edge.core.standard import AccessEvent
store = Store(sys.argv[1])
store.record(AccessEvent(id="before", door_id="d", method="face", decision="granted"))
real = core.Store._insert_outbox
def slow(self, *a):
    open(sys.argv[2], "w").write("between")  # the record row is written, the outbox row not yet
    time.sleep(60)
    real(self, *a)
core.Store._insert_outbox = slow
store.record(AccessEvent(id="torn", door_id="d", method="face", decision="granted"))
"""


def test_kill_between_record_and_outbox_leaves_neither(tmp_path: Path) -> None:
    db, marker = tmp_path / "q.db", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(db), str(marker)])
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "writer never reached the point between writes"
            assert proc.poll() is None, "writer died early"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # like a power cut at the worst moment
    finally:
        proc.wait(10)
    store = Store(db)
    ids = [r[0] for r in store.db.execute("SELECT id FROM access_events ORDER BY id")]
    outbox = [r[0] for r in store.db.execute("SELECT record_id FROM outbox")]
    assert ids == ["before"] and outbox == ["before"]
    assert [e.record_id for e in store.events_after(0)] == ["before"]
    assert store.integrity_check() == "ok"
    store.close()


def test_corrupt_database_is_moved_aside_and_a_fresh_one_used(tmp_path: Path, caplog) -> None:
    db = tmp_path / "q.db"
    old = Store(db)
    for i in range(5):
        old.record(access(i))
    old.close()
    db.write_bytes(b"this is not a database at all" * 200)
    store = Store(db)
    assert store.recovered_from is not None
    assert store.recovered_from.read_bytes().startswith(b"this is not a database")
    assert store.integrity_check() == "ok"
    assert "CORRUPT" in caplog.text
    # The old outbox counter is unreadable: seqs go on from the clock (in microseconds), not
    # from 1, which the cloud already holds for this box (tests/edge/sync/test_service.py).
    store.record(access(99))
    (seq,) = store.db.execute("SELECT seq FROM outbox").fetchone()
    assert seq > 1_700_000_000 * 10**6
    store.close()


def test_damaged_pages_are_detected(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    store = Store(db)
    for i in range(300):
        store.record(access(i))
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    raw = bytearray(db.read_bytes())
    page = 4096
    for off in range(page * 2, len(raw) - page, page):  # scribble over the b-tree pages
        raw[off + 8 : off + 64] = os.urandom(56)
    db.write_bytes(bytes(raw))
    assert check_file(db) != "ok"
    recovered = Store(db)
    assert recovered.recovered_from is not None
    assert recovered.db.execute("SELECT count(*) FROM access_events").fetchone()[0] == 0
    recovered.close()


def test_full_disk_refuses_whole_write_and_keeps_what_was_stored(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.record(access(0))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk is now all but full
    big = "x" * 1500
    with pytest.raises(StoreFullError, match="full"):
        for i in range(1, 200):
            store.record(
                AccessEvent(
                    id=f"f{i}", door_id="door-1", method="face", decision="denied", reason=big
                )
            )
    n_rows = store.db.execute("SELECT count(*) FROM access_events").fetchone()[0]
    n_out = store.outbox_stats()["rows"]
    assert (
        n_rows == n_out
        and store.db.execute("SELECT count(*) FROM access_events WHERE id='a0'").fetchone()[0] == 1
    )
    assert store.integrity_check() == "ok"
    store.db.execute("PRAGMA max_page_count = 1000000")  # space freed: writing goes on
    store.record(access(999))
    store.close()


def test_box_restarting_on_a_full_disk_keeps_its_database(tmp_path: Path) -> None:
    """The disk filled up and the box restarted: opening the store fails (SQLite cannot even
    size its shared-memory file: SQLITE_IOERR_SHMSIZE). That is no corruption: before, the
    healthy database (residents, faces, rights, unsent records) was moved aside as
    "corrupt" and the box came up on an empty one. Now opening fails with StoreFullError,
    nothing is moved, and once space is freed the same database opens with every row."""
    small_fs = small_fs_at(tmp_path / "small")
    db = small_fs / "q.db"
    store = Store(db)
    for i in range(300):
        store.record(access(i))
    store.close()
    fill(small_fs / "filler")
    with pytest.raises(StoreFullError, match="full"):
        Store(db)
    assert sorted(p.name for p in small_fs.iterdir() if "corrupt" in p.name) == []
    (small_fs / "filler").unlink()
    store = Store(db)
    assert store.recovered_from is None
    assert store.db.execute("SELECT count(*) FROM access_events").fetchone()[0] == 300
    assert store.outbox_stats()["rows"] == 300
    store.close()


def test_backup_is_a_consistent_copy(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    store.record(access(1))
    out = store.backup(tmp_path / "backups")
    copy = Store(out)
    assert copy.db.execute("SELECT id FROM access_events").fetchall() == [("a1",)]
    copy.close()
    store.close()


def test_backup_copies_are_owner_only_like_the_database(tmp_path: Path) -> None:
    """`qilu-edge db backup` (run by root with the usual umask 022) copied qilu.db, which holds
    face templates and the box key (pass QR signatures, login-code HMACs), into a 0644 file:
    the store is 0600 "whatever the umask", its copies were readable by every local user."""
    db = tmp_path / "data" / "qilu.db"
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[box]\nid = "box-1"\ncommunity = "c-1"\ndata_dir = "{db.parent}"\n')
    store = Store(db)
    store.record(access(1))
    store.set_meta("access.box_key", "secret-box-key")
    store.close()
    code = "import os; os.umask(0o022); from edge.cli import main; main()"
    for dest in (None, tmp_path / "usb"):  # the config's backups/ folder, and --to DIR
        args = ["db", "backup", "-c", str(cfg), *(["--to", str(dest)] if dest else [])]
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        out = Path(r.stdout.strip())
        mode = out.stat().st_mode & 0o777  # before Store() opens it (which makes it 0600)
        assert mode & 0o077 == 0, f"{out} is {mode:04o}"
        copy = Store(out)
        assert copy.get_meta("access.box_key") == "secret-box-key"  # a full copy
        copy.close()


@needs_daemon_user
def test_a_store_made_by_a_root_command_before_the_first_start_opens_for_the_daemon() -> None:
    """`sudo qilu-edge resident add` (or `screens key`, `db migrate`: they work with the daemon
    stopped) on a box installed with --no-start or from an SD-card image, before the daemon's
    first start, made qilu.db root:root 0600 in the daemon user's data folder: the daemon
    (User=qilu-edge) could not open it and failed at every start."""
    base = daemon_user_folder("qilu-store-")
    proc: subprocess.Popen | None = None
    try:
        port = free_port()
        config = base / "edge.toml"
        config.write_text(box_toml(base, api_port=port, extra="[faces]\nenabled = false\n"
                                   "[sync]\nenabled = false\n"))  # fmt: skip
        config.chmod(0o644)
        r = subprocess.run(
            [sys.executable, "-c", "from edge.cli import main; main()", "resident", "add",
             "-c", str(config), "r-101", "--name", "张三", "--building", "1"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        proc = start_daemon_as_user(config)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            time.sleep(0.2)
        else:
            stop_process(proc)
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the daemon did not start: {err[-1200:]}")
        assert (base / "data" / "qilu.db").stat().st_uid == DAEMON_UID
    finally:
        stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


def test_prune_keeps_unpublished_events(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.db")
    for i in range(4):
        store.record(access(i))
    store.set_meta("bus_cursor", "2")  # the bus published the first two
    assert store.prune_events("9999-01-01T00:00:00+00:00") == 2
    assert [e.record_id for e in store.events_after(0)] == ["a2", "a3"]
    store.close()


WRITER = """
import sys
from edge.core.store import Store
from edge.core.standard import AccessEvent
store = Store(sys.argv[1])
for i in range(200):
    store.record(AccessEvent(id=f"{sys.argv[2]}{i}", door_id="d", method="pin", decision="denied"))
"""


def test_two_processes_writing_at_once_both_succeed(tmp_path: Path) -> None:
    # A CLI command writing while the daemon writes must wait its turn, not fail.
    db = tmp_path / "q.db"
    Store(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag]) for tag in "xy"]
    assert [p.wait(60) for p in procs] == [0, 0]
    store = Store(db)
    assert store.db.execute("SELECT count(*) FROM access_events").fetchone()[0] == 400
    assert store.outbox_stats()["rows"] == 400
    store.close()
