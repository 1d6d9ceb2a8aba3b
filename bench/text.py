"""Accuracy and throughput of the report text analysis on tests/data/community_messages.csv.

The labelled set has a `split` column: the lexicon and rules were tuned looking only at the
`dev` half; `test` is the held-out half (figures reported per split and overall). The
category model trains on config/report_training.csv (= the dev half), so its `dev` figure is
in-sample: `dev_cv5` is the honest dev figure (5-fold cross-validation inside the dev half).
Baselines measured side by side in the same run: the rules-only category classifier (before
the model), pysenti alone and snownlp alone for polarity (their score mapped to three classes
with the same neutral band), and a majority-class classifier.
Last line: one JSON object.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge.reports.analyze import Analyzer, polarity_of, pysenti_score

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "community_messages.csv"


def main() -> None:
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    analyzer = Analyzer()
    analyzer.warm()  # jieba, pysenti and the category model (trained here)
    t0 = time.perf_counter()
    results = [analyzer.analyze(r["text"]) for r in rows]
    elapsed = time.perf_counter() - t0

    def acc(split: str, field: str, preds: list[str]) -> float:
        pairs = [(p, r[field]) for p, r in zip(preds, rows, strict=True)
                 if split == "all" or r["split"] == split]
        return round(sum(p == g for p, g in pairs) / len(pairs), 4)

    out: dict = {"messages": len(rows)}
    for split in ("test", "dev", "all"):
        out[split] = {
            "category_accuracy": acc(split, "category", [a.category for a in results]),
            "polarity_accuracy": acc(split, "polarity", [a.polarity for a in results]),
            "urgency_accuracy": acc(split, "urgency", [a.urgency for a in results]),
        }
    imm = [(a, r) for a, r in zip(results, rows, strict=True) if r["urgency"] == "immediate"]
    out["immediate_recall"] = round(sum(a.urgency == "immediate" for a, _ in imm) / len(imm), 4)
    flagged = [r for a, r in zip(results, rows, strict=True) if a.urgency == "immediate"]
    out["immediate_precision"] = round(
        sum(r["urgency"] == "immediate" for r in flagged) / max(1, len(flagged)), 4
    )
    out["immediate_cases"] = len(imm)
    out["throughput_msgs_per_s"] = round(len(rows) / elapsed, 1)
    out["category_decided_by_model"] = sum(a.category_source == "model" for a in results)

    # dev_cv5: the model retrained on 4/5 of the dev half, scored on the other fifth.
    dev = [r for r in rows if r["split"] == "dev"]
    ids = [r["id"] for r in dev]
    random.Random(0).shuffle(ids)
    ok = 0
    for k in range(5):
        fold = set(ids[k::5])
        a5 = Analyzer(training=[(r["text"], r["category"]) for r in dev if r["id"] not in fold])
        ok += sum(a5.analyze(r["text"]).category == r["category"] for r in dev if r["id"] in fold)
    out["dev_cv5"] = {"category_accuracy": round(ok / len(dev), 4)}

    # Baselines, same messages, same run.
    majority = Counter(r["category"] for r in rows).most_common(1)[0][0]
    out["baseline_majority_category_accuracy"] = acc("all", "category", [majority] * len(rows))
    rules = Analyzer(use_model=False)
    t1 = time.perf_counter()
    rc = [rules.analyze(r["text"]).category for r in rows]
    out["baseline_rules_only_msgs_per_s"] = round(len(rows) / (time.perf_counter() - t1), 1)
    out["baseline_rules_only_category_accuracy"] = {
        s: acc(s, "category", rc) for s in ("test", "dev", "all")}
    ps = [polarity_of(math.tanh(pysenti_score(r["text"]) / 2)) for r in rows]
    out["baseline_pysenti_polarity_accuracy"] = acc("all", "polarity", ps)
    try:
        from snownlp import SnowNLP

        t1 = time.perf_counter()
        sn = [polarity_of(2 * SnowNLP(r["text"]).sentiments - 1) for r in rows]
        out["baseline_snownlp_polarity_accuracy"] = acc("all", "polarity", sn)
        out["baseline_snownlp_msgs_per_s"] = round(len(rows) / (time.perf_counter() - t1), 1)
    except ImportError:
        out["baseline_snownlp_polarity_accuracy"] = None
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
