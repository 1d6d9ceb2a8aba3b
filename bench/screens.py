"""Screen resolver benchmark: a 48-hour plan per screen (what each player page receives) for a
busy community, against the naive baseline of asking "what plays now" every 10 s over the same
48 hours. Prints JSON on its last line."""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as tod
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.core.standard import ContentItem, Playlist, PlaylistEntry, ScheduleEntry
from edge.screens.resolver import Catalog, ScreenRef, plan, source_at


def catalog(entries: int, seed: int = 1) -> Catalog:
    rnd = random.Random(seed)
    items = {
        f"c{i}": ContentItem(id=f"c{i}", kind="html", title="通知", duration_s=10)
        for i in range(200)
    }
    pls = {
        f"p{i}": Playlist(
            id=f"p{i}",
            name="p",
            items=[PlaylistEntry(content_id=f"c{rnd.randrange(200)}") for _ in range(8)],
        )
        for i in range(30)
    }
    sched = [
        ScheduleEntry(
            id=f"s{i}",
            playlist_id=f"p{rnd.randrange(30)}",
            tags=[rnd.choice(["east", "west", "north"])],
            priority=rnd.randint(0, 5),
            weekdays=sorted(rnd.sample(range(1, 8), rnd.randint(1, 7))),
            start=tod(rnd.randrange(24), rnd.choice([0, 30])),
            end=tod(rnd.randrange(24), rnd.choice([0, 30])),
        )
        for i in range(entries)
    ]
    return Catalog(ZoneInfo("Asia/Shanghai"), items, pls, sched)


def main() -> None:
    screens = [ScreenRef(f"scr-{i}", (["east", "west", "north"][i % 3],)) for i in range(20)]
    t0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
    out = {}
    for n in (10, 100):
        cat = catalog(n)
        start = time.perf_counter()
        segs = sum(len(plan(cat, s, t0, t0 + timedelta(hours=48))) for s in screens)
        plan_s = time.perf_counter() - start
        start = time.perf_counter()
        for s in screens[:2]:  # the baseline is slow: 2 screens, scaled to 20
            t = t0
            while t < t0 + timedelta(hours=48):
                source_at(cat, s, t)
                t += timedelta(seconds=10)
        naive_s = (time.perf_counter() - start) * len(screens) / 2
        out[f"entries_{n}"] = {
            "plan_48h_per_screen_ms": round(plan_s * 1000 / len(screens), 2),
            "segments_per_screen": round(segs / len(screens), 1),
            "baseline_poll_10s_48h_per_screen_ms": round(naive_s * 1000 / len(screens), 1),
            "speedup": round(naive_s / plan_s, 1),
        }
        print(f"{n} entries: {out[f'entries_{n}']}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
