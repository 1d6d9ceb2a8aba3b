"""The pure ranking: guaranteed must-read slots, read items sink, reasons name a read item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.portal.recommend import CoReads, Item, Profile, popularity, rank

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def item(i: str, tags: tuple[str, ...], hours_ago: float = 1, must: bool = False) -> Item:
    return Item(i, f"《{i}》", tags, NOW - timedelta(hours=hours_ago), must)


ITEMS = [
    item("m1", ("policy",), 200, True),
    item("m2", ("emergency",), 100, True),
    item("m3", ("policy",), 50, True),
    item("s1", ("sport",), 30),
    item("s2", ("sport",), 20),
    item("h1", ("health",), 2),
    item("hot", ("law",), 40),
]
LOG = [(f"r{i}", "hot", "1", NOW - timedelta(days=1)) for i in range(30)] + [
    ("r1", "s1", "1", NOW - timedelta(days=1)),
    ("r1", "s2", "1", NOW - timedelta(days=1)),
]
MUST = ("policy", "emergency")


def test_must_read_slots_are_guaranteed_and_released_by_ack() -> None:
    co = CoReads(LOG, NOW)
    out = rank(ITEMS, Profile(), co, NOW, must_read_slots=2, must_tags=MUST)
    # the two newest unacknowledged must-reads, whatever their score
    assert [r.item.id for r in out[:2]] == ["m3", "m2"]
    assert all(r.reason.startswith("必读") for r in out[:2])
    acked = Profile(acks={"m3", "m2"})
    out = rank(ITEMS, acked, co, NOW, must_read_slots=2, must_tags=MUST)
    assert out[0].item.id == "m1"
    none = rank(ITEMS, Profile(), co, NOW, must_read_slots=0, must_tags=MUST)
    assert not none[0].reason.startswith("必读")


def test_read_items_sink_and_reasons_name_what_was_read() -> None:
    co = CoReads(LOG, NOW)
    prof = Profile(building="1", reads={"s1": 90.0})
    out = rank(ITEMS, prof, co, NOW, must_read_slots=0, must_tags=MUST)
    ids = [r.item.id for r in out]
    assert ids[-1] == "s1" and out[-1].read
    by = {r.item.id: r for r in out}
    assert by["s2"].reason == "因为你读过《《s1》》"
    assert ids.index("s2") < ids.index("h1")
    assert by["hot"].reason in ("社区热门", "1号楼的邻居都在看")


def test_building_addressed_items_and_baseline() -> None:
    items = [*ITEMS, item("b2", ("notice", "building:2"), 5)]
    out = rank(items, Profile(building="2"), CoReads(LOG, NOW), NOW, must_tags=MUST)
    assert {r.item.id: r for r in out}["b2"].reason == "2号楼的通知"
    base = popularity(ITEMS, CoReads(LOG, NOW), {"hot"}, 3)
    assert "hot" not in [i.id for i in base] and len(base) == 3
