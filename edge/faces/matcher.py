"""Turn a gallery hit into an accept/reject with a named reason.

Accept only when the best identity clears the threshold *and* beats the best other identity
by the margin (two look-alike residents must not open each other's doors). Wrong-match reports
("not this person") raise that resident's threshold a step each, up to a cap, and a probe at
least as close to one of their negative examples as to the resident is refused outright.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.faces.config import FacesConfig
from edge.faces.gallery import Gallery


@dataclass(frozen=True)
class Match:
    resident_id: str | None
    candidate_id: str | None
    similarity: float | None
    margin: float | None
    threshold: float | None
    reason: str


def effective_threshold(cfg: FacesConfig, negatives: int, base: float | None = None,
                        znorm: bool = False) -> float:
    """``base``: the threshold derived from the gallery (pipeline.threshold()); cfg.threshold
    only when no target rate is configured. With z-scores (``znorm``) each wrong-match
    report's step is scaled by the stranger tail's spread (cosine steps -> z units)."""
    step = min(cfg.negative_cap, cfg.negative_step * negatives)
    if znorm:
        step *= cfg.tail_znorm[1] / cfg.tail_centred[1]
    return (cfg.threshold if base is None else base) + step


def match(
    gallery: Gallery,
    emb: np.ndarray,
    negatives: dict[str, np.ndarray],
    cfg: FacesConfig,
    threshold: float | None = None,
    allowed: np.ndarray | None = None,
) -> Match:
    """``allowed``: a door's residents (Gallery.allowed_mask); a face at least as close to a
    resident outside them (another building's) as to the best one inside is refused."""
    hit = gallery.search(emb, allowed=allowed)
    if hit is None:
        return Match(None, None, None, None, None, "empty_gallery")
    sim = hit.similarity
    margin = sim - hit.second_similarity if hit.second_similarity is not None else sim
    neg = negatives.get(hit.resident_id)
    z = gallery.kind == "znorm"
    thr = effective_threshold(cfg, 0 if neg is None else len(neg), threshold, z)
    need = cfg.margin_znorm if z else cfg.margin  # the margin on the scale scores are on
    reason = "match"
    # Negatives scored as if they were the resident's templates, on the gallery's scale.
    if neg is not None and len(neg) and float(
        gallery.score_as_templates(neg, emb, hit.resident_id).max()
    ) >= sim:
        reason = "negative_example"
    elif sim < thr:
        reason = "unknown_face"
    elif hit.outside_similarity is not None and hit.outside_similarity + need > sim:
        reason = "ambiguous"  # looks as much like someone who may not pass here
    elif margin < need:
        reason = "ambiguous"
    rid = hit.resident_id if reason == "match" else None
    return Match(rid, hit.resident_id, round(sim, 4), round(margin, 4), round(thr, 4), reason)
