"""Reading-feed quality: hit-rate@5 of the box's recommender vs a popularity baseline.

A synthetic but realistic reading log (fixed seed): a community of residents in buildings,
each with a few favourite topics; items published over 60 days with one to three topic tags,
some addressed to one building, some must-read notices; residents read mostly within their
topics, prefer fresh items, follow what their building reads, and sometimes read the popular
item of the week. The last two reads of each resident are held out; at the moment of each
held-out read both rankers see only the log before it and rank the items published by then
that the resident has not read (the baseline: most readers overall, and most readers in
the last 7 days). A hit is the held-out item in the top 5 (must-read slots off,
so the two rankers are compared on the same candidates).

    .venv/bin/python bench/recommend.py [--residents 600] [--items 240] [--seed 7]

The last line is a JSON object with both figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.portal.recommend import CoReads, Item, Profile, popularity, rank

TOPICS = [
    "policy", "health", "elderly", "children", "culture", "sport", "safety", "volunteer",
    "finance", "environment", "law", "jobs", "housing", "traffic", "food", "technology",
]  # fmt: skip
T0 = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 60


def synth(n_res: int, n_items: int, n_buildings: int, seed: int):
    """(items, residents' buildings, reads [(time, resident, item, dwell_s)])."""
    rnd = random.Random(seed)
    items: list[Item] = []
    audience: dict[str, str | None] = {}
    for i in range(n_items):
        tags = rnd.sample(TOPICS, rnd.choice((1, 2, 2, 3)))
        b = str(rnd.randrange(1, n_buildings + 1)) if rnd.random() < 0.15 else None
        if b:
            tags.append(f"building:{b}")
        published = T0 + timedelta(hours=rnd.uniform(0, DAYS * 24))
        it = Item(f"c{i:04d}", f"文章{i}", tuple(tags), published, rnd.random() < 0.05)
        items.append(it)
        audience[it.id] = b
    items.sort(key=lambda it: it.published)
    quality = {it.id: rnd.lognormvariate(0, 0.8) for it in items}  # some items are just better
    residents = []
    for r in range(n_res):
        b = str(rnd.randrange(1, n_buildings + 1))
        favs = rnd.sample(TOPICS, rnd.choice((2, 3, 3, 4)))
        activity = rnd.lognormvariate(0, 0.7)
        residents.append((f"r{r:04d}", b, favs, activity))
    # building taste: each building leans to a topic (a lively dance team, many elderly...)
    lean = {str(b): rnd.choice(TOPICS) for b in range(1, n_buildings + 1)}
    reads = []
    for rid, b, favs, activity in residents:
        n = max(3, int(rnd.gauss(14, 6) * activity))
        read: set[str] = set()
        for _ in range(n):
            t = T0 + timedelta(hours=rnd.uniform(48, DAYS * 24))
            cand = [
                it for it in items
                if it.published <= t and it.id not in read and audience[it.id] in (None, b)
            ]  # fmt: skip
            if not cand:
                continue
            weights = []
            for it in cand:
                topics = [x for x in it.tags if not x.startswith("building:")]
                w = 0.15 + 2.0 * sum(x in favs for x in topics) + 0.6 * (lean[b] in topics)
                w *= quality[it.id]
                age_d = (t - it.published).total_seconds() / 86400
                w *= 0.5 ** (age_d / 5)  # news fades
                w *= 3.0 if audience[it.id] == b else 1.0
                w *= 2.0 if it.must_read else 1.0
                weights.append(w)
            it = rnd.choices(cand, weights)[0]
            read.add(it.id)
            dwell = rnd.expovariate(1 / (60 if set(it.tags) & set(favs) else 20))
            reads.append((t, rid, it.id, dwell))
    reads.sort()
    return items, {rid: b for rid, b, _, _ in residents}, reads


def evaluate(items, buildings, reads, holdout: int = 2, k: int = 5, weights=None) -> dict:
    by_res = defaultdict(list)
    for row in reads:
        by_res[row[1]].append(row)
    tests = []
    for rows in by_res.values():
        if len(rows) >= holdout + 3:
            tests.extend(rows[-holdout:])
    tests.sort()
    hits = {"personal": 0, "popularity": 0, "popularity_7d": 0}
    n = 0
    # Rebuild the co-read model once per simulated day, as the box does periodically.
    model_day, co = None, None
    t_rank = 0.0
    for t, rid, target, _ in tests:
        day = t.date()
        if day != model_day:
            co = CoReads(((r, c, buildings[r], tt) for (tt, r, c, _) in reads if tt < t), now=t)
            model_day = day
        hist = [row for row in by_res[rid] if row[0] < t]
        profile = Profile(building=buildings[rid], reads={c: d for (_, _, c, d) in hist})
        b = buildings[rid]
        cand = [
            it for it in items
            if it.published <= t and not any(
                x.startswith("building:") and x != f"building:{b}" for x in it.tags
            )
        ]  # fmt: skip
        read = set(profile.reads)
        t1 = time.perf_counter()
        ranked = rank(cand, profile, co, t, must_read_slots=0, limit=len(cand), weights=weights)
        t_rank += time.perf_counter() - t1
        top = [r.item.id for r in ranked if not r.read][:k]
        base = [it.id for it in popularity(cand, co, read, k)]
        hits["personal"] += target in top
        hits["popularity"] += target in base
        trend = [it.id for it in popularity(cand, co, read, k, recent=True)]
        hits["popularity_7d"] += target in trend
        n += 1
    return {
        "held_out_reads": n,
        "hit_rate_at_5": round(hits["personal"] / n, 4),
        "popularity_hit_rate_at_5": round(hits["popularity"] / n, 4),
        "popularity_7d_hit_rate_at_5": round(hits["popularity_7d"] / n, 4),
        "rank_ms_per_feed": round(1000 * t_rank / max(n, 1), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--residents", type=int, default=600)
    ap.add_argument("--items", type=int, default=240)
    ap.add_argument("--buildings", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    t0 = time.perf_counter()
    items, buildings, reads = synth(a.residents, a.items, a.buildings, a.seed)
    print(
        f"synthetic log: {len(reads)} reads by {a.residents} residents of {len(items)} items",
        file=sys.stderr,
    )
    out = evaluate(items, buildings, reads)
    out.update(
        residents=a.residents,
        items=len(items),
        reads=len(reads),
        seed=a.seed,
        lift_vs_best_baseline=round(
            out["hit_rate_at_5"]
            / max(out["popularity_hit_rate_at_5"], out["popularity_7d_hit_rate_at_5"], 1e-9),
            2,
        ),
        seconds=round(time.perf_counter() - t0, 1),
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
