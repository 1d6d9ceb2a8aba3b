"""Plain results passed between the pipeline stages and to callers (the access engine)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the frame it was found in."""

    bbox: tuple[float, float, float, float]  # x, y, w, h
    landmarks: np.ndarray  # (5, 2): right eye, left eye, nose, right mouth, left mouth
    score: float  # detector confidence 0..1

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))


@dataclass(frozen=True)
class Quality:
    ok: bool
    reason: str  # "ok" or the first failed gate: face_too_small, blurry, pose, too_dark, ...
    score: float  # 0..1, higher is better; kept with enrolled templates
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FaceResult:
    face: Face
    quality: Quality
    embedding: np.ndarray | None  # (128,) float32, L2-normalised; None if quality failed
    aligned: np.ndarray | None = None  # 112x112 BGR crop (stays in memory, never stored)


@dataclass(frozen=True)
class FrameResult:
    faces: list[FaceResult]  # largest face first
    timings_ms: dict[str, float]
    frame_size: tuple[int, int]  # width, height


@dataclass(frozen=True)
class Decision:
    """The answer to "who is this?" for one frame.

    ``resident_id`` is set only when the best identity passes the threshold (raised by any
    wrong-match reports for that resident) and beats the second-best identity by the margin.
    """

    id: str  # quote it in a wrong-match report (POST /api/v1/faces/wrong-match)
    resident_id: str | None
    similarity: float | None  # cosine of the best identity, -1..1
    margin: float | None  # best minus second-best identity
    reason: str  # match, no_face, quality:<gate>, unknown_face, ambiguous, negative_example,
    #              empty_gallery
    candidate_id: str | None = None  # best identity even when not accepted
    threshold: float | None = None  # the effective threshold applied to the candidate
    faces: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    thumbnail_jpeg: bytes | None = None  # only with [faces] keep_thumbnails = true

    @property
    def matched(self) -> bool:
        return self.resident_id is not None
