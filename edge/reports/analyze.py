"""Chinese text analysis of a report: category, polarity and sentiment, urgency, emergencies.

Three linear heads over character n-grams (common/textmodel.py) give the category, the
polarity (the community lexicon, negation, politeness and sarcasm markers are features of
the same model) and the urgency; the emergency detector (edge/reports/emergency.py: rules per
emergency type + its own model head) can only raise the urgency, to ``immediate`` or, when
unsure, to the ``possible_emergency`` flag a person confirms within minutes. Label rules
from docs/report-labels.md are applied last: every immediate message is a safety_hazard and
is never positive. The model is an artefact built from the shipped corpus at install time
(scripts/setup.sh); numpy only at run time. CPU-bound: the service calls it in a thread.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.textmodel import ARTEFACT, TextModel, markers, normalise
from edge.core.resources import CHECKOUT, SHARE, shipped
from edge.reports import emergency
from edge.reports.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

POLARITY_THRESHOLD = 0.2  # |sentiment| below this is neutral (the baseline's polarity)
LOW_CATEGORIES = {"praise", "suggestion", "policy_enquiry", "other"}


@dataclass
class Analysis:
    category: str
    category_scores: dict[str, float]  # the model's top categories (probability)
    sentiment: float  # −1 (very negative) … 1 (very positive)
    polarity: str  # negative | neutral | positive
    urgency: str  # immediate | high | normal | low
    urgency_reasons: list[str] = field(default_factory=list)  # the emergency evidence
    tokens: list[str] = field(default_factory=list)  # jieba tokens (baseline analyser only)
    category_source: str = "model"  # model | rules: which one decided the category
    category_words: list[str] = field(default_factory=list)  # the n-grams that drove it
    possible_emergency: bool = False  # a person should confirm within minutes
    emergency_probability: float = 0.0  # the detector model's P(immediate)
    emergency_types: list[str] = field(default_factory=list)  # fire, gas, medical, ...

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def polarity_of(score: float) -> str:
    if score >= POLARITY_THRESHOLD:
        return "positive"
    if score <= -POLARITY_THRESHOLD:
        return "negative"
    return "neutral"


def default_artefact() -> Path:
    """The shipped artefact; where it is built when missing: beside the installed share
    files, or in the checkout."""
    p = shipped(ARTEFACT)
    if p.exists():
        return p
    return (SHARE if (SHARE / "config").exists() else CHECKOUT) / ARTEFACT


def build_artefact(path: Path) -> None:
    """Train the model from the shipped corpus in a child process (scikit-learn and scipy
    never enter the daemon's memory) and write it to `path`."""
    log.warning("text model %s missing: training it from the shipped corpus", path)
    subprocess.run([sys.executable, "-m", "common.texttrain", "--out", str(path)],
                   check=True, timeout=600, capture_output=True)


class Analyzer:
    def __init__(
        self, taxonomy: Taxonomy | None = None, *, model: TextModel | None = None,
        artefact: Path | None = None,
    ) -> None:
        self.taxonomy = taxonomy or load_taxonomy()
        self.artefact = artefact or default_artefact()
        self._model = model
        self._lock = threading.Lock()

    def model(self) -> TextModel:
        with self._lock:
            if self._model is None:
                if not self.artefact.exists():
                    build_artefact(self.artefact)
                self._model = TextModel.load(self.artefact)
            return self._model

    def set_model(self, model: TextModel) -> None:
        with self._lock:
            self._model = model

    def set_taxonomy(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy

    def warm(self) -> None:
        """Load the model now (~0.3 s) instead of on the first report."""
        self.analyze("楼道的灯坏了，谢谢")

    def analyze(self, text: str) -> Analysis:
        text = text.strip()
        m = self.model()
        idx = m.index(m.featurize(text))
        p = m.p_emergency(idx)
        p_window = 0.0
        for w in emergency.windows(text):
            wi = m.index(m.featurize(w))
            p_window = max(p_window, (m.p_emergency(wi)
                                      + m.proba("urgency", wi)["immediate"]) / 2)
        a = combine(
            text, m.proba("category", idx), m.proba("polarity", idx), m.proba("urgency", idx),
            p, m.explain("emergency", idx, "yes", top=4) if p >= emergency.P_RULE else [],
            self.taxonomy.codes, p_window * emergency.WINDOW_WEIGHT,
        )
        a.category_words = m.explain("category", idx, a.category, top=5)
        return a


def combine(
    text: str, cats: dict[str, float], pol: dict[str, float], urg: dict[str, float], p: float,
    model_words: list[str], codes: list[str], p_window: float = 0.0,
) -> Analysis:
    """The heads' probabilities + the emergency detector + the label guide's rules → labels.
    Shared by every model bench/text.py compares, so they differ only in their probabilities.
    `p` is the emergency heads' P(immediate) (TextModel.p_emergency); the detector reads its
    mean with the urgency head's P(immediate) (two views of one question: fewer false alarms
    at the same recall in cross-validation than either alone); `p_window`: the same read on
    the message's sentences alone (emergency.windows), weighted."""
    p = max((p + urg.get("immediate", 0.0)) / 2, p_window)
    cats = {c: v for c, v in cats.items() if c in codes}
    category = max(cats, key=cats.__getitem__) if cats else "other"
    polarity = max(pol, key=pol.__getitem__)
    urgency = max(urg, key=urg.__getitem__)
    verdict = emergency.decide(text, p, model_words)
    if urgency == "immediate" and verdict.level != "immediate":
        # The urgency head alone is no emergency detector: it asks a person instead.
        urgency = "high"
        if verdict.level == "none":
            verdict = emergency.Verdict("possible_emergency", p, [], ["urgency-model"])
    if verdict.level == "immediate":
        urgency = "immediate"  # the detector only raises
    # possible_emergency is a flag beside the urgency (a critical alert asks a person to
    # confirm now); raising the urgency too cost 2 points of urgency accuracy in
    # cross-validation for no emergency caught.
    # docs/report-labels.md: `low` is exactly praise, suggestions, enquiries and other; the
    # category head is the surer of the two heads, so it settles low versus normal.
    if urgency in ("low", "normal") and category == "safety_hazard" and len(cats) > 1:
        # docs/report-labels.md: a safety hazard is at least `high`. When the urgency head
        # reads no more than an ordinary problem, the hazard reading is the weaker one: the
        # next category (leave-one-writer-out: +1.3 points of category accuracy).
        category = sorted((c for c in cats if c != "safety_hazard"), key=lambda c: -cats[c])[0]
    if urgency in ("low", "normal"):
        urgency = "low" if category in LOW_CATEGORIES else "normal"
    # docs/report-labels.md: every immediate message is a safety hazard, never positive.
    if urgency == "immediate":
        category = "safety_hazard" if "safety_hazard" in codes else category
        if polarity == "positive":
            polarity = "negative"
    # docs/report-labels.md: sarcasm ("太‘负责’了") and "谢谢…但是" + a complaint are
    # negative; the words of thanks and praise in them pull the head the other way.
    marks = markers(normalise(text))
    if "thanks_but" in marks and category == "praise" and len(cats) > 1:
        # "谢谢…但是" + a problem: the problem's category (the label guide's first rule).
        category = sorted((c for c in cats if c != "praise"), key=lambda c: -cats[c])[0]
        if urgency == "low" and category not in LOW_CATEGORIES:
            urgency = "normal"
    if polarity == "positive" and ("sarcasm" in marks or "thanks_but" in marks):
        polarity = "negative"
    elif polarity == "positive" and "polite" in marks and category != "praise":
        polarity = "neutral"  # "麻烦…谢谢" is a polite request, not praise
    top = dict(sorted(cats.items(), key=lambda kv: -kv[1])[:3])
    return Analysis(
        category=category,
        category_scores={c: round(v, 3) for c, v in top.items()},
        sentiment=round(pol.get("positive", 0.0) - pol.get("negative", 0.0), 3),
        polarity=polarity,
        urgency=urgency,
        urgency_reasons=verdict.evidence,
        category_source="model",
        possible_emergency=verdict.level == "possible_emergency",
        emergency_probability=round(p, 3),
        emergency_types=verdict.types,
    )
