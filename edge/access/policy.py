"""The access policy: may this resident pass this door now? Pure functions over store facts.

Order of checks, first failure wins (its name is the event's reason): unknown_resident,
resident_<status> (suspended, moved_out), blocked, not_allowed_here, outside_hours.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from edge.access.store import Facts

_HHMM = re.compile(r"^([01]?\d|2[0-4]):([0-5]\d)$")


def parse_hhmm(text: str, field: str) -> int:
    m = _HHMM.match(text.strip())
    if not m or (m.group(1) == "24" and m.group(2) != "00"):
        raise ValueError(f"{field}: expected HH:MM, got {text!r}")
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_days(text: str, field: str = "days") -> str:
    """ "1-5", "1,3,5", "67", "" (= every day) -> ISO weekday digits "12345"."""
    text = text.replace(" ", "")
    if not text:
        return "1234567"
    out: set[int] = set()
    for part in text.split(","):
        if m := re.fullmatch(r"([1-7])-([1-7])", part):
            a, b = int(m.group(1)), int(m.group(2))
            if a > b:
                raise ValueError(f"{field}: range {part!r} runs backwards")
            out.update(range(a, b + 1))
        elif re.fullmatch(r"[1-7]+", part):
            out.update(int(c) for c in part)
        else:
            raise ValueError(f"{field}: expected ISO weekdays like '1-5' or '67', got {text!r}")
    return "".join(str(d) for d in sorted(out))


def in_window(w: dict[str, Any], local: datetime) -> bool:
    minute = local.hour * 60 + local.minute
    day = local.isoweekday()
    start, end = int(w["start_min"]), int(w["end_min"])
    if start < end:
        return str(day) in w["days"] and start <= minute < end
    # Wraps midnight: the part after midnight belongs to the previous day's window.
    if minute >= start:
        return str(day) in w["days"]
    prev = 7 if day == 1 else day - 1
    return minute < end and str(prev) in w["days"]


def allowed_door(f: Facts, door_id: str, building: str | None) -> bool:
    """Rights are explicit: a resident with none opens no door (fail closed). What grants a
    door: an "all doors" right, the door on the resident record or as a door right, a right
    for the door's building, or the community's defaults ([access] default_doors, and the
    resident's own building with own_building)."""
    assert f.resident is not None
    if ("all", "*") in f.rights or door_id in f.defaults.doors:
        return True
    if door_id in f.resident["doors"] or ("door", door_id) in f.rights:
        return True
    if building is None:
        return False
    own = f.defaults.own_building and f.resident.get("building") == building
    return own or ("building", building) in f.rights


def _overlaps(w: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Does the weekly window ``w`` hold at any minute of [start, end) (local times)?"""
    # A week of minutes covers every case; stepping by the minute keeps the midnight and
    # weekday rules in one place (in_window) at ~10k cheap checks for a week-long pass.
    t = start.replace(second=0, microsecond=0)
    stop = min(end, t + timedelta(days=7, minutes=1))
    while t < stop:
        if in_window(w, t):
            return True
        t += timedelta(minutes=1)
    return False


def may_issue(
    f: Facts, door_id: str, building: str | None, start: datetime, end: datetime
) -> str | None:
    """None if the resident may issue a visitor pass for this door valid from ``start`` to
    ``end`` (local times): the same checks as :func:`evaluate`, except that the time windows
    must overlap the pass instead of holding now. A pass never opens more than its resident
    may, so :func:`evaluate` is asked again at every use."""
    why = evaluate(f, door_id, building, None)
    if why is not None:
        return why
    windows = [w for w in f.windows if w["door_id"] in (None, door_id)]
    if windows and not any(_overlaps(w, start, end) for w in windows):
        return "outside_hours"
    return None


def evaluate(f: Facts, door_id: str, building: str | None, local: datetime | None) -> str | None:
    """None if the resident may pass; otherwise the reason they may not."""
    if f.resident is None:
        return "unknown_resident"
    if f.resident["status"] != "active":
        return f"resident_{f.resident['status']}"
    if any(b["door_id"] in (None, door_id) for b in f.blocks):
        return "blocked"
    if not allowed_door(f, door_id, building):
        return "not_allowed_here"
    windows = [w for w in f.windows if w["door_id"] in (None, door_id)]
    if local is not None and windows and not any(in_window(w, local) for w in windows):
        return "outside_hours"  # (local None: the caller checks the windows itself)
    return None
