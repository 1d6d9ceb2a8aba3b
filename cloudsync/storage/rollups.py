"""Statistics from the roll-ups (PostgreSQL, migrations 0008-0010): whole days from the daily
tables, the whole hours of a window's partial end days from the hourly ones, the minutes at
its ends from the records themselves; whole 10-day blocks (``ts[:9]``, migration 0010) from the
ten-day tables. Per-community figures read whole months from the monthly totals, whole 10-day
blocks, days, 10-hour blocks (``ts[:12]``) and hours from their per-community rows (0010), so a
window reads a few rows per community instead of one per day. :func:`split_levels` cuts a
window into those pieces.

A roll-up row holds, per district (the first two levels of the box's area path), day
(``substr(ts, 1, 10)``) and group (decision and method, content item), the count and sums of
one kind's records; plays and reading also per box area (community) and day without the group
(``leaf``). A district reads its own rows, a city or the whole network sums its districts';
a street or a community reads its few boxes' records; "per community" reads the leaf rows
inside the scope. SQLite (the small install) keeps aggregating the records themselves.

Open critical alerts are counted per box and month of the alert's ts (``alert_counts``,
migration 0010), in the transaction that stores the alert, changes its acknowledgement state
or drops its month: the console overview sums those rows instead of reading every critical
alert ever stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

DISTRICT = 2  # depth of a district's path: /city/district/ (the roll-ups' areas)


@dataclass(frozen=True)
class Rollup:
    table: str
    kind: str
    cls: str  # its records' class (cloudsync/retention.py CLASSES): the partitions to count
    dims: tuple[str, ...]  # payload fields kept as text columns of the same name
    sums: tuple[tuple[str, str, str], ...]  # (column, payload field, "int" | "float")
    per_community: bool  # also totals per box area and day, without the dims (leaf rows)
    # its time column: "month" (ts[:7]), "tenday" (ts[:9]), "day" (ts[:10]), "tenhour"
    # (ts[:12]), "hour" (ts[:13])
    period: str = "day"
    districts: bool = True  # rows per district (with the dims)

    @property
    def width(self) -> int:
        return WIDTHS[self.period]

    def hourly(self) -> Rollup:
        """The same sums per district and hour (migration 0009): the whole hours of a
        window's partial end days (no per-community rows)."""
        return replace(self, table=self.table.replace("_daily", "_hourly"),
                       per_community=False, period="hour")  # fmt: skip

    def monthly(self) -> Rollup:
        """The per-community totals per month (migration 0009): the whole months of a
        per-community figure (the console's content statistics, portal reading by
        community), which read one row per community and day before; since migration 0012
        also per district and content item (as the days and 10-day blocks): a year's figures
        by content item read 12 months per district and item instead of 36 blocks."""
        return replace(self, table=self.table.replace("_daily", "_monthly"), period="month")

    def tenday(self) -> Rollup:
        """The same sums per 10-day block (``ts[:9]``: days 01-09, 10-19, 20-29, 30-31),
        per district with the dims and per community (migration 0010): a 30-day window reads
        ~2 blocks and the days at its ends instead of 30 days."""
        return replace(self, table=self.table.replace("_daily", "_tenday"), period="tenday")

    def tenhour(self) -> Rollup:
        """Per-community totals per 10-hour block (``ts[:12]``: hours 00-09, 10-19, 20-23;
        migration 0010): a window's partial end days per community."""
        return replace(self, table=self.table.replace("_daily", "_tenhour"),
                       period="tenhour", districts=False)  # fmt: skip

    def yearly(self) -> Rollup:
        """Per-community totals per year (``ts[:4]``, migration 0013): a year-long window
        reads per community the year it ends in and the months before, not 12 months. No
        district rows by content item: those would cost the upload trigger as much as the
        months' (~10 % of ingest, bench/stats100m.py) for ~20 ms of the network's year. A
        year spans month partitions: retention subtracts a dropped month's sums
        (:func:`forget_month`) instead of deleting the year's rows."""
        return replace(self, table=self.table.replace("_daily", "_yearly"), period="year",
                       districts=False)  # fmt: skip

    def leaf_hourly(self) -> Rollup:
        """Per-community totals per hour (migration 0010): the hours at a window's ends that
        no 10-hour block covers; the records then only for the minutes."""
        return replace(self, table=self.table.replace("_daily", "_leaf_hourly"),
                       period="hour", districts=False)  # fmt: skip


WIDTHS = {"year": 4, "month": 7, "tenday": 9, "day": 10, "tenhour": 12, "hour": 13}


ROLLUPS: dict[str, Rollup] = {
    r.kind: r
    for r in (
        Rollup("access_daily", "access_event", "access", ("decision", "method"), (), False),
        Rollup("play_daily", "play_record", "play", ("content_id",),
               (("ms", "duration_ms", "int"),), True),
        Rollup("reading_daily", "reading_stats", "telemetry", ("content_id",),
               (("reads", "reads", "int"), ("new_readers", "new_readers", "int"),
                ("acks", "acks", "int"), ("dwell_s", "dwell_s", "float")), True),
    )
}  # fmt: skip
HOURLY: dict[str, Rollup] = {k: r.hourly() for k, r in ROLLUPS.items()}
MONTHLY: dict[str, Rollup] = {k: r.monthly() for k, r in ROLLUPS.items() if r.per_community}
# Migration 0010: 10-day blocks (districts and communities), and per community 10-hour blocks
# and hours; for the kinds with per-community figures (plays, reading). Door decisions have
# no per-community figure and their district windows are already fast (docs/deploy.md).
TENDAY: dict[str, Rollup] = {k: r.tenday() for k, r in ROLLUPS.items() if r.per_community}
TENHOUR: dict[str, Rollup] = {k: r.tenhour() for k, r in ROLLUPS.items() if r.per_community}
LEAF_HOURLY: dict[str, Rollup] = {
    k: r.leaf_hourly() for k, r in ROLLUPS.items() if r.per_community
}
# Migration 0013: per-community years, for the kinds with per-community months.
YEARLY: dict[str, Rollup] = {k: r.yearly() for k, r in ROLLUPS.items() if r.per_community}
YEARLY_TABLES = {r.table for r in YEARLY.values()}


def levels(spec: Rollup, by_community: bool, years: bool = True) -> dict[int, Rollup]:
    """The tables a window of ``spec``'s kind reads, by the ts prefix length of their period,
    coarsest first: per community (leaf rows) or per district. ``years`` False: without
    0013's years (a database before 0013; bench/stats100m.py times them side by side)."""
    k = spec.kind
    if by_community:
        out = {7: MONTHLY[k], 9: TENDAY[k], 10: spec, 12: TENHOUR[k], 13: LEAF_HOURLY[k]}
    elif k in TENDAY:
        out = {7: MONTHLY[k], 9: TENDAY[k], 10: spec, 13: HOURLY[k]}
    else:
        out = {10: spec, 13: HOURLY[k]}
    if years and by_community and k in YEARLY:
        out = {4: YEARLY[k], **out}
    return out


# Run before a roll-up query, in its transaction (one statement for both settings).
# A custom plan for every call: the statement text repeats with other bounds, and after five
# calls PostgreSQL switched to a generic plan that could not estimate a city's areas from the
# path range and probed 5,000 boxes' records in a nested loop (30 ms -> 600-850 ms for a
# city's 30-day plays, bench/stats100m.py). No JIT: the roll-up tables' row estimates (a
# city's hours: 45,000 estimated, 7,000 read) put a 100-200 ms query over jit_above_cost, and
# compiling it took ~60 ms of it.
# No parallel workers either: these read at most ~100,000 pre-summed rows, and on a busy box
# starting two workers cost more than they saved (the network's plays "the month before":
# 70 ms waiting in Gather of a 200 ms plan, 87 ms without, bench/stats100m.py at 3 M rows).
ROLLUP_SETTINGS = (
    "SELECT set_config('jit', 'off', true),"
    " set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('max_parallel_workers_per_gather', '0', true)"
)


SOURCES = {w: p for p, w in WIDTHS.items()}  # roll-up periods by their ts prefix's length


def _ceil(ts: str, width: int) -> str | None:
    """The first period of ``width`` (4 year, 7 month, 9 ten days, 10 day, 12 ten hours, 13
    hour) after the one ``ts`` lies in ("2026-10-31T09:17", 7 -> "2026-11"; 9 -> "2026-11-0"; 12 ->
    "2026-10-31T1"); None when ts does not start with one. Any later period keeps the pieces
    exact; the next one keeps them few."""
    if width in (9, 12):  # a block: the digit after a month ("2026-10-") or a day ("...T")
        head, digit = ts[: width - 1], ts[width - 1 : width]
        last, sep, parent = ("3", "-", 7) if width == 9 else ("2", "T", 10)
        try:
            datetime.strptime(head[:-1], "%Y-%m" if width == 9 else "%Y-%m-%d")
        except ValueError:
            return None
        if head[-1] != sep or not "0" <= digit <= last:
            return None
        if digit < last:
            return head + chr(ord(digit) + 1)
        return f"{_ceil(head, parent)}{sep}0"
    fmt = {4: "%Y", 7: "%Y-%m", 10: "%Y-%m-%d", 13: "%Y-%m-%dT%H"}[width]
    try:
        start = datetime.strptime(ts[:width], fmt)
    except ValueError:
        return None
    if width == 4:
        return f"{start.year + 1:04d}" if start.year < 9999 else None
    if width == 7:
        return f"{start.year + start.month // 12:04d}-{start.month % 12 + 1:02d}"
    step = timedelta(days=1) if width == 10 else timedelta(hours=1)
    return (start + step).strftime(fmt)


def split_levels(since: str, until: str, widths: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """A [since, until) window of ts text ('' open) as (source, lo, hi) pieces that together
    hold exactly its records, coarsest first where whole periods fit: "month" / "day" /
    "hour" pieces from the roll-ups of that period (``widths``: the ts prefix lengths used,
    coarsest first), "raw" pieces from the records. Exact for any ts text, dates or not: a
    bound of at most w characters compares with ts[:w] as it does with ts (byte order), and
    every bound of a w-piece has at most w characters."""
    if not widths:
        return [("raw", since, until)]
    w, finer = widths[0], widths[1:]
    lo = since if len(since) <= w else _ceil(since, w)
    hi = until if len(until) <= w else until[:w]
    if lo is None or (lo and hi and lo >= hi):
        return split_levels(since, until, finer)
    out = split_levels(since, lo, finer) if lo != since else []
    out.append((SOURCES[w], lo, hi))
    return out + (split_levels(hi, until, finer) if hi != until else [])


def _periods(source: str, lo: str, hi: str) -> int:
    """How many periods of ``source`` a piece [lo, hi) spans (what reading it costs per
    area); a raw piece (minutes) counts as one; an open bound as many."""
    if source == "raw":
        return 1
    if not lo or not hi:
        return 1000
    n, at, width = 0, lo, WIDTHS[source]
    if len(at) < width:  # a coarser bound ("2026" for months): from the first period in it
        first = _first(at, width)
        if first is None:
            return 1
        at = first
    while at < hi and n < 1000:
        nxt = _ceil(at, width)
        if nxt is None:  # a gap that only odd stamps fall in ("2026-11" .. "2026-11-0")
            return n + 1
        at, n = nxt, n + 1
    return n


def _first(at: str, width: int) -> str | None:
    """The first period of ``width`` starting with the coarser period ``at`` ("2026", 7 ->
    "2026-01"; "2026-11-1", 10 -> "2026-11-10"); None when ``at`` is no period start."""
    pad = "0000-01-01T00"[len(at) : width]
    if len(at) == 9 and width >= 10 and at[-1] != "0":
        pad = "0" + pad[1:]  # the blocks 1-3 start at day 10, 20, 30
    out = at + pad
    return out if _ceil(out, width) is not None else None


def split_signed(
    since: str, until: str, widths: tuple[int, ...]
) -> list[tuple[str, str, str, int]]:
    """:func:`split_levels` with subtraction: (source, lo, hi, sign) pieces whose signed sums
    hold exactly the window's records. Where a window starts (ends) inside a period, the
    whole period minus its part before the window (after it) is read instead of the part
    inside when that spans fewer periods: a window from the 2nd 12:40 reads the month minus
    the 1st and the 2nd's first hours, not days 3-9 and three 10-day blocks. For sums only
    (a count or sum taken out where the records have none gives 0 where the records give
    NULL): the per-community figures, whose readers take NULL as 0."""
    if not widths:
        return [("raw", since, until, 1)]
    w, finer = widths[0], widths[1:]
    lo = since if len(since) <= w else _ceil(since, w)
    hi = until if len(until) <= w else until[:w]
    if lo is None or (lo and hi and lo >= hi):
        return split_signed(since, until, finer)
    src = SOURCES[w]

    def cost(pieces: list[tuple[str, str, str, int]]) -> int:
        return sum(_periods(x, a, b) for x, a, b, _ in pieces)

    def minus(pieces: list[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
        return [(x, a, b, -sg) for x, a, b, sg in pieces]

    out = split_signed(since, lo, finer) if lo != since else []
    start = lo
    if out and len(since) > w:  # the whole period since lies in, minus its part before
        alt = minus(split_signed(since[:w], since, finer))
        if cost(alt) + 1 < cost(out):
            out, start = alt, since[:w]
    end, tail = hi, split_signed(hi, until, finer) if hi != until else []
    up = _ceil(until, w) if tail and len(until) > w else None
    if up is not None:  # the whole period until lies in, minus its part after
        alt = minus(split_signed(until, up, finer))
        if cost(alt) + 1 < cost(tail):
            end, tail = up, alt
    return [*out, (src, start, end, 1), *tail]


# Per-community sub-day rows (10-hour blocks and hours): most of the roll-ups' disk (~3.2 of
# 5.4 GB at 10 M records, docs/deploy.md), kept only for recent days (retention, see
# cloudsync/retention.py ``CommunityHours``); older hours are read from the records.
COMMUNITY_HOURS: list[Rollup] = [*TENHOUR.values(), *LEAF_HOURLY.values()]
SUBDAY = ("tenhour", "hour")


def hours_kept(
    since: str, until: str, widths: tuple[int, ...], read_from: str
) -> list[tuple[str, str, str, int]]:
    """:func:`split_signed` when the per-community hours before ``read_from`` (the first day
    retention kept them for; "" all kept) are gone: a window that ends by then is split
    without the 10-hour and hour levels (its partial end days from the records); one that
    reaches across it reads each 10-hour or hour piece starting before it from the records,
    neighbouring record pieces of one sign joined. Exact: a piece covers the same ts range
    either way, and a sub-day piece lies within one day (it starts before ``read_from``
    only if its whole day does), so none reads rows retention has deleted."""
    if read_from and until and until <= read_from:
        return split_signed(since, until, tuple(w for w in widths if w <= 10))
    out: list[tuple[str, str, str, int]] = []
    for src, lo, hi, sign in split_signed(since, until, widths):
        if src in SUBDAY and read_from and lo < read_from:
            src = "raw"
        last = out[-1] if out else None
        if src == "raw" and last and last[0] == "raw" and last[3] == sign and last[2] == lo:
            out[-1] = ("raw", last[1], hi, sign)
        else:
            out.append((src, lo, hi, sign))
    return out


def split_hours(since: str, until: str) -> list[tuple[str, str, str]]:
    """Pieces for the district figures: whole days, whole hours of the end days, minutes."""
    return split_levels(since, until, (10, 13))


def split_months(since: str, until: str) -> list[tuple[str, str, str]]:
    """Pieces for the per-community figures (no hourly rows per community): whole months
    from the monthly totals, whole days, the partial end days from the records."""
    return split_levels(since, until, (7, 10))


def scope_depth(scope: str) -> int:
    """'/' -> 0, '/city/' -> 1, '/city/district/' -> 2 ..."""
    return scope.count("/") - 1


def path_range(scope: str) -> tuple[str, str]:
    """[lo, hi) holding exactly the paths inside ``scope`` (paths end in '/', and '0' is the
    next byte after '/')."""
    return scope, scope[:-1] + "0"


@dataclass
class Sql:
    args: list[Any]

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"


def by_boxes(scope: str, by_community: bool) -> bool:
    """Whether :func:`totals_sql` reads the scope's records by box (a street or community:
    a few boxes, found through the primary key) and wants their ids."""
    return not by_community and scope_depth(scope) > DISTRICT


def totals_sql(
    spec: Rollup,
    scope: str,
    since: str,
    until: str,
    by_community: bool,
    args: list[Any],
    grouped: bool = True,
    boxes: list[str] | None = None,
    hours_from: str = "",
    areas_in: str = "",
    years: bool = True,
) -> str:
    """SQL of rows (area, <dims>, n, <sums>) for the kind's records in scope and window:
    area is the community's path when ``by_community``, else NULL; one row per area and
    group (``grouped``: by the dims too, else the dims are left out). ``boxes``: the scope's
    box ids when :func:`by_boxes`. ``hours_from``: the first day whose per-community hours
    retention kept (:func:`hours_kept`); ``areas_in``: per community, only the areas this
    subquery lists (SQL text) from the yearly and monthly rows (the other pieces still sum
    every community: correct for those listed); ``years`` False: without 0013's years (a
    database before it, benches)."""
    q = Sql(args)
    depth = scope_depth(scope)
    tables: dict[int, Rollup] = {}
    signed: list[tuple[str, str, str, int]]
    if by_boxes(scope, by_community) or (by_community and grouped and spec.dims):
        # A street or community: its boxes' records. Per community *and* group (the portal's
        # content x community table): the records too, the roll-ups do not keep that.
        signed = [("raw", since, until, 1)]
    else:
        tables = levels(spec, by_community, years)
        if by_community:  # sums whose readers take NULL as 0: subtraction allowed
            signed = hours_kept(since, until, tuple(tables), hours_from)
        else:
            signed = [(*p, 1) for p in split_levels(since, until, tuple(tables))]
    dims_kept = spec.dims if grouped else ()
    sums = [c for c, _, _ in spec.sums]
    parts = []
    for source, lo, hi, sign in signed:
        if source == "raw":
            continue
        table = tables[WIDTHS[source]]
        conds = ["r.leaf" if by_community else "NOT r.leaf"]
        if depth == DISTRICT and not by_community:
            conds.append(f"r.area = {q.arg(scope)}")
        elif depth:
            a_lo, a_hi = path_range(scope)
            conds.append(f"r.area >= {q.arg(a_lo)} AND r.area < {q.arg(a_hi)}")
        if lo:
            conds.append(f"r.{table.period} >= {q.arg(lo)}")
        if hi:
            conds.append(f"r.{table.period} < {q.arg(hi)}")
        if areas_in and by_community and table.period in ("year", "month"):
            # Only on the months (a year's bulk): on the smaller pieces PostgreSQL, taking the
            # list for ~20 rows, rescanned it per row in a semi join (29 days: 68 -> 190 ms).
            conds.append(f"r.area IN ({areas_in})")
        area = "r.area" if by_community else 'NULL::text COLLATE "C"'
        neg = "" if sign > 0 else "-"
        cols = ", ".join([f"r.{d}" for d in dims_kept] + [f"{neg}r.n AS n"]
                         + [f"{neg}r.{c} AS {c}" for c in sums])  # fmt: skip
        where = " AND ".join(conds)
        parts.append(f"SELECT {area} AS area, {cols} FROM {table.table} r WHERE {where}")
    for _, lo, hi, sign in [p for p in signed if p[0] == "raw"]:
        conds = [f"r.kind = '{spec.kind}'"]
        if lo:
            conds.append(f"r.ts >= {q.arg(lo)}")
        if hi:
            conds.append(f"r.ts < {q.arg(hi)}")
        join = ""
        if by_community or (scope != "/" and boxes is None):
            join = " JOIN boxes b ON b.id = r.box_id JOIN areas a ON a.id = b.community_id"
        if boxes is not None:
            conds.append(f"r.box_id = ANY({q.arg(boxes)}::text[])")
        elif scope != "/":
            # A path range, not a prefix test: PostgreSQL estimates a city's 5,000 areas from
            # the range (from a substr() it guessed 50 and probed each box's records in a
            # nested loop: 0.3 s for a city's last minutes of plays, bench/stats100m.py).
            a_lo, a_hi = (q.arg(p) for p in path_range(scope))
            conds.append(f'a.path COLLATE "C" >= {a_lo} AND a.path COLLATE "C" < {a_hi}')
        area = 'a.path COLLATE "C"' if by_community else 'NULL::text COLLATE "C"'
        cast = {"int": "qilu_int", "float": "qilu_float"}
        cols = ", ".join(
            [f"(r.payload ->> '{d}') AS {d}" for d in dims_kept]
            + [f"{sign}::bigint AS n"]
            + [f"{'-' if sign < 0 else ''}{cast[t]}(r.payload ->> '{f}') AS {c}"
               for c, f, t in spec.sums]
        )
        where = " AND ".join(conds)
        parts.append(f"SELECT {area} AS area, {cols} FROM records r{join} WHERE {where}")
    # Whole-number sums as bigint: a numeric (what sum(bigint) gives) reaches Python as a
    # Decimal, and decoding 10,000 communities' took longer than the query.
    outer = ", ".join(["sum(u.n)::bigint AS n"] + [
        f"sum(u.{c})" + ("::bigint" if t == "int" else "") + f" AS {c}"
        for c, _, t in spec.sums
    ])  # fmt: skip
    keys = ", ".join(["u.area"] + [f"u.{d}" for d in dims_kept])
    return (
        f"SELECT {keys}, {outer}"
        f" FROM ({' UNION ALL '.join(parts)}) u GROUP BY {keys} HAVING sum(u.n) > 0"
    )


# --- keeping them: the migration's backfill, retention -----------------------------------------


def added_on_conflict(sums: list[str]) -> str:
    """ON CONFLICT's SET adding a row's count and sums to the stored ones (a stored NULL sum:
    nothing known yet, so it takes the new one)."""
    return ", ".join(
        ["n = w.n + excluded.n"]
        + [f"{c} = CASE WHEN w.{c} IS NULL THEN excluded.{c}"
           f" ELSE w.{c} + coalesce(excluded.{c}, 0) END" for c in sums]
    )  # fmt: skip


def recount_sql(
    specs: Rollup | list[Rollup],
    source: str,
    where: str = "",
    sign: str = "+",
    upsert: bool = True,
) -> str:
    """Add (sign '+') or take away ('-') the sums of ``source``'s records of the kind (a
    partition, or records matching ``where``) to/from the roll-ups ``specs`` (one kind's:
    daily and/or hourly): the statement the trigger of migration 0009 runs on an upload's rows
    (``source`` "added"). Summed per box, period and group first (the finest period asked for:
    one pass over the records for both tables), then per district (and per box area, without
    the group, when ``per_community``). Rows go in key order: two uploads lock shared rows in
    one order."""
    specs = [specs] if isinstance(specs, Rollup) else specs
    spec = specs[0]
    finest = max(specs, key=lambda s: s.width)
    width, period = finest.width, finest.period
    sums = [c for c, _, _ in spec.sums]
    cast = {"int": "qilu_int", "float": "qilu_float"}
    sign = "" if sign == "+" else sign
    inner = ", ".join(
        [f"r.payload ->> '{d}' AS {d}" for d in spec.dims]
        + [f"{sign}count(*) AS n"]
        + [f"{sign}sum({cast[t]}(r.payload ->> '{f}')) AS {c}" for c, f, t in spec.sums]
    )
    by = ", ".join(str(i) for i in range(1, len(spec.dims) + 3))
    head = (
        f"WITH g AS (SELECT r.box_id, substr(r.ts, 1, {width}) AS {period}, {inner}"
        f" FROM {source} r WHERE r.kind = '{spec.kind}'{where} GROUP BY {by})"
    )
    stmts = []
    for t in specs:
        levels = ", ".join((["(qilu_district(a.path), false)"] if t.districts else [])
                           + (["(a.path, true)"] if t.per_community else []))  # fmt: skip
        dims = [f"CASE WHEN l.leaf THEN NULL ELSE g.{d} END" for d in t.dims]
        outer = ", ".join(dims + [f"sum(g.{c})" for c in ["n", *sums]])
        keys = ", ".join(str(i) for i in range(1, 4 + len(t.dims)))
        update = added_on_conflict(sums)
        at = f"g.{period}" if t.width == width else f"substr(g.{period}, 1, {t.width})"
        cols = ", ".join(["area", "leaf", t.period, *t.dims, "n", *sums])
        stmts.append(
            f"INSERT INTO {t.table} AS w ({cols})"
            f" SELECT l.area, l.leaf, {at}, {outer}"
            " FROM g JOIN boxes b ON b.id = g.box_id JOIN areas a ON a.id = b.community_id"
            f" CROSS JOIN LATERAL (VALUES {levels}) AS l(area, leaf)"
            f" GROUP BY {keys} ORDER BY {keys}"
            + (f" ON CONFLICT ON CONSTRAINT {t.table}_key DO UPDATE SET {update}" if upsert else "")
        )
    # All but the last as data-modifying CTEs of the one statement (each reads g).
    ctes = "".join(f", i{n} AS ({x})" for n, x in enumerate(stmts[:-1]))
    return f"{head}{ctes} {stmts[-1]}"


def trigger_sql() -> str:
    """The body of qilu_stats_rollup (migration 0013): each kind's hourly, daily and monthly
    sums (months per community since 0009, per district since 0012), 10-day blocks, per
    community 10-hour blocks and hours, years (0013); then the open critical alerts per box
    and month."""
    later = (MONTHLY, TENDAY, TENHOUR, LEAF_HOURLY, YEARLY)
    built = "; ".join(
        recount_sql([HOURLY[k], r, *(t[k] for t in later if k in t)], "added")
        for k, r in ROLLUPS.items()
    )
    return f"BEGIN {built}; {ALERTS.count_sql('added', upsert=True)}; RETURN NULL; END"


@dataclass(frozen=True)
class AlertCount:
    """Open critical alerts per box and month of the alert's ts (``alert_counts``, migration
    0010): an alert record of level critical whose acknowledgement is not closed. Stored
    alerts add to it in the upload's trigger; an acknowledgement moving into or out of
    "closed" moves it in its own statement (a row trigger on alert_acks); a month leaving the
    records removes its rows. Kept per month so the backfill and retention can recount or
    drop one partition's months, as the roll-ups do."""

    table: str = "alert_counts"
    period: str = "month"
    cls: str = "alert"

    def count_sql(self, source: str, where: str = "", sign: str = "+", upsert: bool = False) -> str:
        sign = "" if sign == "+" else sign
        return (
            f"INSERT INTO alert_counts AS w (box_id, month, n) SELECT r.box_id,"
            f" substr(r.ts, 1, 7), {sign}count(*) FROM {source} r LEFT JOIN alert_acks k"
            " ON k.box_id = r.box_id AND k.seq = r.seq WHERE r.kind = 'alert'"
            " AND r.payload ->> 'level' = 'critical' AND (k.state IS NULL OR k.state <> 'closed')"
            f"{where} GROUP BY 1, 2 ORDER BY 1, 2"
            + (" ON CONFLICT (box_id, month) DO UPDATE SET n = w.n + excluded.n" if upsert else "")
        )


ALERTS = AlertCount()


def of_class(cls: str, level: int = 10) -> list[Any]:
    """The class's roll-ups up to migration ``level``: daily (0008), hourly and monthly
    (0009), 10-day blocks, per-community 10-hour blocks and hours, open critical alerts
    (0010), years (13: not counted by a backfill of their own, see :func:`shift_years`)."""
    daily = [r for r in ROLLUPS.values() if r.cls == cls]
    out: list[Any] = list(daily)
    if level >= 9:
        out += [HOURLY[r.kind] for r in daily] + [MONTHLY[r.kind] for r in daily
                                                  if r.kind in MONTHLY]  # fmt: skip
    if level >= 10:
        out += [t[r.kind] for t in (TENDAY, TENHOUR, LEAF_HOURLY) for r in daily if r.kind in t]
        out += [ALERTS] if cls == ALERTS.cls else []
    if level >= 13:
        out += [YEARLY[r.kind] for r in daily if r.kind in YEARLY]
    return out


def added_by(cls: str, level: int) -> list[Any]:
    """The tables migration ``level`` (8, 9, 10) added for the class: its backfill's."""
    return of_class(cls, level)[len(of_class(cls, level - 1)) if level > 8 else 0 :]


async def forget_month(conn: Any, cls: str, lo: str, hi: str) -> None:
    """A month of the class leaves the records (retention detaches it): its days and hours
    leave the roll-ups (its open critical alerts the counts) in the same transaction, its
    months' sums are taken out of their years (0013). Exact: the month partition held every
    record whose ts lies in [lo, hi), and those are the roll-ups' periods in [lo, hi)."""
    inside = "month >= $1 AND month < $2"
    for kind in [r.kind for r in ROLLUPS.values() if r.cls == cls and r.kind in YEARLY]:
        await shift_years(conn, kind, inside, "-", lo, hi)
    for spec in of_class(cls):
        await conn.execute(
            f"DELETE FROM {spec.table} WHERE {spec.period} >= $1 AND {spec.period} < $2", lo, hi
        )


async def shift_years(conn: Any, kind: str, where: str, sign: str, *args: Any) -> None:
    """Add ('+') or take away ('-') the kind's per-community monthly rows ``where`` (SQL on
    ``month``) to / from their years (migration 0013), rows left at zero removed: a year spans month
    partitions, so retention and a backfill recounting a partition's months move its years
    by those months' sums (a year is the months whose text starts with it: exact for any
    ts text). Nothing on a database before 0013."""
    spec = YEARLY[kind]
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", spec.table):
        return
    sums = [c for c, _, _ in spec.sums]
    neg = "" if sign == "+" else "-"
    cols = ", ".join(["area", "leaf", "year", *spec.dims, "n", *sums])
    picked = ", ".join([f"{neg}sum(n)"] + [f"{neg}sum({c})" for c in sums])
    dims = ", ".join(spec.dims)
    keys = ", ".join(str(i) for i in range(1, 4 + len(spec.dims)))
    update = added_on_conflict(sums)
    await conn.execute(
        f"INSERT INTO {spec.table} AS w ({cols}) SELECT area, leaf, substr(month, 1, 4), {dims},"
        f" {picked} FROM {MONTHLY[kind].table} WHERE leaf AND ({where})"
        f" GROUP BY {keys} ORDER BY {keys}"
        f" ON CONFLICT ON CONSTRAINT {spec.table}_key DO UPDATE SET {update}",
        *args,
    )
    if sign != "+":
        await conn.execute(f"DELETE FROM {spec.table} WHERE n = 0")


async def forget_rows(conn: Any, cls: str, source: str, where: str, *args: Any) -> None:
    """Records about to be deleted (``source`` ``where``, in the caller's transaction) taken
    out of the roll-ups (their years too, 0013), rows left at zero removed."""
    for spec in of_class(cls, 13):
        if spec.table in YEARLY_TABLES and not await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", spec.table
        ):
            continue  # a database before 0013
        sql = (
            spec.count_sql(source, where, "-", upsert=True)
            if isinstance(spec, AlertCount)
            else recount_sql(spec, source, where, "-")
        )
        await conn.execute(sql, *args)
        await conn.execute(f"DELETE FROM {spec.table} WHERE n = 0")


BACKFILLS = {"rollup_backfill": 8, "backfill_0009": 9, "backfill_0010": 10}


async def backfill(
    conn: Any, say: Any = None, table: str = "rollup_backfill"
) -> list[dict[str, Any]]:
    """Count the rows stored before migration 0008 (daily roll-ups, ``table``
    rollup_backfill), 0009 (hourly roll-ups and the list classes' districts, backfill_0009)
    or 0010 (10-day blocks, per-community hours and 10-hour blocks, open critical alerts,
    backfill_0010), one partition per transaction. A partition counted into a roll-up is
    locked against inserts (SHARE) while its periods are recomputed, so uploads into it wait
    that long (measured in bench/stats100m.py) and all others go on (an alert partition also
    holds acknowledgements for its few ms); a list class's partition has its records'
    district filled in by an UPDATE, which holds no insert. Idempotent: a partition's periods
    are deleted and counted again from its rows; districts are filled where missing. A run
    stopped halfway resumes at the first partition not done."""
    level = BACKFILLS[table]
    done = []
    parts = await conn.fetch(
        "SELECT f.part, p.relname AS parent, pg_get_expr(c.relpartbound, c.oid) AS bound"
        f" FROM {table} f JOIN pg_class c ON c.relname = f.part"
        " JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE f.done_at IS NULL ORDER BY f.part"
    )
    for row in parts:
        cls = row["parent"].removeprefix("records_")
        specs = added_by(cls, level)
        t0 = time.monotonic()
        async with conn.transaction():
            if not specs and level == 9:  # a list class (migration 0009): its district
                await conn.execute(
                    f"UPDATE {row['part']} r SET district = qilu_district(a.path) FROM boxes b"
                    " JOIN areas a ON a.id = b.community_id"
                    " WHERE b.id = r.box_id AND r.district IS NULL"
                )
            elif specs:
                await _recount(conn, row, specs)
            n = await conn.fetchval(  # the planner's estimate: a count would read it again
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE relname = $1",
                row["part"],
            )
            took = time.monotonic() - t0
            await conn.execute(
                f"UPDATE {table} SET done_at = now()::text, rows = $2, seconds = $3"
                " WHERE part = $1",
                row["part"],
                n,
                took,
            )
        done.append({"part": row["part"], "rows": n, "seconds": round(took, 2)})
        if say:
            say(f"{table}: {row['part']} ({n:,} rows, {took:.1f} s)")
    if done:  # planner statistics for the tables just filled
        tables = sorted({t.table for c in ("access", "play", "telemetry", "alert")
                         for t in added_by(c, level)})  # fmt: skip
        await conn.execute("ANALYZE " + ", ".join(tables))
    return done


async def _recount(conn: Any, row: Any, specs: list[Any]) -> None:
    """A partition's periods of ``specs`` deleted and counted again from its rows."""
    await conn.execute(f"LOCK TABLE {row['part']} IN SHARE MODE")
    if any(isinstance(s, AlertCount) for s in specs):
        # An acknowledgement changed while its month is recounted would be counted by both.
        await conn.execute("LOCK TABLE alert_acks IN SHARE MODE")
    if "DEFAULT" in row["bound"]:
        # Its days are those no month of the class covers.
        months = await conn.fetch(
            "SELECT pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
            row["parent"],
        )
        ranges = [_bounds(m["bound"]) for m in months]

        def where(col: str) -> str:
            inside = " OR ".join(
                f"({col} >= '{lo}' AND {col} < '{hi}')" for lo, hi in ranges if lo is not None
            )
            return f"NOT ({inside})" if inside else "true"
    else:
        lo, hi = _bounds(row["bound"])

        def where(col: str) -> str:  # partition bounds: month texts from pg_get_expr
            return f"{col} >= '{lo}' AND {col} < '{hi}'"

    # The months recounted move their years (0013) by what they held, and by what they hold.
    kinds = [s.kind for s in specs if isinstance(s, Rollup) and s.period == "month"]
    for kind in kinds:
        await shift_years(conn, kind, where("month"), "-")
    for spec in specs:
        await conn.execute(f"DELETE FROM {spec.table} WHERE {where(spec.period)}")
    # Plain inserts: the partition's periods were just emptied, and no upload can add to
    # them while it is locked (other partitions hold other periods). A kind's roll-ups in one
    # statement: one pass over the partition however many tables (the lock lasts that long).
    rollups = [s for s in specs if isinstance(s, Rollup)]
    for kind in dict.fromkeys(s.kind for s in rollups):
        await conn.execute(recount_sql([s for s in rollups if s.kind == kind], row["part"],
                                       upsert=False))  # fmt: skip
    for spec in specs:
        if not isinstance(spec, Rollup):
            await conn.execute(spec.count_sql(row["part"]))
    for kind in kinds:
        await shift_years(conn, kind, where("month"), "+")


def _bounds(bound: str) -> tuple[str | None, str | None]:
    """FOR VALUES FROM ('2026-01') TO ('2026-02') -> ('2026-01', '2026-02')."""
    if "FROM (" not in bound:
        return None, None
    lo = bound.split("FROM ('", 1)[1].split("'", 1)[0]
    hi = bound.split("TO ('", 1)[1].split("'", 1)[0]
    return lo, hi
