"""Places written in a report's text ("5号楼2单元301室", "三栋一单元") offered as its location.

Residents write where the problem is in the sentence and leave the building field empty; the
report page shows what was found and fills the fields with one tap. Only the forms residents
use for addresses are read: 号楼/栋/幢/座 (building), 单元 (unit), 层 (floor), 室/房/号 or a
3-4 digit number right after the unit (room). "5楼" alone is a floor in everyday speech, not a
building, so it is not taken as one.
"""

from __future__ import annotations

import re
from typing import Any

_CN = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"(\d{1,3}|[一二两三四五六七八九十]{1,3})"
_BUILDING = re.compile(_NUM + r"\s*(?:号楼|号院楼|栋|幢|座|号宿舍楼)")
_UNIT = re.compile(_NUM + r"\s*单元")
_FLOOR = re.compile(r"(\d{1,2}|[一二两三四五六七八九十]{1,3})\s*层")
_ROOM = re.compile(r"(\d{3,4})\s*(?:室|房间|房|号房)")
_ROOM_AFTER_UNIT = re.compile(r"单元\s*(\d{3,4})(?!\d)")


def _int(s: str) -> str:
    """Chinese numerals up to 99 ("十二", "二十三") as digits; digits unchanged."""
    if s.isdigit():
        return str(int(s))
    if "十" in s:
        tens, _, ones = s.partition("十")
        return str((_CN.get(tens, 1) if tens else 1) * 10 + (_CN.get(ones, 0) if ones else 0))
    return str(_CN.get(s, 0)) if len(s) == 1 else s


def find_place(text: str) -> dict[str, Any] | None:
    """{building, unit, floor, room, location, text} found in ``text``, or None."""
    b, u = _BUILDING.search(text), _UNIT.search(text)
    f, r = _FLOOR.search(text), _ROOM.search(text) or _ROOM_AFTER_UNIT.search(text)
    if not (b or u or r):
        return None
    out: dict[str, Any] = {
        "building": _int(b.group(1)) if b else None,
        "unit": _int(u.group(1)) if u else None,
        "floor": _int(f.group(1)) if f else None,
        "room": r.group(1) if r else None,
    }
    rest = "".join(
        part
        for part in (
            f"{out['unit']}单元" if out["unit"] else "",
            f"{out['floor']}层" if out["floor"] and not out["room"] else "",
            f"{out['room']}室" if out["room"] else "",
        )
    )
    out["location"] = rest or None
    out["text"] = (f"{out['building']}号楼" if out["building"] else "") + rest
    return out
