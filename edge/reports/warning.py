"""Early warning (舆情预警) on each new report, on the store thread, in the report's transaction.

- an immediate (or high) urgency report raises an alert at once; a report the emergency
  detector was unsure about (``possible_emergency``) raises a critical ``possible_emergency``
  alert for a person to confirm within minutes; each names the evidence that triggered it;
- identical reports (same normalised text, building and location within the duplicate
  window) join the first one's group: stored, but never alerted or counted twice;
- a topic (category, in one building and community-wide) whose distinct reports in the trend
  window reach ``trend_min_count`` and ``trend_factor`` × its usual rate raises a trend alert;
- a building whose mean sentiment in the sentiment window falls ``sentiment_drop`` below its
  usual mean raises a sentiment alert.
Trend and sentiment alerts have a cool-down per key, so a burst raises one alert.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from edge.core.standard import Alert, Report, new_id
from edge.core.store.core import Store
from edge.reports import store as db
from edge.reports.config import ReportsConfig
from edge.reports.store import iso

_NOT_TEXT = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """Identical for the eye: width, case, spaces and punctuation do not matter."""
    return _NOT_TEXT.sub("", unicodedata.normalize("NFKC", text).lower())


def _cooling(store: Store, key: str, at: datetime, cfg: ReportsConfig) -> bool:
    last = db.warning_last(store, key)
    return last is not None and last > iso(at - timedelta(minutes=cfg.alert_cooldown_min))


def _trend(store: Store, rec: Report, at: datetime, cfg: ReportsConfig, zh: str) -> list[Alert]:
    alerts = []
    window = timedelta(minutes=cfg.trend_window_min)
    base_from = at - timedelta(days=cfg.baseline_days)
    windows_in_baseline = max(1.0, (at - window - base_from) / window)
    scopes = [(rec.building, f"{rec.building}号楼")] if rec.building else []
    scopes.append((None, "全小区"))
    for building, place in scopes:
        key = f"trend:{rec.category}:{building or '*'}"
        recent = db.first_reports(store, rec.category, building, iso(at - window), iso(at))
        if len(recent) < cfg.trend_min_count:
            continue
        if _cooling(store, key, at, cfg):
            break  # this spike was already reported (here, or for the building)
        before = db.first_reports(store, rec.category, building, iso(base_from), iso(at - window))
        usual = len(before) / windows_in_baseline
        if len(recent) < cfg.trend_factor * max(usual, 1.0 / cfg.trend_factor):
            continue
        alert = Alert(
            id=new_id("al"), ts=at, level="warning", type="trend",
            message=f"{place}「{zh}」反映激增: {cfg.trend_window_min} 分钟内 {len(recent)} 条"
            f" (平时约 {usual:.1f} 条)",
            evidence=recent,
        )
        db.warning_fired(store, key, alert)
        alerts.append(alert)
        break  # the building alert says it; do not repeat it community-wide
    return alerts


def _sentiment(store: Store, rec: Report, at: datetime, cfg: ReportsConfig) -> list[Alert]:
    if not rec.building:
        return []
    key = f"sentiment:{rec.building}"
    window_from = at - timedelta(minutes=cfg.sentiment_window_min)
    n, mean, ids = db.building_sentiment(store, rec.building, iso(window_from), iso(at))
    if n < cfg.sentiment_min_reports or _cooling(store, key, at, cfg):
        return []
    bn, bmean, _ = db.building_sentiment(
        store, rec.building, iso(at - timedelta(days=cfg.baseline_days)), iso(window_from)
    )
    usual = bmean if bn >= cfg.sentiment_min_reports else 0.0  # no history: assume neutral
    if mean > usual - cfg.sentiment_drop:
        return []
    alert = Alert(
        id=new_id("al"), ts=at, level="warning", type="sentiment_drop",
        message=f"{rec.building}号楼居民情绪明显下降: 近期均值 {mean:+.2f} (平时 {usual:+.2f},"
        f" {n} 条反映)",
        evidence=ids,
    )
    db.warning_fired(store, key, alert)
    return [alert]


def submit(
    store: Store, rec: Report, extra: dict[str, Any], photo_rows: list[dict[str, Any]],
    cfg: ReportsConfig, category_zh: str, ticket: tuple | None = None,
    open_ticket: Callable[[Store, Any, dict[str, Any], str], None] | None = None,
) -> tuple[Report, list[Alert], Any]:
    """Store a report with its photos, group it, raise its alerts, open its ticket: one tx.

    ``ticket`` is ``(RepairTicket, extra)`` to open with it (by ``open_ticket``, the tickets
    capability's insert) unless the report is a repeat.
    Returns the stored report (with group_id), the alerts and the ticket opened (or None).
    """
    at = rec.ts
    alerts: list[Alert] = []
    opened = None
    with store.transaction():
        since = iso(at - timedelta(minutes=cfg.duplicate_window_min))
        group = db.find_group(store, extra["text_norm"], rec.building, rec.location, since)
        if group:
            rec = rec.model_copy(update={"group_id": group})
        db.insert_report(store, rec, extra)
        for row in photo_rows:
            db.insert_photo(store, row)
        if group:
            return rec, [], None  # a repeat: stored and grouped, never alerted twice
        critical = rec.urgency == "immediate"
        doubt = rec.possible_emergency and not critical
        if critical or doubt or rec.urgency == "high":
            place = "".join(x for x in (f"{rec.building}号楼" if rec.building else "",
                                        rec.location or "") if x) or "位置未填"
            if critical:
                kind, head = "urgent_report", "紧急"
            elif doubt:
                kind, head = "possible_emergency", "疑似紧急，请几分钟内核实"
            else:
                kind, head = "high_urgency_report", "高优先级"
            reasons = extra.get("analysis", {}).get("urgency_reasons") or []
            why = f" (依据: {'、'.join(reasons[:6])})" if reasons and (critical or doubt) else ""
            alert = Alert(
                id=new_id("al"), ts=at, level="critical" if critical or doubt else "warning",
                type=kind, message=f"{head}反映 [{place}] {rec.text[:80]}{why}",
                evidence=[rec.id],
            )
            store.record(alert)
            alerts.append(alert)
        alerts += _trend(store, rec, at, cfg, category_zh)
        alerts += _sentiment(store, rec, at, cfg)
        if ticket is not None and open_ticket is not None:
            open_ticket(store, ticket[0], ticket[1], "resident")
            opened = ticket[0]
    return rec, alerts, opened
