"""The first analyser (issue 6), kept as the baseline that bench/text.py measures beside the
model: keyword rules + naive Bayes, lexicon sentiment, regular-expression urgency.

jieba segments; categories score keyword hits from the taxonomy (multi-character keywords as
substrings, single characters only as whole tokens so 修 does not fire inside 修剪); when the
rules are not confident (no hit, or the runner-up within MODEL_MARGIN of the top) a naive Bayes
model (edge/reports/model.py) picks among the close categories; sentiment
combines the community lexicon (with negation and intensifiers) with pysenti's rule score;
urgency comes from explicit rules. CPU-bound: the service calls it in a worker thread.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import Any

from edge.reports import lexicon
from edge.reports.analyze import Analysis
from edge.reports.model import NaiveBayes, features, load_training
from edge.reports.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)
# jieba is imported and its dictionary loaded on the first report, not at daemon start: the
# import alone pulls pkg_resources (~19 MB) and the dictionary ~60 MB of RSS.
_jieba_lock = threading.Lock()
_jieba: Any = None


def _load_jieba() -> Any:
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            _jieba = jieba
        return _jieba

# Categories whose messages carry no operational urgency.
LOW_CATEGORIES = {"praise", "suggestion", "policy_enquiry", "other"}
POLARITY_THRESHOLD = 0.2  # |sentiment| below this is neutral
# pysenti's general lexicon scores everyday nouns (小区 −0.5, 电梯 −1.7), so it is only a
# tie-breaker here; bench/text.py measures it alone as a baseline.
PYSENTI_WEIGHT = 0.05
# What a category implies before any word is read: a neighbour dispute or a hazard is a
# grievance, praise is praise. Added to the lexicon score (questions excepted).
CATEGORY_PRIOR = {"noise_neighbours": -1.0, "safety_hazard": -1.0, "praise": 1.0}
REQUEST = re.compile(r"麻烦|请")
THANKS = re.compile(r"感谢|表扬|点赞|辛苦|锦旗|好人")
# Rules decide when their top category leads the runner-up by more than this many points
# (a strong keyword is 3, a keyword 1); otherwise the model chooses among the categories
# within this margin of the top. Chosen by 5-fold cross-validation on the dev half only.
MODEL_MARGIN = 1.0
MODEL_ALPHA = 0.1
QUESTION = re.compile(r"请问|怎么|如何|哪里|多少|是否|吗[？?]?$|[？?]$")


def polarity_of(score: float) -> str:
    if score >= POLARITY_THRESHOLD:
        return "positive"
    if score <= -POLARITY_THRESHOLD:
        return "negative"
    return "neutral"


_pysenti_lock = threading.Lock()
_pysenti: Any = None


def pysenti_score(text: str) -> float:
    """pysenti's rule classifier score (unbounded; >0 positive)."""
    global _pysenti
    with _pysenti_lock:
        if _pysenti is None:
            from pysenti import rule_classifier

            _pysenti = rule_classifier
        return float(_pysenti.classify(text)["score"])


class RulesAnalyzer:
    def __init__(
        self,
        taxonomy: Taxonomy | None = None,
        *,
        use_pysenti: bool = True,
        training: list[tuple[str, str]] | None = None,
        use_model: bool = True,
    ) -> None:
        """`training`: (text, category) rows for the model; default config/report_training.csv
        (the dev half of the labelled set). `use_model=False` is the rules-only classifier."""
        self.taxonomy = taxonomy or load_taxonomy()
        self.use_pysenti = use_pysenti
        self.use_model = use_model
        self._training = training
        self._model: NaiveBayes | None = None
        self._model_lock = threading.Lock()
        self._compile()

    def _compile(self) -> None:
        self._words: list[str] = []
        self._cats: list[tuple[str, list[tuple[str, float]]]] = []
        for c in self.taxonomy.category:
            if c.retired:
                continue
            words = [(w, 3.0) for w in c.strong] + [(w, 1.0) for w in c.keywords]
            self._cats.append((c.code, words))
        for c in self.taxonomy.category:
            for w in (*c.strong, *c.keywords):
                if len(w) > 1:
                    self._words.append(w)  # added to jieba when it first segments
        self._words_added = False

    def set_taxonomy(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._compile()
        with self._model_lock:
            self._model = None  # retrained on the new codes and keywords at the next report

    def warm(self) -> None:
        """Load jieba's dictionary, pysenti and the category model now (~1–2 s) instead of
        on the first report."""
        self.analyze("楼道的灯坏了，谢谢")
        if self.use_model:
            self.model()

    # --- parts --------------------------------------------------------------------------

    @staticmethod
    def segment_text(text: str) -> list[str]:
        """jieba's words without the taxonomy's additions."""
        return [t for t in _load_jieba().lcut(text) if t.strip()]

    def segment(self, text: str) -> list[str]:
        jieba = _load_jieba()
        if not self._words_added:
            with _jieba_lock:
                for w in self._words:
                    jieba.add_word(w)  # keep domain words whole (充电桩, 消防通道)
                self._words_added = True
        return [t for t in jieba.lcut(text) if t.strip()]

    def model(self) -> NaiveBayes:
        """The category model, trained on first use (~0.1 s): the training rows plus one
        pseudo-message per taxonomy keyword, so a word the few training messages lack still
        counts. Only the taxonomy's active codes are learnt."""
        with self._model_lock:
            if self._model is not None:
                return self._model
            codes = set(self.taxonomy.codes)
            rows = self._training if self._training is not None else load_training()
            docs, labels = [], []
            for text, cat in rows:
                if cat in codes:
                    docs.append(features(text, self.segment(text)))
                    labels.append(cat)
            for c in self.taxonomy.category:
                if c.code in codes:
                    for w in (*c.strong, *c.keywords):
                        docs.append(features(w, self.segment(w)))
                        labels.append(c.code)
            self._model = NaiveBayes(MODEL_ALPHA).fit(docs, labels)
            return self._model

    def categorize(
        self, text: str, tokens: list[str]
    ) -> tuple[str, dict[str, float], str, list[str]]:
        """Category, rule scores, who decided (rules|model) and the words that drove it."""
        best, scores = self.classify(text, tokens)
        top = max(scores.values(), default=0.0)
        close = [c for c, v in scores.items() if v >= top - MODEL_MARGIN]
        if self.use_model and (not scores or len(close) > 1):
            model = self.model()
            doc = features(text, tokens)
            proba = model.proba(doc)
            pick = max(close or proba, key=lambda c: proba.get(c, 0.0))
            return pick, scores, "model", [w for w, _ in model.explain(doc, pick)]
        return best, scores, "rules", self.rule_words(text, tokens, best)

    def rule_words(self, text: str, tokens: list[str], code: str) -> list[str]:
        """The taxonomy keywords of `code` found in the text."""
        words = dict(self._cats).get(code, [])
        token_set = set(tokens)
        return [w for w, _ in words if (w in token_set if len(w) == 1 else w in text)]

    def classify(self, text: str, tokens: list[str]) -> tuple[str, dict[str, float]]:
        """The rules alone: keyword scores per category and the best one."""
        token_set = set(tokens)
        hits: list[tuple[int, int, str, float]] = []  # start, end, category, weight
        for code, words in self._cats:
            for w, weight in words:
                if len(w) == 1:
                    if w in token_set:
                        hits.append((-1, -1, code, weight))
                    continue
                start = text.find(w)
                if start >= 0:
                    hits.append((start, start + len(w), code, weight))
        # A keyword inside a longer matched one does not count (门禁 inside 门禁卡); the longer
        # one keeps the weight of what it covers in its own category (停车 in 临时停车).
        def covers(x: tuple, y: tuple) -> bool:
            return x[0] <= y[0] and y[1] <= x[1] and (x[1] - x[0]) > (y[1] - y[0])

        scores: dict[str, float] = {}
        for h in hits:
            a, _, code, weight = h
            if a >= 0 and any(o[0] >= 0 and covers(o, h) for o in hits):
                continue
            inner = [o[3] for o in hits if o[2] == code and a >= 0 and o[0] >= 0 and covers(h, o)]
            scores[code] = scores.get(code, 0.0) + max([weight, *inner])
        if not scores:
            return "other", {}
        best = max(scores.items(), key=lambda kv: kv[1])[0]
        return best, dict(sorted(scores.items(), key=lambda kv: -kv[1]))

    def lexicon_score(self, text: str) -> float:
        """Signed sum of domain-lexicon hits with negation and intensifiers (unbounded)."""
        total = 0.0
        for table, sign in ((lexicon.POSITIVE, 1.0), (lexicon.NEGATIVE, -1.0)):
            for word, weight in table.items():
                if not weight:
                    continue
                for m in re.finditer(re.escape(word), text):
                    before = text[max(0, m.start() - 3) : m.start()]
                    w = weight * sign
                    if sign > 0 and any(before.endswith(n) for n in lexicon.NEGATORS):
                        w = -w * 0.8  # 不满意, 没有及时
                    for adv, mult in lexicon.INTENSIFIERS.items():
                        if before.endswith(adv):
                            w *= mult
                            break
                    total += w
        # "麻烦…谢谢" in a repair request is politeness, not praise.
        if "麻烦" in text and total > 0 and "感谢" not in text:
            total *= 0.3
        # A plain question ("投诉电话是多少？") asks; it does not complain.
        if QUESTION.search(text) and -2.0 < total < 0:
            total *= 0.4
        return total

    def sentiment(self, text: str, urgency: str, category: str = "other") -> float:
        raw = self.lexicon_score(text)
        if not QUESTION.search(text):
            raw += CATEGORY_PRIOR.get(category, 0.0)
        if self.use_pysenti:
            # Weak vote: pysenti's general lexicon helps on words ours lacks.
            raw += PYSENTI_WEIGHT * max(-3.0, min(3.0, pysenti_score(text)))
        if urgency == "immediate":
            raw = min(raw, -2.0)
        return round(math.tanh(raw / 2.0), 3)

    def urgency(self, text: str, category: str) -> tuple[str, list[str]]:
        imm, high = lexicon.urgency_hits(text)
        if imm:
            thanks_for_past = lexicon.RESOLVED_THANKS.search(text) and not (
                lexicon.STILL_URGENT.search(text)
            )
            if not thanks_for_past:
                return "immediate", imm
        if category in LOW_CATEGORIES:
            return "low", []
        if high:
            return "high", high
        return "normal", []

    # --- all ----------------------------------------------------------------------------

    def analyze(self, text: str) -> Analysis:
        text = text.strip()
        tokens = self.segment(text)
        category, scores, source, words = self.categorize(text, tokens)
        decided = category
        if category == "praise" and REQUEST.search(text) and not THANKS.search(text):
            # "麻烦…谢谢" is a polite request: the next best category is what it is about.
            rest = [c for c in scores if c != "praise"]
            category = rest[0] if rest else "other"
        lex = self.lexicon_score(text)
        if scores.get("praise") and category != "praise" and lex >= 2.0 and "麻烦" not in text:
            # Thanks for a repair is praise, whatever was repaired.
            category = "praise"
        urgency, reasons = self.urgency(text, category)
        if urgency == "immediate" and category not in ("safety_hazard",):
            # An emergency is a safety matter whatever else it mentions (电梯困人, 燃气).
            category = "safety_hazard"
        sentiment = self.sentiment(text, urgency, category)
        if category != decided:  # a rule below overrode the classifier
            source, words = "rules", self.rule_words(text, tokens, category) or reasons
        return Analysis(
            category=category,
            category_scores=scores,
            sentiment=sentiment,
            polarity=polarity_of(sentiment),
            urgency=urgency,
            urgency_reasons=reasons,
            tokens=tokens,
            category_source=source,
            category_words=words,
        )
