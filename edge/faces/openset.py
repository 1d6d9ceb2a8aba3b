"""Open-set decisions at a door: the threshold from the gallery size, and a decision over a
whole approach (k of the last n usable frames), not one frame.

A door is a 1:N search repeated on every frame while a person stands there, so a fixed
cosine threshold lets more strangers in as the community grows. Instead the operator sets a
target false-accept rate *per visit* (``[faces] target_fpir``, per door optional) and the box
derives the threshold from the number of enrolled residents N and the fusion rule:

    a stranger's visit is accepted as resident R when at least k of the last n usable frames
    name R above the threshold t (and no frame names another resident above t); its fused
    score is the k-th best of those frames. With ``p(t)`` the chance that the fused score of a
    stranger against ONE resident reaches t (a Gaussian fitted to the upper tail of measured
    stranger-vs-resident visits, bench/face.py), the chance against any of N residents is

        FPIR(t, N) = 1 - (1 - p(t))^N        ->  t = tail quantile at p = 1 - (1 - target)^(1/N)

The expected resident acceptance at t comes from a Gaussian fitted to the fused scores of
enrolled residents' visits (door-camera degradations), times the share of visits that reach
k usable frames at all (``genuine_usable``), shown by ``qilu-edge doctor`` and the
status API so an operator sees what the target costs. Both fits are in FacesConfig (tail_* and
genuine_*), measured on faces the fit did not see; docs/faces.md has the method and figures.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_STD = NormalDist()


@dataclass(frozen=True)
class Gaussian:
    mu: float
    sigma: float

    def survival(self, t: float) -> float:
        """P(score >= t)."""
        return 0.5 * math.erfc((t - self.mu) / (self.sigma * math.sqrt(2.0)))

    def quantile_above(self, p: float) -> float:
        """The t with P(score >= t) = p (accurate down to p ~ 1e-300)."""
        p = min(max(p, 1e-300), 1 - 1e-16)
        return self.mu - self.sigma * _STD.inv_cdf(p)


def per_pair_rate(target_fpir: float, n: int) -> float:
    """Per-resident rate p with 1 - (1 - p)^n = target (log1p/expm1: p is ~1e-8 here)."""
    return -math.expm1(math.log1p(-target_fpir) / max(n, 1))


def fpir(tail: Gaussian, t: float, n: int) -> float:
    """Chance that a stranger's visit is accepted as one of n residents at threshold t."""
    p = tail.survival(t)
    return -math.expm1(n * math.log1p(-min(p, 1 - 1e-16)))


def threshold_for(tail: Gaussian, target_fpir: float, n: int) -> float:
    return tail.quantile_above(per_pair_rate(target_fpir, n))


@dataclass(frozen=True)
class Operating:
    """What a target means at the current gallery size (doctor, status API, second factor)."""

    residents: int
    target_fpir: float
    threshold: float
    expected_resident_acceptance: float
    centred: bool
    scores: str = "centred"  # raw / centred / znorm: the scale of threshold and scores
    templates: int = 0  # templates searched (>= residents): what the threshold counts

    def as_dict(self) -> dict[str, float | int | bool | str]:
        return {
            "residents": self.residents,
            "templates": self.templates,
            "target_fpir_per_visit": self.target_fpir,
            "threshold": round(self.threshold, 4),
            "expected_resident_acceptance": round(self.expected_resident_acceptance, 4),
            # what the expectation rests on (docs/faces.md): a few real people, optimistic
            "acceptance_fitted_on": GENUINE_FIT_NOTE,
            "centred": self.centred,
            "scores": self.scores,
        }


# Where FacesConfig.genuine_* come from (bench/face.py, dev split; docs/faces.md).
GENUINE_FIT_PEOPLE = 4
GENUINE_FIT_NOTE = (f"dev split of bench/face.py: 51 door-camera visits of {GENUINE_FIT_PEOPLE} "
                    "people (leave-one-person-out error in docs/faces.md)")


def score_kind(cfg, templates: int) -> str:
    """The scale a gallery of this many templates scores on (Gallery.kind, for callers that
    have counts only)."""
    if cfg.centre_min is None or templates < max(cfg.centre_min, 2):
        return "raw"
    if cfg.znorm_min is not None and templates >= max(cfg.znorm_min, 3):
        return "znorm"
    return "centred"


def operating_point(cfg, residents: int, templates: int,
                    target_fpir: float | None = None, kind: str | None = None
                    ) -> Operating | None:
    """The threshold a per-visit target gives at this gallery size and the resident acceptance
    to expect there (cfg: FacesConfig; kind: the gallery's score scale, Gallery.kind). None
    when no target is set (fixed cfg.threshold)."""
    target = target_fpir if target_fpir is not None else cfg.target_fpir
    if target is None:
        return None
    kind = kind or score_kind(cfg, templates)
    tail = Gaussian(*{"raw": cfg.tail_raw, "centred": cfg.tail_centred,
                      "znorm": cfg.tail_znorm}[kind])
    gen = Gaussian(*{"raw": cfg.genuine_raw, "centred": cfg.genuine_centred,
                     "znorm": cfg.genuine_znorm}[kind])
    # A stranger is compared with every template (a resident's best one counts), and the
    # tails were fitted against one template per resident: the exponent is the templates.
    thr = threshold_for(tail, target, max(templates, residents, 1))
    return Operating(max(residents, 1), target, thr, cfg.genuine_usable * gen.survival(thr),
                     kind != "raw", kind, max(templates, residents, 1))


@dataclass(frozen=True)
class Frame:
    """One usable frame of a tracked face: its best identity and the per-frame verdict."""

    candidate_id: str | None
    similarity: float | None
    accepted: bool  # the matcher's verdict: above the threshold and clear of the margin


@dataclass(frozen=True)
class Fused:
    resident_id: str | None  # set when the approach is accepted
    candidate_id: str | None
    score: float | None  # k-th best score of the candidate in the window
    frames_used: int  # frames in the window when decided
    votes: int  # frames in the window naming the candidate above the threshold
    reason: str  # match, collecting, unknown_face, conflict


class Fusion:
    """k of the last n usable frames of ONE tracked face must name the same resident."""

    def __init__(self, k: int, n: int) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"fusion needs 1 <= k <= n (k={k}, n={n})")
        self.k, self.n = k, n
        self.window: deque[Frame] = deque(maxlen=n)

    def reset(self) -> None:
        self.window.clear()

    def add(self, frame: Frame) -> Fused:
        self.window.append(frame)
        return self.verdict()

    def verdict(self) -> Fused:
        votes: dict[str, list[float]] = {}
        for f in self.window:
            if f.accepted and f.candidate_id is not None and f.similarity is not None:
                votes.setdefault(f.candidate_id, []).append(f.similarity)
        used = len(self.window)
        if len(votes) > 1:  # two residents each above the threshold in one approach
            best = max(votes, key=lambda c: len(votes[c]))
            return Fused(None, best, _kth(votes[best], self.k), used, len(votes[best]), "conflict")
        if votes:
            (cand, sims), = votes.items()
            if len(sims) >= self.k:
                return Fused(cand, cand, _kth(sims, self.k), used, len(sims), "match")
        # No acceptance yet: the best candidate's k-th score, for the record.
        scores: dict[str, list[float]] = {}
        for f in self.window:
            if f.candidate_id is not None and f.similarity is not None:
                scores.setdefault(f.candidate_id, []).append(f.similarity)
        cand = max(scores, key=lambda c: sorted(scores[c])[-1]) if scores else None
        score = _kth(scores[cand], self.k) if cand is not None else None
        reason = "unknown_face" if used >= self.n else "collecting"
        return Fused(None, cand, score, used, len(votes.get(cand or "", [])), reason)


def _kth(sims: list[float], k: int) -> float:
    s = sorted(sims, reverse=True)
    return round(float(s[min(k, len(s)) - 1]), 4)


def fused_score(sims: list[float], k: int) -> float:
    """The fused score of one identity over a window: its k-th best frame (bench, fits)."""
    return _kth(sims, k) if len(sims) >= k else -1.0


# --- a simple IoU tracker on detector boxes -------------------------------------------------


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    bbox: tuple[float, float, float, float]
    last_seen: float
    fusion: Fusion
    recent: tuple[np.ndarray, ...] = ()  # last usable embeddings (appearance check)
    new: bool = True  # True on the frame that started it
    decided: bool = False  # an access event was recorded for this face
    last: Fused | None = None  # the fusion's verdict after its last usable frame


class FaceTracker:
    """Keeps one Fusion per face across frames: a box that overlaps the last box of a track
    (IoU >= min_iou) within max_gap_s continues it, unless the face itself changed (raw cosine
    below ``same_person`` to each of the track's last ``RECENT`` usable embeddings: a second
    person stepping into the same spot). Anything else starts a new track, so each person's
    approach is decided on its own frames and leaves its own denied event.

    Why the last two, not only the last: one odd frame of the same person (a key frame of
    the stream, the head at the far end of a turn) can fall below ``same_person`` against the
    frame before while it is close to the one before that; splitting there threw away the
    person's fusion and liveness and made them start over (bench/rush.py: one approach at
    three of eight doors took 6 looks instead of 3, docs/access.md "Rush hour: why one door's
    approaches needed 6 looks"). A new person is unlike both frames. The bar is unchanged.

    Why a track seen at the door's previous look lives on however long ago that look was:
    ``max_gap_s`` is a gap in *seeing* the face, not in *looking*. On an overloaded box the
    face scheduler drops stale frames and a door's looks come more than a second apart; with
    a plain time gap every look started a new track, so a person standing still in front of
    the door never gathered k frames (a live resident was never let in, a held-up photo got a
    ``too_few_frames`` refusal per look instead of one ``liveness`` refusal: tests/edge/access
    test_engine.py, at face_capacity_per_s = 0.7). A look that saw nobody (:meth:`missed`)
    ends that grace; the appearance check still splits off someone else in the same spot.
    """

    RECENT = 2  # usable embeddings per track the appearance check compares with (1: before)

    def __init__(self, k: int, n: int, *, min_iou: float = 0.3, max_gap_s: float = 1.0,
                 same_person: float = 0.35) -> None:
        self.k, self.n, self.min_iou, self.max_gap_s = k, n, min_iou, max_gap_s
        self.same_person = same_person
        self.tracks: list[Track] = []
        self._next = 1
        self._last_look = float("inf")  # the door's previous look (inf: none yet)

    def missed(self, now: float) -> None:
        """A look that saw no face: no track was seen at it."""
        self._last_look = now

    def update(self, bbox: tuple[float, float, float, float], now: float,
               emb: np.ndarray | None = None) -> Track:
        prev, self._last_look = self._last_look, now
        self.tracks = [t for t in self.tracks
                       if now - t.last_seen <= self.max_gap_s or t.last_seen >= prev]
        best = max(self.tracks, key=lambda t: iou(t.bbox, bbox), default=None)
        fresh = best is None or iou(best.bbox, bbox) < self.min_iou
        if not fresh and emb is not None and best is not None and best.recent:
            fresh = max(float(e @ emb) for e in best.recent) < self.same_person
            if fresh:
                self.tracks.remove(best)
        if fresh or best is None:
            best = Track(self._next, bbox, now, Fusion(self.k, self.n))
            self._next += 1
            self.tracks.append(best)
        else:
            best.new = False
        best.bbox, best.last_seen = bbox, now
        if emb is not None:
            best.recent = (*best.recent, emb)[-self.RECENT:]
        return best

    def reset(self) -> None:
        self.tracks.clear()
        self._last_look = float("inf")
