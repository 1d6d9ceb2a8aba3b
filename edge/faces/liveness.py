"""Multi-frame liveness: is this a live head in front of the camera, or a photo or a screen?

Cues, computed over the last ``frames`` frames with a face:

- **parallax** (non-rigid landmark motion): a flat photo or phone moved in front of the camera
  moves its five landmarks by (nearly) an affine map, however it is tilted or shifted. A real
  head turning or nodding moves the nose against the plane of eyes and mouth, which no affine
  map explains. We fit the best affine map from each frame's landmarks to the first frame's
  and measure what is left, relative to the eye distance.
- **blink / local change**: on the aligned 112x112 crop, the eye band changes (blink, gaze)
  more than the face as a whole. A photo changes uniformly (or not at all).
- **texture** (a penalty): a screen filmed by a camera shows moiré, which appears as isolated
  strong peaks in the high-frequency spectrum of the face crop.

Score 0..1 = max(parallax, blink) x (1 - texture penalty), optionally combined with a
single-frame anti-spoof model (:class:`AntiSpoof`). Limits, honestly: a *video* of the
resident replayed on a good screen shows real parallax and blinks, and only the texture cue
stands against it; a 3-D mask passes. A stronger model plugs in through ``AntiSpoof``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edge.faces.align import align
from edge.faces.types import Face

# Normalisers, from measurement (bench/face.py prints them): a print moved, rotated, scaled
# and sheared in front of the camera leaves an affine residual of up to ~0.055 eye distances
# (detector jitter) and an eye-band change of up to ~0.15; a head turn that swings the nose by
# 0.3 eye distances leaves ~0.12. So a live user must turn or nod the head a little.
PARALLAX_FLOOR = 0.06
PARALLAX_FULL = 0.11
BLINK_FLOOR = 0.16  # not calibrated on real blinks (no video of people offline)
BLINK_FULL = 0.35


class AntiSpoof(Protocol):
    """A single-frame anti-spoof model (e.g. a MiniFASNet ONNX): 0 = spoof .. 1 = live."""

    def score(self, frame_bgr: np.ndarray, face: Face) -> float: ...


@dataclass(frozen=True)
class LivenessVerdict:
    score: float  # 0..1
    live: bool
    frames: int  # frames with a face in the window
    reason: str  # live, collecting, no_motion, screen_texture, no_face, model
    cues: dict[str, float] = field(default_factory=dict)


def _affine_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS of what the best affine map src -> dst leaves, in units of dst's eye distance."""
    a = np.hstack([src, np.ones((len(src), 1))])
    sol, *_ = np.linalg.lstsq(a, dst, rcond=None)
    res = a @ sol - dst
    eye = float(np.linalg.norm(dst[1] - dst[0])) or 1.0
    return float(np.sqrt((res**2).sum(1).mean())) / eye


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32).ravel()
    b = b.astype(np.float32).ravel()
    a -= a.mean()
    b -= b.mean()
    d = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / d if d > 0 else 1.0


def moire_score(gray: np.ndarray) -> float:
    """Peak-to-median ratio of the high-frequency spectrum, mapped to 0..1."""
    f = np.abs(np.fft.fftshift(np.fft.fft2(gray.astype(np.float32) - gray.mean())))
    h, w = f.shape
    yy, xx = np.ogrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    band = f[(r > min(h, w) * 0.25) & (r < min(h, w) * 0.5)]
    if band.size == 0:
        return 0.0
    ratio = float(band.max() / (np.median(band) + 1e-6))
    return float(np.clip((ratio - 25.0) / 25.0, 0.0, 1.0))


class LivenessTracker:
    """Feed it one camera's frames with the face found in each; read the verdict each time.

    One tracker per camera (per person approaching); call :meth:`reset` when the face leaves.
    ``update`` costs well under a millisecond plus one 112x112 warp; the pipeline's
    ``liveness()`` runs it on the face thread.
    """

    def __init__(
        self, threshold: float = 0.5, frames: int = 6, anti_spoof: AntiSpoof | None = None
    ) -> None:
        self.threshold = threshold
        self.window = frames
        self.anti_spoof = anti_spoof
        self._marks: deque[np.ndarray] = deque(maxlen=frames)
        self._crops: deque[np.ndarray] = deque(maxlen=frames)
        self._model: deque[float] = deque(maxlen=frames)
        self._moire: deque[float] = deque(maxlen=frames)

    def reset(self) -> None:
        for d in (self._marks, self._crops, self._model, self._moire):
            d.clear()

    def update(
        self, frame_bgr: np.ndarray, face: Face | None, aligned: np.ndarray | None = None
    ) -> LivenessVerdict:
        """Add one frame; ``aligned`` is the face's 112x112 crop when the caller has it."""
        if face is None:
            self.reset()
            return LivenessVerdict(0.0, False, 0, "no_face")
        if aligned is None:
            aligned = align(frame_bgr, face.landmarks)
        crop = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
        self._marks.append(np.asarray(face.landmarks, np.float64))
        self._crops.append(crop)
        self._moire.append(moire_score(crop))
        if self.anti_spoof is not None:
            self._model.append(float(self.anti_spoof.score(frame_bgr, face)))
        return self.verdict()

    def verdict(self) -> LivenessVerdict:
        n = len(self._marks)
        if n == 0:
            return LivenessVerdict(0.0, False, 0, "no_face")
        first = self._marks[0]
        parallax = max((_affine_residual(m, first) for m in list(self._marks)[1:]), default=0.0)
        blink = 0.0
        c0 = self._crops[0]
        for c in list(self._crops)[1:]:
            eye_change = 1 - _ncc(c0[36:68, 20:92], c[36:68, 20:92])
            face_change = 1 - _ncc(c0, c)
            blink = max(blink, eye_change - face_change)
        p_score = float(
            np.clip((parallax - PARALLAX_FLOOR) / (PARALLAX_FULL - PARALLAX_FLOOR), 0, 1)
        )
        b_score = float(np.clip((blink - BLINK_FLOOR) / (BLINK_FULL - BLINK_FLOOR), 0, 1))
        moire = float(np.median(self._moire))
        score = max(p_score, b_score) * (1 - moire)
        cues = {
            "parallax": round(parallax, 4),
            "blink": round(blink, 4),
            "moire": round(moire, 3),
        }
        if self._model:
            model = float(np.mean(self._model))
            cues["model"] = round(model, 3)
            score = min(score, model) if score > 0 else 0.0
        score = round(float(score), 4)
        if n < self.window:
            reason = "collecting"
        elif score >= self.threshold:
            reason = "live"
        elif moire > 0.5:
            reason = "screen_texture"
        elif self._model and cues["model"] < self.threshold:
            reason = "model"
        else:
            reason = "no_motion"
        return LivenessVerdict(score, reason == "live", n, reason, cues)
