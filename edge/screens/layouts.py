"""Named layouts of the player page: which zones a screen shows around its content.

| layout | zones |
| --- | --- |
| ``full`` | the content only (a screen that shows posters edge to edge) |
| ``standard`` | header (community name, clock, date), content, a ticker of the notices playing |
| ``side`` | ``standard`` plus a side zone: a QR code (``[player] side_qr_url``) and the weather |

A schedule entry may name its own layout (``qilu.v1.schedule`` ``layout``): while it plays, it
wins over the screen's. Otherwise ``[[player.layout_times]]`` by the clock, else
``[[screens]] layout``, else ``[player] layout``. The page arranges the zones
for its orientation (landscape: side zone at the right; portrait: below the content), and an
emergency takes the whole screen whatever the layout (player.css ``body.emergency``). The
clock runs in the page on the box's time, in the community's zone (the plan carries both).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
TICKER_MAX = 8  # notices in the ticker; more make one pass too long to follow


def weather(path: Path | None) -> dict[str, str] | None:
    """The side zone's weather from the configured file: a few short strings, or None."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.debug("no weather for the screens: %s", e)
        return None
    if not isinstance(data, dict):
        return None
    keep = ("text", "temp", "range", "wind", "aqi", "updated")
    # "℃" (U+2103) is missing from the CJK fonts kiosks ship (WenQuanYi): shown as "°C".
    return {
        k: str(data[k])[:40].replace("℃", "°C") for k in keep if data.get(k) not in (None, "")
    } or None


def ticker(content: dict[str, dict[str, Any]], default_id: str) -> list[str]:
    """One line per text notice in the plan (title and the start of its body)."""
    out = []
    for cid, c in content.items():
        if cid == default_id or c.get("kind") != "html" or c.get("emergency"):
            continue
        body = " ".join(str(c.get("body") or "").split())
        out.append(f"{c.get('title', '')}：{body[:60]}" if body else str(c.get("title", "")))
    return [t for t in out if t][:TICKER_MAX]


def layout_json(
    name: str,
    *,
    community: str,
    tz: str,
    content: dict[str, dict[str, Any]],
    default_id: str,
    qr_svg: str | None,
    qr_caption: str,
    weather_now: dict[str, str] | None,
    times: Sequence[dict[str, str]] = (),
    also: Iterable[str] = (),
) -> dict[str, Any]:
    """What the page needs for its zones. ``times``: other layouts in daily windows (the page
    switches by its clock, in the community's zone, also while offline); the ticker and side
    data are sent whenever any of the layouts uses them (``also``: layouts that schedule
    entries in the plan ask for)."""
    out: dict[str, Any] = {"name": name, "community": community, "tz": tz, "times": list(times)}
    used = {name, *also, *(t["name"] for t in times)}
    if used - {"full"}:
        out["ticker"] = ticker(content, default_id)
    if "side" in used:
        out["side"] = {"qr_svg": qr_svg, "qr_caption": qr_caption, "weather": weather_now}
    return out
