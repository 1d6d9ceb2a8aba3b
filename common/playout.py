"""The one answer to "what plays on screen S at time t": pure, deterministic, no I/O.

Shared by the box (edge/screens, through ``edge.screens.resolver``) and the cloud's console
preview (cloudsync/console), so both answer with the same rules. The records it reads are the
box's standard ones (``ContentItem``, ``Playlist``, ``ScheduleEntry``, ``Emergency`` of
edge/core/standard.py) or, on the cloud, the same records as published
(:func:`catalog_from_published`); it only reads their fields, so it imports neither side.

Everything that decides what a screen shows lives here: emergency broadcasts, dayparted
schedule entries with priorities, midnight-crossing windows, content not yet in the cache, and
the default item when nothing is scheduled. The player page never decides any of this; it gets
the :class:`Segment` list from :func:`plan` and only cycles through each segment's items.

Rules, in order:
1. An active emergency targeting the screen wins (level critical > warning > info, then the
   latest start, then the smallest id). It shows its content item if that is playable, else
   its own text notice, for its whole life.
2. Otherwise the schedule window containing t with the highest priority wins (then the latest
   window start, then the smallest id); entries whose playlist has nothing playable are
   skipped, so a half-downloaded playlist never blanks a screen.
3. Otherwise the default item.

Within the winner, items cycle from the window's start (its *anchor*), so every box, page and
test computes the same item for the same instant. A schedule entry may name the page layout
it plays in (``layout``: full / standard / side); segments, and so the answer for an instant,
carry it (None: the screen's own layout; an emergency takes the whole screen anyway). Times
of day are local wall-clock time in the box's timezone (Asia/Shanghai has no DST; where a zone
has DST, fold=0 is used).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

# The records read here, by field (see the module docstring): the box's pydantic records or
# the cloud's published ones below.
ContentItem: TypeAlias = Any
Playlist: TypeAlias = Any
ScheduleEntry: TypeAlias = Any
Emergency: TypeAlias = Any

DEFAULT_ID = "default"
DAY = timedelta(days=1)
MS = timedelta(milliseconds=1)
DEFAULT_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
LEVEL_RANK = {"critical": 0, "warning": 1, "info": 2}
FILE_KINDS = ("image", "video")
LAYOUTS = ("full", "standard", "side")  # the player page's named layouts (edge/screens/layouts.py)


@dataclass(frozen=True)
class ScreenRef:
    id: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """Everything the resolver reads; built from the store by the screens service."""

    tz: ZoneInfo
    items: Mapping[str, ContentItem]
    playlists: Mapping[str, Playlist]
    schedules: Sequence[ScheduleEntry]
    emergencies: Sequence[Emergency] = ()
    ready: frozenset[str] | None = None  # file items whose verified file is cached; None: all
    default_duration_s: float = 60.0


@dataclass(frozen=True)
class Segment:
    """A span of time during which one source plays, cycling ``items`` from ``anchor``."""

    start: datetime
    end: datetime
    source: str  # "emergency:<id>", "schedule:<id>" or "default"
    anchor: datetime
    items: tuple[tuple[str, int], ...]  # (content id, duration in ms)
    layout: str | None = None  # the winning schedule entry's layout; None: the screen's

    @property
    def cycle_ms(self) -> int:
        return sum(d for _, d in self.items)


@dataclass(frozen=True)
class Playing:
    content_id: str
    started_at: datetime  # when this slot began (may be before the segment began)
    ends_at: datetime  # when it gives way: its slot ends or its segment ends
    source: str
    index: int  # position in the segment's items
    layout: str | None = None  # see Segment.layout


@dataclass(frozen=True)
class _Source:
    key: str
    anchor: datetime
    items: tuple[tuple[str, int], ...]
    layout: str | None = None


# --- targeting and playability ------------------------------------------------------------


def targets(screens: Sequence[str], tags: Sequence[str], screen: ScreenRef) -> bool:
    if not screens and not tags:
        return True
    return screen.id in screens or any(t in screen.tags for t in tags)


def playable(cat: Catalog, content_id: str) -> bool:
    item = cat.items.get(content_id)
    if item is None:
        return False
    if item.kind in FILE_KINDS:
        return item.sha256 is not None and (cat.ready is None or content_id in cat.ready)
    return True


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def playlist_items(cat: Catalog, playlist_id: str) -> tuple[tuple[str, int], ...]:
    pl = cat.playlists.get(playlist_id)
    if pl is None:
        return ()
    out = []
    for e in pl.items:
        if playable(cat, e.content_id):
            out.append((e.content_id, _ms(e.duration_s or cat.items[e.content_id].duration_s)))
    return tuple(out)


# --- schedule windows -----------------------------------------------------------------------


def window(entry: ScheduleEntry, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The window that ``entry`` opens on local ``day`` (start, end), or None."""
    if entry.date_from is not None and day < entry.date_from:
        return None
    if entry.date_to is not None and day > entry.date_to:
        return None
    if day.isoweekday() not in entry.weekdays:
        return None
    start = datetime.combine(day, entry.start, tzinfo=tz)
    length = datetime.combine(day, entry.end) - datetime.combine(day, entry.start)
    if length <= timedelta(0):
        length += DAY  # past midnight; equal times mean the whole day
    # Wall-clock arithmetic on a local datetime, then compared as instants.
    return start, start + length


def _window_at(entry: ScheduleEntry, t: datetime, tz: ZoneInfo) -> datetime | None:
    """Start of the window of ``entry`` that contains ``t``, if any (today's or yesterday's)."""
    today = t.astimezone(tz).date()
    found = None
    for day in (today - DAY, today):
        w = window(entry, day, tz)
        if w is not None and w[0] <= t < w[1]:
            found = w[0]  # today's wins over yesterday's if both contain t
    return found


# --- the decision -----------------------------------------------------------------------------


def _active_emergency(cat: Catalog, screen: ScreenRef, t: datetime) -> _Source | None:
    best: tuple | None = None
    for e in cat.emergencies:
        stop = min(e.expires_at, e.cancelled_at) if e.cancelled_at else e.expires_at
        if not (e.starts_at <= t < stop) or not targets(e.screens, e.tags, screen):
            continue
        rank = (LEVEL_RANK[e.level], -e.starts_at.timestamp(), e.id)
        if best is None or rank < best[0]:
            best = (rank, e, stop)
    if best is None:
        return None
    e, stop = best[1], best[2]
    if e.content_id and playable(cat, e.content_id):
        item = (e.content_id, _ms((stop - e.starts_at).total_seconds()))
    else:
        item = (e.id, _ms((stop - e.starts_at).total_seconds()))
    return _Source(f"emergency:{e.id}", e.starts_at, (item,))


def source_at(cat: Catalog, screen: ScreenRef, t: datetime) -> _Source:
    if (em := _active_emergency(cat, screen, t)) is not None:
        return em
    best: tuple | None = None
    for entry in cat.schedules:
        if not targets(entry.screens, entry.tags, screen):
            continue
        start = _window_at(entry, t, cat.tz)
        if start is None:
            continue
        items = playlist_items(cat, entry.playlist_id)
        if not items:
            continue
        rank = (-entry.priority, -start.timestamp(), entry.id)
        if best is None or rank < best[0]:
            layout = getattr(entry, "layout", None)
            best = (rank, _Source(f"schedule:{entry.id}", start, items, layout))
    if best is not None:
        return best[1]
    return _Source(DEFAULT_ID, DEFAULT_ANCHOR, ((DEFAULT_ID, _ms(cat.default_duration_s)),))


def boundaries(cat: Catalog, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """Every instant in (lo, hi) where the answer may change source (unsorted, may repeat)."""
    for e in cat.emergencies:
        for b in (e.starts_at, e.expires_at, e.cancelled_at):
            if b is not None and lo < b < hi:
                yield b
    first = lo.astimezone(cat.tz).date() - DAY
    last = hi.astimezone(cat.tz).date()
    for entry in cat.schedules:
        day = first
        while day <= last:
            w = window(entry, day, cat.tz)
            if w is not None:
                for b in w:
                    if lo < b < hi:
                        yield b
            day += DAY


def plan(cat: Catalog, screen: ScreenRef, lo: datetime, hi: datetime) -> list[Segment]:
    """The screen's segments covering [lo, hi), adjacent ones with the same source merged."""
    if lo.tzinfo is None or hi.tzinfo is None:
        raise ValueError("plan: lo and hi must be timezone-aware")
    points = sorted({lo, *boundaries(cat, lo, hi), hi})
    out: list[Segment] = []
    for a, b in pairwise(points):
        src = source_at(cat, screen, a)
        if out and out[-1].source == src.key and out[-1].anchor == src.anchor:
            prev = out[-1]
            out[-1] = Segment(prev.start, b, prev.source, prev.anchor, prev.items, prev.layout)
        else:
            out.append(Segment(a, b, src.key, src.anchor, src.items, src.layout))
    return out


def item_in(seg: Segment, t: datetime) -> Playing:
    """Which of the segment's items plays at ``t`` (start <= t < end)."""
    offset = ((t - seg.anchor) // MS) % seg.cycle_ms
    acc = 0
    for i, (cid, dur) in enumerate(seg.items):
        if offset < acc + dur:
            slot_start = t - (offset - acc) * MS
            return Playing(cid, slot_start, min(slot_start + dur * MS, seg.end), seg.source, i,
                           seg.layout)
        acc += dur
    raise AssertionError("unreachable: offset < cycle")


def what_plays(
    cat: Catalog, screen: ScreenRef, t: datetime, horizon: timedelta = 2 * DAY
) -> Playing:
    """What screen ``screen`` shows at instant ``t``."""
    seg = plan(cat, screen, t, t + horizon)[0]
    return item_in(seg, t)


def scheduled_content(cat: Catalog, lo: datetime, hi: datetime) -> set[str]:
    """Content ids that any schedule window or emergency in [lo, hi) may show, on any screen,
    whether cached or not: the cache must never evict these."""
    out: set[str] = set()
    for e in cat.emergencies:
        stop = min(e.expires_at, e.cancelled_at) if e.cancelled_at else e.expires_at
        if e.content_id and stop > lo and e.starts_at < hi:
            out.add(e.content_id)
    first = lo.astimezone(cat.tz).date() - DAY
    last = hi.astimezone(cat.tz).date()
    for entry in cat.schedules:
        pl = cat.playlists.get(entry.playlist_id)
        if pl is None:
            continue
        day = first
        while day <= last:
            w = window(entry, day, cat.tz)
            if w is not None and w[1] > lo and w[0] < hi:
                out.update(e.content_id for e in pl.items)
                break
            day += DAY
    return out


# --- the cloud's view: records as published (cloudsync's preview) ------------------------------


@dataclass(frozen=True)
class PublishedItem:
    id: str
    kind: str
    duration_s: float = 10.0
    sha256: str | None = None
    title: str = ""


@dataclass(frozen=True)
class PublishedEntry:
    content_id: str
    duration_s: float | None = None


@dataclass(frozen=True)
class PublishedPlaylist:
    id: str
    items: tuple[PublishedEntry, ...]


@dataclass(frozen=True)
class PublishedSchedule:
    id: str
    playlist_id: str
    screens: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None
    weekdays: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    start: time = time(0, 0)
    end: time = time(0, 0)
    priority: int = 0
    layout: str | None = None


@dataclass(frozen=True)
class PublishedEmergency:
    id: str
    expires_at: datetime
    starts_at: datetime
    level: str = "critical"
    content_id: str | None = None
    screens: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    cancelled_at: datetime | None = None
    title: str = ""


def _when(text: Any) -> datetime:
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def catalog_from_published(
    published: Sequence[tuple[str, str, dict[str, Any]]], tz: ZoneInfo
) -> Catalog:
    """A catalog from what was published to one box, oldest first: (action, created_at, args)
    of its content / playlist / schedule / emergency / emergency_cancel feed items; a later
    record of an id replaces the earlier one, as on the box. Every file counts as cached."""
    items: dict[str, PublishedItem] = {}
    playlists: dict[str, PublishedPlaylist] = {}
    schedules: dict[str, PublishedSchedule] = {}
    emergencies: dict[str, PublishedEmergency] = {}
    for action, created_at, a in published:
        try:
            if action == "content":
                items[a["id"]] = PublishedItem(
                    a["id"], a["kind"], float(a.get("duration_s") or 10.0), a.get("sha256"),
                    a.get("title", ""),
                )  # fmt: skip
            elif action == "playlist":
                entries = tuple(
                    PublishedEntry(e["content_id"], e.get("duration_s")) for e in a["items"]
                )
                playlists[a["id"]] = PublishedPlaylist(a["id"], entries)
            elif action == "schedule":
                schedules[a["id"]] = PublishedSchedule(
                    a["id"], a["playlist_id"], tuple(a.get("screens", ())),
                    tuple(a.get("tags", ())),
                    date.fromisoformat(a["date_from"]) if a.get("date_from") else None,
                    date.fromisoformat(a["date_to"]) if a.get("date_to") else None,
                    tuple(a.get("weekdays") or (1, 2, 3, 4, 5, 6, 7)),
                    time.fromisoformat(a.get("start") or "00:00"),
                    time.fromisoformat(a.get("end") or "00:00"),
                    int(a.get("priority") or 0),
                    a.get("layout") if a.get("layout") in LAYOUTS else None,
                )  # fmt: skip
            elif action == "emergency":
                emergencies[a["id"]] = PublishedEmergency(
                    a["id"], _when(a["expires_at"]), _when(a.get("starts_at") or created_at),
                    a.get("level", "critical"), a.get("content_id"), tuple(a.get("screens", ())),
                    tuple(a.get("tags", ())), None, a.get("title", ""),
                )  # fmt: skip
            elif action == "emergency_cancel" and a.get("id") in emergencies:
                em = emergencies[a["id"]]
                emergencies[a["id"]] = PublishedEmergency(
                    em.id, em.expires_at, em.starts_at, em.level, em.content_id, em.screens,
                    em.tags, _when(created_at), em.title,
                )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            continue  # a record the box would refuse too: it plays no part
    return Catalog(tz, items, playlists, list(schedules.values()), list(emergencies.values()))
