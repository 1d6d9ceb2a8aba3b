"""Personal reading feed: pure ranking, computed on the box, every place explained.

Signals, each in [0, 1] before weighting:
- *topic*: how much of the resident's reading (weighted by dwell, acks count double) carries the
  item's tags;
- *co-read*: residents who read what this resident read also read this item (item-item
  co-occurrence over the recent read log, cosine-normalised);
- *building*: the item is addressed to the resident's building (``building:<b>`` tag) or is
  read in that building more than elsewhere;
- *popularity*: recent readers across the community (log-scaled);
- *freshness*: exponential decay with a half-life.

Must-read items (policy notices, emergency information) that the resident has not acknowledged
take the first ``must_read_slots`` places whatever their score. Items already read sink below
unread ones. Each entry says why it is there, naming an item the resident read when the reason
is topic or co-read ("因为你读过《…》").
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Tuned on bench/recommend.py's synthetic log with --seed 1; the bench reports seed 7.
WEIGHTS = {"topic": 1.0, "coread": 0.3, "building": 0.5, "popular": 0.5, "fresh": 1.0}
NON_TOPIC_PREFIXES = ("building:",)
EXPLAIN_MIN = 0.2  # weighted signal needed to explain a place by the resident's own reading


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    tags: tuple[str, ...]
    published: datetime
    must_read: bool = False


@dataclass
class Profile:
    """What the box knows about one resident: their building and their reading."""

    building: str | None = None
    reads: dict[str, float] = field(default_factory=dict)  # content id -> dwell seconds
    acks: set[str] = field(default_factory=set)
    last_read: dict[str, datetime] = field(default_factory=dict)  # content id -> last opened


@dataclass(frozen=True)
class Ranked:
    item: Item
    score: float
    reason: str  # shown to the resident
    signals: dict[str, float]
    read: bool
    must_read: bool


class CoReads:
    """Item popularity, building affinity and co-occurrence from a read log.

    Log rows are (resident, item, building) or (resident, item, building, opened_at); with
    times and ``now``, ``recent`` counts each item's readers in the last ``recent_days``.
    """

    def __init__(
        self,
        log: Iterable[tuple],
        now: datetime | None = None,
        recent_days: float = 7.0,
    ) -> None:
        by_resident: dict[str, set[str]] = defaultdict(set)
        self.readers: Counter[str] = Counter()
        self.recent: Counter[str] = Counter()
        cutoff = now - timedelta(days=recent_days) if now else None
        self.by_building: dict[str, Counter[str]] = defaultdict(Counter)
        building_total: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        for row in log:
            rid, cid, building = row[:3]
            if cutoff is not None and len(row) > 3 and row[3] >= cutoff:
                self.recent[cid] += 1
            if (rid, cid) in seen:
                continue
            seen.add((rid, cid))
            by_resident[rid].add(cid)
            self.readers[cid] += 1
            if building:
                self.by_building[building][cid] += 1
                building_total[building] += 1
        self.building_total = building_total
        self.total_readers = max(len(by_resident), 1)
        self.pairs: dict[str, Counter[str]] = defaultdict(Counter)
        for items in by_resident.values():
            if len(items) > 60:  # a resident who read everything says nothing about pairs
                continue
            for a in items:
                for b in items:
                    if a != b:
                        self.pairs[a][b] += 1

    def similarity(self, a: str, b: str) -> float:
        both = self.pairs.get(a, {}).get(b, 0)
        if not both:
            return 0.0
        return both / math.sqrt(self.readers[a] * self.readers[b])


def _topics(tags: Sequence[str], must_tags: set[str]) -> list[str]:
    return [t for t in tags if not t.startswith(NON_TOPIC_PREFIXES) and t not in must_tags]


def rank(
    items: Sequence[Item],
    profile: Profile,
    co: CoReads,
    now: datetime,
    *,
    half_life_h: float = 72.0,
    must_read_slots: int = 2,
    must_tags: Iterable[str] = (),
    ignore_tags: Iterable[str] = (),
    limit: int = 20,
    weights: dict[str, float] | None = None,
) -> list[Ranked]:
    w = {**WEIGHTS, **(weights or {})}
    must = set(must_tags) | set(ignore_tags)  # neither says what a resident likes
    titles = {it.id: it.title for it in items}
    # Tag profile: dwell-weighted (a glance counts less than a read), acks count extra.
    tag_w: Counter[str] = Counter()
    tag_src: dict[str, tuple[float, str]] = {}
    for it in items:
        if it.id not in profile.reads:
            continue
        acked = 1.0 if it.id in profile.acks else 0.0
        strength = 1.0 + min(profile.reads[it.id], 120.0) / 60.0 + acked
        for t in _topics(it.tags, must):
            tag_w[t] += strength
            if strength > tag_src.get(t, (0.0, ""))[0]:
                tag_src[t] = (strength, it.id)
    tag_total = sum(tag_w.values()) or 1.0
    pop = co.recent if co.recent else co.readers  # trending when the log has times
    max_pop = math.log1p(max(pop.values(), default=0)) or 1.0
    b = profile.building
    b_share = {}
    if b and co.building_total.get(b):
        bt = co.building_total[b]
        all_t = sum(co.building_total.values())
        for cid, n in co.by_building[b].items():
            # lift of the item in this building vs everywhere, squashed to [0, 1]
            lift = (n / bt) / max(co.readers[cid] / all_t, 1e-9)
            b_share[cid] = max(0.0, min(1.0, (lift - 1.0) / 2.0)) * min(1.0, n / 3.0)
    read_ids = list(profile.reads)

    out: list[Ranked] = []
    for it in items:
        topics = _topics(it.tags, must)
        topic = sum(tag_w[t] for t in topics) / tag_total if topics else 0.0
        best_co, co_src = 0.0, ""
        for r in read_ids:
            s = co.similarity(r, it.id)
            if s > best_co:
                best_co, co_src = s, r
        coread = min(1.0, best_co * 2.0)
        addressed = f"building:{b}" in it.tags if b else False
        building = 1.0 if addressed else b_share.get(it.id, 0.0)
        popular = math.log1p(pop.get(it.id, 0)) / max_pop
        age_h = max((now - it.published).total_seconds() / 3600.0, 0.0)
        fresh = 0.5 ** (age_h / half_life_h)
        signals = {
            "topic": round(topic, 4),
            "coread": round(coread, 4),
            "building": round(building, 4),
            "popular": round(popular, 4),
            "fresh": round(fresh, 4),
        }
        score = sum(w[k] * v for k, v in signals.items())
        # A personal signal of real weight names the reason (it tells the resident most);
        # otherwise the strongest of the community-wide ones does.
        parts = {k: w[k] * v for k, v in signals.items()}
        personal = [k for k in ("topic", "coread", "building") if parts[k] >= EXPLAIN_MIN]
        if personal:
            top = max(personal, key=parts.get)
        else:  # "hot" when among the most read lately, else it is here for being new
            top = "popular" if popular >= 0.6 else "fresh"
        if top == "topic" and topics:
            t = max(topics, key=lambda x: tag_w[x])
            src = tag_src[t][1] if t in tag_src else ""
            reason = f"因为你读过《{titles.get(src, src)}》" if src else "最新发布"
        elif top == "coread" and co_src:
            reason = f"因为你读过《{titles.get(co_src, co_src)}》，读过它的邻居也在看"
        elif top == "building":
            reason = f"{b}号楼的通知" if addressed else f"{b}号楼的邻居都在看"
        elif top == "popular":
            reason = "社区热门"
        else:
            reason = "最新发布"
        read = it.id in profile.reads
        if read:
            reason = "你已读过"
        out.append(Ranked(it, round(score, 4), reason, signals, read, it.must_read))

    # unread before read, then by score; must-reads not yet acknowledged take the top slots
    out.sort(key=lambda r: (r.read, -r.score, r.item.id))
    pinned = [r for r in out if r.must_read and r.item.id not in profile.acks]
    pinned.sort(key=lambda r: r.item.published, reverse=True)
    pinned = pinned[:must_read_slots]
    pinned = [
        Ranked(r.item, r.score, "必读：请阅读并确认知晓", r.signals, r.read, True) for r in pinned
    ]
    pinned_ids = {r.item.id for r in pinned}
    rest = [r for r in out if r.item.id not in pinned_ids]
    return (pinned + rest)[:limit]


def popularity(
    items: Sequence[Item], co: CoReads, read: set[str], limit: int, *, recent: bool = False
) -> list[Item]:
    """The baseline: most readers (overall or recently) first, skipping what was read."""
    pop = co.recent if recent else co.readers
    cand = [it for it in items if it.id not in read]
    cand.sort(key=lambda it: (-pop.get(it.id, 0), it.id))
    return cand[:limit]
