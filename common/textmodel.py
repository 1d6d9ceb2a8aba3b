"""Linear models over character n-grams: category, polarity, urgency and the emergency detector.

Why character n-grams: residents write colloquially, with dialect words (俺, 咋, 嘞), typos and
homophones (然气), no spaces and no textbook keywords. Characters 1–3 long survive all of that
where a word list or a segmenter does not, and a linear model over them trains in seconds on
a few thousand messages and scores one message in well under a millisecond.

Training (``train``) uses scikit-learn's logistic regression once, at install time
(scripts/setup.sh), by ``qilu-edge report retrain`` or in a child process; the box itself only
loads the exported artefact (``TextModel``: the n-gram vocabulary and one weight matrix per
head, numpy only), so the daemon never imports scikit-learn or scipy (~105 MB of RSS).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import opencc

from common import textlexicon as lexicon
from common.resources import shipped

HEADS = ("category", "polarity", "urgency", "emergency")
# The detector's second model: complement naive Bayes over the same n-grams (present or not,
# not scaled to unit length), calibrated on the training rows. Older artefacts lack it.
NB_HEAD = "emergency_nb"
FIELDS = ("category", "polarity", "urgency")
POLARITIES = ("negative", "neutral", "positive")
URGENCIES = ("immediate", "high", "normal", "low")
NGRAM = (1, 3)
DEFAULT_C = {"category": 16.0, "polarity": 32.0, "urgency": 32.0, "emergency": 8.0}
TRAIN_DIR = "tests/data/text/train"
EXTRA_TRAINING = "tests/data/community_messages.csv"
ARTEFACT = "models/text/model.npz"
_DIGITS = re.compile(r"[0-9０-９]+")
# Where it happened is no evidence of what happened. The corpus's writers gave emergencies an
# address far more often than ordinary reports, so the n-grams of "0号楼 0单元" had learnt
# to mean an emergency: "3号楼 暖气不热", "5号楼 2单元 楼道灯不亮" were immediate (probe 13,
# 2026-12-01; a blind set of 360 messages with addresses: 59 of 240 ordinary ones). Dropped
# before the n-grams (after numbers became 0): building (号楼, 栋, 幢, 座, 号院, "0#"), unit
# and the room right after it, floor, room, "0-0-0"; Chinese numerals too. The emergency
# rules read the text with its addresses (edge/reports/emergency.py).
_CN_NUM = "[0一二两三四五六七八九十]{1,3}"
_ROOM = "(?:号房|房间|室|户)"
_PLACE = re.compile(
    rf"{_CN_NUM} ?(?:号宿舍楼|号院楼|号楼|号院|栋|幢|#楼?|座)"
    rf"|[a-z] ?座|{_CN_NUM} ?单元(?: ?0(?: ?{_ROOM}|(?! ?[个岁分点天年月日小位名人口])))?"
    rf"|{_CN_NUM} ?层|0 ?楼(?![道梯顶房上下里])|0 ?{_ROOM}|0(?: ?- ?0){{1,3}}"
)
_SPACE = re.compile(r"\s+")
_CJK2 = re.compile(r"[\u4e00-\u9fff]")


class TrainingError(ValueError):
    """The training rows are unusable; the message names the file and row."""


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, every number as 0, addresses dropped
    (`_PLACE`), spaces collapsed, the common typos/homophones and pinyin of emergency words
    spelt in characters (canonical)."""
    t = _PLACE.sub(" ", _DIGITS.sub("0", unicodedata.normalize("NFKC", text).lower()))
    return canonical(_SPACE.sub(" ", t).strip())


def canonical(text: str) -> str:
    """Emergency words as residents' phones mistype them — traditional characters (a phone
    left on a traditional input method, a message forwarded from Hong Kong or Taiwan: 煤氣 →
    煤气), pinyin-IME and speech-recognition homophones (着活 → 着火, 酶气 → 煤气, 电题 → 电梯)
    and plain pinyin (zhao huo le, louqi) — spelt the one way the rules and n-grams know.
    Expects lower case."""
    if _TRADITIONAL.search(text):
        text = _T2S.convert(text)
    if _LATIN.search(text):
        joined = _LATIN_GAP.sub("", text)
        text = _PINYIN_RE.sub(lambda m: lexicon.PINYIN[m.group(0)], joined)
    return _HOMOPHONE_RE.sub(lambda m: _HOMOPHONE_TO[m.group(0)], text)


# OpenCC's own tables (the C++ library's Python binding), phrase-aware: 乾淨 → 干净 but 乾隆
# stays. A blind check (2026-12-01) found no emergency rule matched any of 16 traditional
# messages; the model alone caught 15. Only a text with a character that is traditional on its
# own is converted: OpenCC's phrases also rewrite some simplified text (电梯一坏 → 电梯一坯).
_T2S = opencc.OpenCC("t2s")
_TRADITIONAL = re.compile("[" + "".join(
    c for c in map(chr, range(0x4E00, 0xA000)) if _T2S.convert(c) != c) + "]")
_LATIN = re.compile(r"[a-z]{2}")
_LATIN_GAP = re.compile(r"(?<=[a-z]) (?=[a-z])")
# Two-letter abbreviations (rq = 燃气) only standing alone; syllables anywhere.
_PINYIN_RE = re.compile("|".join(w if len(w) > 2 else f"(?<![a-z]){w}(?![a-z])"
                                 for w in sorted(lexicon.PINYIN, key=len, reverse=True)))
_HOMOPHONE_TO = {typo: right for right, typos in lexicon.HOMOPHONES.items() for typo in typos}
_HOMOPHONE_RE = re.compile("|".join(sorted(_HOMOPHONE_TO, key=len, reverse=True)))


def lexicon_features(text: str) -> list[str]:
    """The community lexicon as features: which sentiment words occur, negated or not, and
    politeness/thanks/sarcasm markers (quotes around praise). The model learns their weight."""
    out = []
    for table, tag in ((lexicon.POSITIVE, "pos"), (lexicon.NEGATIVE, "neg")):
        for word in table:
            i = text.find(word)
            if i < 0:
                continue
            before = text[max(0, i - 3) : i]
            neg = any(before.endswith(n) for n in lexicon.NEGATORS)
            out.append(f"L:{tag}{'~' if neg else ''}")
    out += [f"L:{k}" for k in markers(text)]
    if re.search(r"呵呵|真行|真是服了|佩服|可真会", text):
        out.append("L:irony")
    return out


_SARCASM = re.compile(r"[\"“”'‘’「」]\s*[^\"“”'‘’「」]{0,3}(负责|高效|及时|热心|贴心|好|棒|"
                      r"周到|敬业|会办事|给力|靠谱|专业|用心|效率|速度|服务|快|勤快|尽职)")
_THANKS_BUT = re.compile(r"(谢谢|感谢|谢了|多谢)[^。!?！？]{0,16}"
                         r"(但是|可是|不过|就是|只是|可|但)")
_POLITE = re.compile(r"(麻烦|请|劳驾|帮忙|帮我|能不能|可以).{2,}(谢谢|谢了|感谢|多谢)"
                     r"[啊啦了呀哈!！。.~]*$")
_FORMAL = re.compile(r"(请|望|烦请).{0,6}(立即|尽快|速|马上|处理|维修|到场|联系)"
                     r"[^!！]{0,12}[。.]?$")


def markers(text: str) -> list[str]:
    """Politeness and sarcasm markers of the normalised text (features, and the polarity
    rules of the analyser): quoted praise (物业真是太“负责”了), "谢谢…但是/可是",
    a calm form-style request ending the message (请立即处理。)."""
    out = []
    if _SARCASM.search(text):
        out.append("sarcasm")
    if _THANKS_BUT.search(text):
        out.append("thanks_but")
    if _FORMAL.search(text) and not re.search(r"[!！]|快来|救命|吓|怕", text):
        out.append("formal")
    if _POLITE.search(text):
        out.append("polite")
    return out


def features(text: str) -> list[str]:
    """Character 1–3-grams of the normalised text plus lexicon features."""
    t = normalise(text)
    out: list[str] = []
    lo, hi = NGRAM
    for n in range(lo, hi + 1):
        out.extend(t[i : i + n] for i in range(len(t) - n + 1))
    out.extend(lexicon_features(t))
    out.append("^")  # every message has one feature, even an empty one
    return out


def features_with_words(text: str) -> list[str]:
    """The n-gram features plus jieba's words ("w:燃气表"): the bench's +words variant."""
    import jieba  # the bench's variant only; ~1 s and ~80 MB on first use

    jieba.setLogLevel(30)
    words = jieba.lcut(normalise(text))
    return features(text) + [f"w:{w}" for w in words if len(w.strip()) > 1]


FEATURIZERS = {"ngram": features, "ngram+words": features_with_words}


# --- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    source: str
    text: str
    category: str
    polarity: str
    urgency: str


def read_rows(path: Path, source: str = "") -> list[Row]:
    """Labelled rows of one CSV (id, [source], text, category, polarity, urgency)."""
    out = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for i, r in enumerate(csv.DictReader(f), start=2):
                text = (r.get("text") or "").strip()
                labels = [(r.get(k) or "").strip() for k in FIELDS]
                if not text or not all(labels):
                    raise TrainingError(f"{path}:{i}: text, category, polarity, urgency required")
                if labels[1] not in POLARITIES or labels[2] not in URGENCIES:
                    raise TrainingError(f"{path}:{i}: polarity/urgency {labels[1:]!r} unknown")
                out.append(Row(r.get("id") or f"{path.stem}:{i}", r.get("source") or source,
                               text, *labels))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TrainingError(f"{path}: {e}") from e
    return out


def shipped_rows() -> list[Row]:
    """The shipped training corpus: tests/data/text/train/*.csv and the project's own set."""
    rows: list[Row] = []
    for p in sorted(shipped(TRAIN_DIR).glob("*.csv")):
        rows += read_rows(p)
    rows += read_rows(shipped(EXTRA_TRAINING), source="project")
    return rows


# --- the artefact --------------------------------------------------------------------------


class TextModel:
    """Loaded weights: vocabulary → row; per head a (vocab, classes) matrix and intercepts."""

    def __init__(self, vocab: dict[str, int], heads: dict[str, tuple[list[str], np.ndarray,
                 np.ndarray]], meta: dict[str, Any]) -> None:
        self.vocab = vocab
        self.heads = heads
        self.meta = meta

    def featurize(self, text: str) -> list[str]:
        return FEATURIZERS[self.meta.get("features", "ngram")](text)

    def index(self, feats: Iterable[str]) -> np.ndarray:
        v = self.vocab
        return np.fromiter({v[f] for f in feats if f in v}, dtype=np.int64)

    def proba(self, head: str, idx: np.ndarray) -> dict[str, float]:
        classes, w, b = self.heads[head]
        # Binary features scaled to unit length, as in training (the NB head: not scaled).
        scale = 1.0 if head == NB_HEAD else max(1.0, np.sqrt(len(idx)))
        z = b + w[idx].sum(axis=0) / scale
        if len(classes) == 2 and w.shape[1] == 1:
            # Clipped: the NB head's unscaled sums can reach hundreds (exp would overflow).
            p1 = 1.0 / (1.0 + np.exp(-np.clip(z[0], -50.0, 50.0)))
            return {classes[0]: float(1 - p1), classes[1]: float(p1)}
        e = np.exp(z - z.max())
        e /= e.sum()
        return {c: float(x) for c, x in zip(classes, e, strict=True)}

    def p_emergency(self, idx: np.ndarray) -> float:
        """The detector's P(immediate): the logistic emergency head and, when the artefact has
        it, the naive-Bayes one, averaged as log-odds (leave-one-writer-out over ten writer
        groups: 29 instead of 43 emergencies missed at the same false alarms; NB reads a new
        writer's rare n-grams by their counts, the regression by what they add to the rest)."""
        p = self.proba("emergency", idx)["yes"]
        if NB_HEAD not in self.heads:
            return p
        q = self.proba(NB_HEAD, idx)["yes"]
        return float(1.0 / (1.0 + np.exp(-(_logit(p) + _logit(q)) / 2)))

    def explain(self, head: str, idx: np.ndarray, label: str, top: int = 6) -> list[str]:
        """The n-grams that pushed `label` up most (for the evidence shown to staff)."""
        classes, w, _ = self.heads[head]
        if label not in classes or not len(idx):
            return []
        k = classes.index(label)
        col = w[idx, 0] if w.shape[1] == 1 else w[idx, k] - np.delete(w[idx], k, axis=1).max(1)
        if w.shape[1] == 1 and k == 0:
            col = -col
        inv = self._inverse()
        order = np.argsort(-col)[: top * 3]
        words: list[str] = []
        for j in order:
            f = inv[int(idx[j])]
            if col[j] <= 0 or f.startswith("L:") or len(_CJK2.findall(f)) < 2:
                continue  # evidence a person can read: two or more Chinese characters
            if any(f in w_ for w_ in words):
                continue
            words = [w_ for w_ in words if w_ not in f] + [f]
            if len(words) >= top:
                break
        return words

    def _inverse(self) -> dict[int, str]:
        if not hasattr(self, "_inv"):
            self._inv = {i: f for f, i in self.vocab.items()}
        return self._inv

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {}
        for h, (classes, w, b) in self.heads.items():
            arrays[f"{h}.w"] = w.astype(np.float32)
            arrays[f"{h}.b"] = b.astype(np.float32)
            arrays[f"{h}.classes"] = np.array(classes)
        arrays["vocab"] = np.array(sorted(self.vocab, key=self.vocab.__getitem__))
        arrays["meta"] = np.array(json.dumps(self.meta, ensure_ascii=False))
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TextModel:
        with np.load(path, allow_pickle=False) as z:
            vocab = {str(f): i for i, f in enumerate(z["vocab"])}
            heads = {}
            for h in (*HEADS, NB_HEAD):
                if f"{h}.w" in z:
                    heads[h] = ([str(c) for c in z[f"{h}.classes"]], z[f"{h}.w"], z[f"{h}.b"])
            meta = json.loads(str(z["meta"]))
        return cls(vocab, heads, meta)


def _logit(v: float) -> float:
    return float(np.log(max(v, 1e-9) / max(1.0 - v, 1e-9)))


def corpus_digest(rows: Sequence[Row]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update(f"{r.text}\t{r.category}\t{r.polarity}\t{r.urgency}\n".encode())
    return h.hexdigest()[:16]


def train(rows: Sequence[Row], c: dict[str, float] | None = None,
          meta: dict[str, Any] | None = None, featurize: str = "ngram") -> TextModel:
    """Fit the four heads on `rows` (scikit-learn, imported here only)."""
    from scipy.sparse import csr_matrix
    from threadpoolctl import threadpool_limits

    if len(rows) < 20:
        raise TrainingError(f"{len(rows)} labelled rows: too few to train on")
    c = {**DEFAULT_C, **(c or {})}
    docs = [FEATURIZERS[featurize](r.text) for r in rows]
    vocab: dict[str, int] = {}
    for d in docs:
        for f in d:
            vocab.setdefault(f, len(vocab))
    indptr, indices, values = [0], [], []
    for d in docs:
        ids = sorted({vocab[f] for f in d})
        indices += ids
        values += [1.0 / max(1.0, np.sqrt(len(ids)))] * len(ids)
        indptr.append(len(indices))
    x = csr_matrix((values, indices, indptr), shape=(len(docs), len(vocab)), dtype=np.float64)
    labels = {
        "category": [r.category for r in rows],
        "polarity": [r.polarity for r in rows],
        "urgency": [r.urgency for r in rows],
        "emergency": ["yes" if r.urgency == "immediate" else "no" for r in rows],
    }
    # One BLAS thread: several threads on a 2-core box shared with the daemon make lbfgs ~10x
    # slower, not faster.
    with threadpool_limits(1):
        heads = {h: _fit(h, x, labels[h], c[h]) for h in HEADS if h != "emergency"}
        heads["emergency"] = _fit_nb("emergency", x, labels["emergency"], c["emergency"])
        heads[NB_HEAD] = _fit_cnb(x, labels["emergency"])
    info = {"rows": len(rows), "corpus": corpus_digest(rows), "c": c, "features": featurize,
            **(meta or {})}
    return TextModel(vocab, heads, info)


def _fit_nb(h: str, x: Any, y: list[str], c: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Logistic regression over features scaled by their naive-Bayes log-count ratio
    (NBSVM, Wang & Manning 2012): an n-gram seen mostly in emergencies starts out weighted as
    such, so a new writer's wording that shares a few of them moves P(immediate) more.
    Leave-one-writer-out (six groups): the same recall at ~0.2-0.3 points fewer false alarms
    than plain features. The ratio is folded into the weights (w·r): the artefact and the box's
    scoring stay exactly as they are."""
    from scipy.sparse import diags

    yes = np.array([v == "yes" for v in y])
    present = (x > 0).astype(np.float64)
    p = np.asarray(present[yes].sum(axis=0)).ravel() + 1.0
    q = np.asarray(present[~yes].sum(axis=0)).ravel() + 1.0
    r = np.log((p / p.sum()) / (q / q.sum()))
    classes, w, b = _fit(h, x @ diags(r), y, c)
    return classes, w * r[:, None], b


def _fit_cnb(x: Any, y: list[str], alpha: float = 0.3) -> tuple[list[str], np.ndarray,
                                                              np.ndarray]:
    """Complement naive Bayes over which n-grams occur, as a linear head: its log-odds are a
    sum of per-n-gram weights, mapped to a probability by a logistic fit on the training rows
    (Platt). A second model type beside the logistic head (leave-one-writer-out, ten writer
    groups: the two averaged miss a third fewer emergencies at the same false alarms than the
    logistic head alone; most of what both missed were indirect descriptions with no rule
    hit). Stored like the other heads; its features are not scaled (TextModel.proba)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import ComplementNB

    present = (x > 0).astype(np.float64)
    nb = ComplementNB(alpha=alpha).fit(present, y)
    k = list(nb.classes_)
    d = nb.feature_log_prob_[k.index("yes")] - nb.feature_log_prob_[k.index("no")]
    cal = LogisticRegression().fit((present @ d)[:, None], y)
    sign = 1.0 if cal.classes_[1] == "yes" else -1.0
    w = sign * cal.coef_[0, 0] * d
    return ["no", "yes"], w[:, None], np.array([sign * cal.intercept_[0]])


def _fit(h: str, x: Any, y: list[str], c: float) -> tuple[list[str], np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    if len(set(y)) < 2:
        raise TrainingError(f"{h}: the training rows hold one class only ({y[0]})")
    # Balanced classes: a missed emergency (rare class) costs more than its frequency says.
    lr = LogisticRegression(C=c, max_iter=1000, class_weight="balanced")
    lr.fit(x, y)
    return [str(k) for k in lr.classes_], lr.coef_.T.copy(), lr.intercept_.copy()
