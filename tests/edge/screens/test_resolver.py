"""The schedule resolver: examples for each rule, then hypothesis properties against a naive
oracle written independently (minute-level wall-clock arithmetic on naive local times)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from common.playout import catalog_from_published
from edge.core.standard import ContentItem, Emergency, Playlist, PlaylistEntry, ScheduleEntry
from edge.screens.resolver import (
    DEFAULT_ID,
    Catalog,
    ScreenRef,
    plan,
    scheduled_content,
    what_plays,
)

TZ = ZoneInfo("Asia/Shanghai")
SCREEN = ScreenRef("scr-1", ("east", "outdoor"))


def items(n: int = 6) -> dict[str, ContentItem]:
    out = {}
    for i in range(n):
        out[f"c{i}"] = ContentItem(
            id=f"c{i}", kind="html", title=f"通知{i}", body="正文", duration_s=5 + i
        )
    return out


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=TZ)


def cat(schedules=(), emergencies=(), playlists=None, ready=None) -> Catalog:
    its = items()
    if ready is not None:
        its["img"] = ContentItem(id="img", kind="image", title="图", sha256="a" * 64)
    pls = playlists or {
        "p0": Playlist(id="p0", name="早", items=[PlaylistEntry(content_id="c0")]),
        "p1": Playlist(
            id="p1",
            name="晚",
            items=[PlaylistEntry(content_id="c1"), PlaylistEntry(content_id="c2", duration_s=3)],
        ),
    }
    return Catalog(TZ, its, pls, list(schedules), list(emergencies), ready)


def test_empty_schedule_plays_the_default_item():
    p = what_plays(cat(), SCREEN, local(2026, 3, 1, 12))
    assert p.content_id == DEFAULT_ID and p.source == "default"


def test_priority_and_window():
    a = ScheduleEntry(id="a", playlist_id="p0", start=time(8), end=time(20))
    b = ScheduleEntry(id="b", playlist_id="p1", start=time(12), end=time(13), priority=5)
    c = cat([a, b])
    assert what_plays(c, SCREEN, local(2026, 3, 2, 9)).source == "schedule:a"
    assert what_plays(c, SCREEN, local(2026, 3, 2, 12, 30)).source == "schedule:b"
    assert what_plays(c, SCREEN, local(2026, 3, 2, 13)).source == "schedule:a"  # end exclusive
    assert what_plays(c, SCREEN, local(2026, 3, 2, 20)).source == "default"


def test_midnight_crossing_belongs_to_the_day_it_starts():
    # Fridays only, 22:00 -> 02:00: Saturday 01:00 plays, Friday 01:00 does not.
    e = ScheduleEntry(id="n", playlist_id="p0", start=time(22), end=time(2), weekdays=[5])
    c = cat([e])
    assert what_plays(c, SCREEN, local(2026, 3, 6, 23)).source == "schedule:n"  # Fri
    assert what_plays(c, SCREEN, local(2026, 3, 7, 1, 59)).source == "schedule:n"  # Sat
    assert what_plays(c, SCREEN, local(2026, 3, 7, 2)).source == "default"
    assert what_plays(c, SCREEN, local(2026, 3, 6, 1)).source == "default"  # Fri early


def test_a_schedule_entry_carries_its_layout_on_box_and_cloud():
    """[issue 19] layouts chosen per schedule entry: the answer for an instant and every
    segment carry the winning entry's layout; None where the screen's own applies (default,
    an entry without one, an emergency). The cloud preview's catalog reads the same field."""
    day = ScheduleEntry(id="day", playlist_id="p0", start=time(8), end=time(18), layout="side")
    eve = ScheduleEntry(id="eve", playlist_id="p1", start=time(18), end=time(22))
    night = ScheduleEntry(id="night", playlist_id="p1", start=time(22), end=time(6),
                          layout="full", priority=1)
    c = cat([day, eve, night])
    assert what_plays(c, SCREEN, local(2026, 3, 2, 9)).layout == "side"
    assert what_plays(c, SCREEN, local(2026, 3, 2, 19)).layout is None
    assert what_plays(c, SCREEN, local(2026, 3, 3, 1)).layout == "full"
    assert what_plays(c, SCREEN, local(2026, 3, 2, 5)).layout == "full"
    assert what_plays(c, SCREEN, local(2026, 3, 2, 7)).layout is None  # the default
    segs = plan(c, SCREEN, local(2026, 3, 2, 7), local(2026, 3, 3, 7))
    assert [(s.source, s.layout) for s in segs] == [
        ("default", None), ("schedule:day", "side"), ("schedule:eve", None),
        ("schedule:night", "full"), ("default", None)]
    em = Emergency(id="em", title="停电", starts_at=local(2026, 3, 2, 9),
                   expires_at=local(2026, 3, 2, 10))
    assert what_plays(cat([day], [em]), SCREEN, local(2026, 3, 2, 9, 30)).layout is None
    # the cloud's preview: the same records as published to the box
    published = [
        ("content", "2026-03-01T00:00:00Z", {"id": "c0", "kind": "html", "title": "通知"}),
        ("playlist", "2026-03-01T00:00:00Z", {"id": "p0", "items": [{"content_id": "c0"}]}),
        ("schedule", "2026-03-01T00:00:00Z",
         day.model_dump(mode="json") | {"playlist_id": "p0"}),
        ("schedule", "2026-03-01T00:00:00Z",
         {"id": "odd", "playlist_id": "p0", "start": "18:00", "end": "19:00",
          "layout": "sideways"}),
    ]
    cloud = catalog_from_published(published, TZ)
    assert what_plays(cloud, SCREEN, local(2026, 3, 2, 9)).layout == "side"
    assert what_plays(cloud, SCREEN, local(2026, 3, 2, 18, 30)).layout is None  # unknown name


def test_cycle_is_anchored_at_the_window_start():
    e = ScheduleEntry(id="e", playlist_id="p1", start=time(10), end=time(11))
    c = cat([e])
    # p1 = c1 (6 s) + c2 (3 s): cycle 9 s from 10:00:00.
    assert what_plays(c, SCREEN, local(2026, 3, 2, 10, 0, 0)).content_id == "c1"
    p = what_plays(c, SCREEN, local(2026, 3, 2, 10, 0, 7))
    assert p.content_id == "c2" and p.started_at == local(2026, 3, 2, 10, 0, 6)
    assert p.ends_at == local(2026, 3, 2, 10, 0, 9)
    assert what_plays(c, SCREEN, local(2026, 3, 2, 10, 0, 9)).content_id == "c1"


def test_emergency_wins_then_schedule_resumes():
    s = ScheduleEntry(id="s", playlist_id="p0", priority=1000)
    t0 = local(2026, 3, 2, 9)
    em = Emergency(id="em1", title="停水通知", starts_at=t0, expires_at=t0 + timedelta(hours=1))
    c = cat([s], [em])
    assert what_plays(c, SCREEN, t0).source == "emergency:em1"
    assert what_plays(c, SCREEN, t0).content_id == "em1"
    assert what_plays(c, SCREEN, t0 + timedelta(hours=1)).source == "schedule:s"
    cancelled = em.model_copy(update={"cancelled_at": t0 + timedelta(minutes=5)})
    c2 = cat([s], [cancelled])
    assert what_plays(c2, SCREEN, t0 + timedelta(minutes=5)).source == "schedule:s"
    other = em.model_copy(update={"screens": ["scr-2"]})
    assert what_plays(cat([s], [other]), SCREEN, t0).source == "schedule:s"


def test_items_not_in_cache_are_skipped_and_empty_playlist_falls_through():
    pls = {
        "img": Playlist(id="img", name="图片", items=[PlaylistEntry(content_id="img")]),
        "p0": Playlist(id="p0", name="早", items=[PlaylistEntry(content_id="c0")]),
    }
    hi = ScheduleEntry(id="hi", playlist_id="img", priority=9)
    lo = ScheduleEntry(id="lo", playlist_id="p0")
    t = local(2026, 3, 2, 9)
    assert what_plays(cat([hi, lo], playlists=pls, ready=frozenset()), SCREEN, t).source == (
        "schedule:lo"
    )
    got = what_plays(cat([hi, lo], playlists=pls, ready=frozenset({"img"})), SCREEN, t)
    assert got.content_id == "img"


def test_scheduled_content_ignores_cache_state():
    pls = {"img": Playlist(id="img", name="图片", items=[PlaylistEntry(content_id="img")])}
    e = ScheduleEntry(
        id="e", playlist_id="img", date_from=date(2026, 3, 5), date_to=date(2026, 3, 5)
    )
    c = cat([e], playlists=pls, ready=frozenset())
    assert scheduled_content(c, local(2026, 3, 1), local(2026, 3, 4)) == set()
    assert scheduled_content(c, local(2026, 3, 1), local(2026, 3, 8)) == {"img"}


# --- properties -------------------------------------------------------------------------------

t_strategy = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@st.composite
def entries(draw) -> list[ScheduleEntry]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        d0 = draw(st.dates(date(2025, 12, 25), date(2027, 1, 5)))
        out.append(
            ScheduleEntry(
                id=f"s{i}",
                playlist_id=draw(st.sampled_from(["p0", "p1", "missing"])),
                screens=draw(st.sampled_from([[], ["scr-1"], ["scr-9"]])),
                tags=draw(st.sampled_from([[], ["east"], ["west"]])),
                date_from=draw(st.sampled_from([None, d0])),
                date_to=draw(
                    st.sampled_from([None, d0 + timedelta(days=draw(st.integers(0, 60)))])
                ),
                weekdays=draw(st.lists(st.integers(1, 7), min_size=1, max_size=7, unique=True)),
                start=time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 59]))),
                end=time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 59]))),
                priority=draw(st.integers(-3, 3)),
            )
        )
    return out


def oracle(c: Catalog, screen: ScreenRef, t: datetime) -> str:
    """Naive: local naive times, minutes, no shared helpers."""
    lt = t.astimezone(TZ).replace(tzinfo=None)
    best = None
    for e in c.schedules:
        if not (
            (not e.screens and not e.tags)
            or screen.id in e.screens
            or set(e.tags) & set(screen.tags)
        ):
            continue
        if e.playlist_id not in c.playlists:
            continue
        for back in (1, 0):
            d = lt.date() - timedelta(days=back)
            if (e.date_from and d < e.date_from) or (e.date_to and d > e.date_to):
                continue
            if d.isoweekday() not in e.weekdays:
                continue
            s_min = e.start.hour * 60 + e.start.minute
            e_min = e.end.hour * 60 + e.end.minute
            length = (e_min - s_min) % 1440 or 1440
            start = datetime.combine(d, time()) + timedelta(minutes=s_min)
            if start <= lt < start + timedelta(minutes=length):
                rank = (-e.priority, -start.timestamp(), e.id)
                if best is None or rank < best[0]:
                    best = (rank, e.id)
    return f"schedule:{best[1]}" if best else "default"


@settings(max_examples=300, deadline=None)
@given(entries(), t_strategy)
def test_winner_matches_the_naive_oracle(sched, t):
    c = cat(sched)
    assert what_plays(c, SCREEN, t).source == oracle(c, SCREEN, t)


@settings(max_examples=150, deadline=None)
@given(entries(), t_strategy, st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(sched, t, rnd: random.Random):
    a = what_plays(cat(sched), SCREEN, t)
    shuffled = list(sched)
    rnd.shuffle(shuffled)
    assert what_plays(cat(shuffled), SCREEN, t) == a


@settings(max_examples=100, deadline=None)
@given(entries(), t_strategy, st.lists(st.integers(0, 3 * 86400 - 1), min_size=1, max_size=8))
def test_plan_is_gapless_and_agrees_with_what_plays(sched, lo, offsets):
    c = cat(sched)
    hi = lo + timedelta(days=3)
    segs = plan(c, SCREEN, lo, hi)
    assert segs[0].start == lo and segs[-1].end == hi
    for a, b in pairwise(segs):
        assert a.end == b.start
        assert (a.source, a.anchor) != (b.source, b.anchor)
    for off in offsets:
        t = lo + timedelta(seconds=off)
        seg = next(s for s in segs if s.start <= t < s.end)
        p = what_plays(c, SCREEN, t)
        assert seg.source == p.source == oracle(c, SCREEN, t)
        assert p.started_at <= t < p.ends_at


@settings(max_examples=100, deadline=None)
@given(entries(), t_strategy, st.integers(1, 7200), st.sampled_from(["critical", "info"]))
def test_an_active_emergency_always_wins(sched, t, secs, level):
    em = Emergency(
        id="em",
        title="紧急",
        level=level,
        starts_at=t - timedelta(seconds=1),
        expires_at=t + timedelta(seconds=secs),
        tags=["outdoor"],
    )
    assert what_plays(cat(sched, [em]), SCREEN, t).source == "emergency:em"
