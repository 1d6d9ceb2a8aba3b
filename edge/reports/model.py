"""A small multinomial naive Bayes category model over jieba tokens + character bigrams.

Why naive Bayes: ~160 training messages are too few for anything bigger, it trains in
milliseconds at start-up (no pickled weights to ship or keep in step), and every decision is
a sum of per-feature log-ratios, so the words that drove a category can be listed.
Trained from config/report_training.csv (the `dev` half of the labelled set only; the `test`
half stays held out). numpy only.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from edge.core.resources import shipped

DEFAULT_TRAINING = shipped("config/report_training.csv")
_CJK = re.compile(r"[\u4e00-\u9fff]+")
# Function words carry no category; they only add noise on 160 messages.
STOP = frozenset(
    "的 了 是 我 在 有 都 也 就 和 一 个 吗 呢 吧 啊 这 那 能 要 很 还 又 被 把 给 让".split()
)


class TrainingError(ValueError):
    """The training file is unusable; the message names the file and row."""


def features(text: str, tokens: Sequence[str]) -> list[str]:
    """Token features ("w:灯") and CJK character bigrams ("b:不亮")."""
    out = [f"w:{t}" for t in tokens if t not in STOP and _CJK.search(t)]
    for run in _CJK.findall(text):
        out.extend(f"b:{run[i:i + 2]}" for i in range(len(run) - 1))
    return out


def load_training(path: str | Path | None = None) -> list[tuple[str, str]]:
    """(text, category) rows of the training CSV (columns id,text,category)."""
    path = Path(path) if path else DEFAULT_TRAINING
    try:
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
    except OSError as e:
        raise TrainingError(f"{path}: {e}") from e
    out = []
    for i, r in enumerate(rows, start=2):
        text, cat = (r.get("text") or "").strip(), (r.get("category") or "").strip()
        if not text or not cat:
            raise TrainingError(f"{path}:{i}: text and category are required")
        out.append((text, cat))
    return out


class NaiveBayes:
    """Multinomial NB with Laplace smoothing; classes limited to the taxonomy's codes."""

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha
        self.classes: list[str] = []
        self.vocab: dict[str, int] = {}
        self.log_prior = np.zeros(0)
        self.log_lik = np.zeros((0, 0))  # classes x vocab

    def fit(self, docs: Iterable[list[str]], labels: Iterable[str]) -> NaiveBayes:
        docs, labels = list(docs), list(labels)
        self.classes = sorted(set(labels))
        cidx = {c: i for i, c in enumerate(self.classes)}
        for d in docs:
            for f in d:
                self.vocab.setdefault(f, len(self.vocab))
        counts = np.zeros((len(self.classes), len(self.vocab)))
        for d, y in zip(docs, labels, strict=True):
            # Binary counts per message: a word repeated in one message is one piece of
            # evidence, not three.
            counts[cidx[y], [self.vocab[f] for f in set(d)]] += 1
        # A uniform prior: the labelled set's class mix is not the community's.
        self.log_prior = np.full(len(self.classes), -np.log(len(self.classes)))
        smoothed = counts + self.alpha
        self.log_lik = np.log(smoothed / smoothed.sum(axis=1, keepdims=True))
        return self

    def _index(self, doc: list[str]) -> list[int]:
        return sorted({self.vocab[f] for f in doc if f in self.vocab})

    def proba(self, doc: list[str]) -> dict[str, float]:
        """Posterior per class (sums to 1)."""
        idx = self._index(doc)
        logp = self.log_prior + self.log_lik[:, idx].sum(axis=1)
        p = np.exp(logp - logp.max())
        p /= p.sum()
        return {c: float(v) for c, v in zip(self.classes, p, strict=True)}

    def explain(self, doc: list[str], category: str, top: int = 5) -> list[tuple[str, float]]:
        """The features that most favoured `category` over the other classes (log-ratio)."""
        if category not in self.classes:
            return []
        idx = self._index(doc)
        if not idx:
            return []
        k = self.classes.index(category)
        ll = self.log_lik[:, idx]
        others = np.delete(ll, k, axis=0).max(axis=0)
        margin = ll[k] - others
        inv = {i: f for f, i in self.vocab.items()}
        order = np.argsort(-margin)[:top]
        return [(inv[idx[j]].split(":", 1)[1], round(float(margin[j]), 2))
                for j in order if margin[j] > 0]
