"""Figures of an analyser on labelled rows: bench/text.py and the retrain check share them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.textmodel import FIELDS, Row, read_rows
from edge.core.resources import shipped
from edge.reports.analyze import Analysis

TEST_DIR = "tests/data/text/test"


def untouched_rows() -> list[Row]:
    """The untouched test split, when it ships (empty otherwise)."""
    folder = shipped(TEST_DIR)
    return [r for p in sorted(Path(folder).glob("*.csv")) for r in read_rows(p)]


def score(rows: Sequence[Row], preds: Sequence[Analysis]) -> dict[str, Any]:
    n = len(rows)
    out: dict[str, Any] = {"messages": n}
    if not n:
        return out
    for f in FIELDS:
        out[f"{f}_accuracy"] = round(sum(getattr(a, f) == getattr(r, f)
                                         for r, a in zip(rows, preds, strict=True)) / n, 4)
    imm = [(r, a) for r, a in zip(rows, preds, strict=True) if r.urgency == "immediate"]
    out["immediate_cases"] = len(imm)
    if imm:
        out["immediate_recall"] = round(sum(a.urgency == "immediate" for _, a in imm) / len(imm), 4)
        out["immediate_or_possible_recall"] = round(
            sum(a.urgency == "immediate" or a.possible_emergency for _, a in imm) / len(imm), 4)
        out["immediate_missed"] = [r.id for r, a in imm if a.urgency != "immediate"][:20]
    out["false_alarm_rate"] = round(sum(a.urgency == "immediate" and r.urgency != "immediate"
                                        for r, a in zip(rows, preds, strict=True)) / n, 4)
    out["possible_emergency_rate"] = round(sum(a.possible_emergency for a in preds) / n, 4)
    for f in ("category", "urgency", "polarity"):
        wrong = Counter(f"{getattr(r, f)}->{getattr(a, f)}"
                        for r, a in zip(rows, preds, strict=True)
                        if getattr(r, f) != getattr(a, f))
        out[f"top_confusions_{f}"] = dict(wrong.most_common(4))
    return out


def evaluate(rows: Sequence[Row], predict: Callable[[str], Analysis],
             by_source: bool = True) -> dict[str, Any]:
    """Score `predict` on `rows`, with latency per message and figures per source."""
    preds, ms = [], []
    for r in rows:
        t0 = time.perf_counter()
        preds.append(predict(r.text))
        ms.append((time.perf_counter() - t0) * 1000)
    out = score(rows, preds) | latency(ms)
    if by_source:
        out["by_source"] = per_source(rows, preds)
    return out


def per_source(rows: Sequence[Row], preds: Sequence[Analysis]) -> dict[str, Any]:
    out = {}
    for src in sorted({r.source for r in rows}):
        pairs = [(r, a) for r, a in zip(rows, preds, strict=True) if r.source == src]
        s = score([r for r, _ in pairs], [a for _, a in pairs])
        out[src] = {k: v for k, v in s.items() if not k.startswith(("top_", "immediate_missed"))}
    return out


def latency(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {}
    s = sorted(ms)
    return {"ms_p50": round(s[len(s) // 2], 3), "ms_p95": round(s[int(len(s) * 0.95)], 3)}
