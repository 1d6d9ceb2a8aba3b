"""Outbox reading, acknowledging and the disk-budget policy (edge/sync/store.py)."""

from __future__ import annotations

from pathlib import Path

from edge.core.standard import AccessEvent, Alert, DeviceHealth, Priority, new_id
from edge.core.store import Store
from edge.sync import store as ob


def health(i: int) -> DeviceHealth:
    return DeviceHealth(
        id=f"dh-{i}", device_kind="door", device_id="d1", state="online", reason="x" * 200
    )


def access(i: int) -> AccessEvent:
    return AccessEvent(id=f"ae-{i}", door_id="d1", method="qr", decision="granted")


def test_batches_drain_by_priority_then_seq(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    for i in range(3):
        store.record(health(i))  # seq 1, 3, 5
        store.record(access(i))  # seq 2, 4, 6
    store.record(Alert(id=new_id("al"), level="critical", type="t", message="m"))  # seq 7
    batch = ob.outbox_batch(store, 100, 10**9)
    assert [(r.seq, r.priority) for r in batch] == [(7, Priority.ALERT)]  # one class a batch
    ob.outbox_ack(store, [r.seq for r in batch])
    batch = ob.outbox_batch(store, 100, 10**9)
    assert [(r.seq, r.kind) for r in batch] == [
        (2, "access_event"),
        (4, "access_event"),
        (6, "access_event"),
    ]
    assert ob.outbox_floor(store) == 1
    assert ob.outbox_ack(store, [2, 4, 6]) == 3
    assert ob.outbox_ack(store, [2, 4, 6]) == 0  # idempotent
    assert [r.seq for r in ob.outbox_batch(store, 2, 10**9)] == [1, 3]
    assert len(ob.outbox_batch(store, 100, 1)) == 1  # over the byte limit: still one row
    ob.outbox_ack(store, [1, 3, 5])
    assert store.outbox_stats()["rows"] == 0
    assert ob.outbox_floor(store) == 8  # empty: the next seq to be issued
    store.close()


def test_budget_drops_only_telemetry_oldest_first(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db")
    for i in range(10):
        store.record(health(i))
        store.record(access(i))
    total = store.outbox_stats()["bytes"]
    telemetry = [r for r in ob.outbox_rows(store) if r.kind == "device_health"]
    assert ob.drop_telemetry(store, total) == (0, 0)  # at the budget: nothing to do
    budget = total - sum(r.bytes for r in telemetry[:3]) + 1  # three rows must go
    assert ob.drop_telemetry(store, budget) == (3, sum(r.bytes for r in telemetry[:3]))
    left = ob.outbox_rows(store)
    assert [r.record_id for r in left if r.kind == "device_health"] == [
        f"dh-{i}" for i in range(3, 10)
    ]
    # Below what the never-dropped classes need: all telemetry goes, nothing else does.
    ob.drop_telemetry(store, 1)
    assert [r.record_id for r in ob.outbox_rows(store)] == [f"ae-{i}" for i in range(10)]
    store.close()


def test_over_budget_plays_go_after_telemetry(tmp_path: Path) -> None:
    """Issue 13: proof of play is droppable under disk pressure, after telemetry, before
    anything that matters (access events, alerts, reports are never dropped)."""
    from datetime import UTC, datetime, timedelta

    from edge.core.standard import PlayRecord
    from edge.screens import store as screens_db

    store = Store(tmp_path / "b.db")
    t = datetime.now(UTC)
    plays = [PlayRecord(id=f"pr-{i}", screen_id="s1", content_id="c", started_at=t,
                        ended_at=t + timedelta(seconds=2), duration_ms=2000) for i in range(6)]
    screens_db.record_plays(store, plays)
    for i in range(4):
        store.record(health(i))
        store.record(access(i))
    rows = ob.outbox_rows(store)
    keep = sum(r.bytes for r in rows if r.kind == "access_event")
    play_bytes = [r.bytes for r in rows if r.kind == "play_record"]
    # Room for the access events and the last two plays: all telemetry and four plays go.
    budget = keep + sum(play_bytes[-2:])
    dropped = ob.drop_for_budget(store, budget)
    assert dropped[0] == 4 + 4
    left = ob.outbox_rows(store)
    assert [r.record_id for r in left if r.kind == "play_record"] == ["pr-4", "pr-5"]
    assert [r.record_id for r in left if r.kind == "access_event"] == [f"ae-{i}" for i in range(4)]
    assert not [r for r in left if r.kind == "device_health"]
    # The box's own copies of the dropped plays go too (that is the disk being freed).
    ids = [r[0] for r in store.db.execute("SELECT id FROM play_records ORDER BY id")]
    assert ids == ["pr-4", "pr-5"]
    # Never below what the never-dropped classes need.
    ob.drop_for_budget(store, 1)
    assert [r.kind for r in ob.outbox_rows(store)] == ["access_event"] * 4
    store.close()
