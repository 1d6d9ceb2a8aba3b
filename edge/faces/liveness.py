"""Multi-frame liveness: is this a live head in front of the camera, or a photo or a screen?

A photo or a phone, however it is held, tilted, shifted or bent a little, moves as (nearly)
one plane; a real head does not: the nose sticks out of the plane of the eyes and mouth, so
when the head turns or nods it moves against them. Every pair of consecutive frames with a
face gives evidence from two cues (a third is reported), each measured against *one plane*
(a homography), not an affine map, so a tilted print's perspective is not taken for depth:

- **nose off the plane** (landmarks): the homography of the four corner landmarks (eyes,
  mouth corners) from the previous frame to this one predicts where the nose should be if
  the face were flat; the miss, in eye distances.
- **flow off the plane** (pixels): optical flow of a grid of points on the aligned 112x112
  crop (the crop the recogniser already made), checked forwards and backwards, one
  homography fitted robustly; the median miss of the points around the nose, in eye
  distances. It sees the nose region move against the rest even where the detector's nose
  landmark lags.
- **blink** (local change, reported, not counted): both eyes' change after the previous crop
  is registered onto this one by that plane, beyond the change of the nose and mouth bands.
  The old eye-band cue compared unregistered crops: on a moved print the misalignment alone
  changed the textured eye band more than the face as a whole (0.24-0.41 against a floor of
  0.16: the print attacks that opened doors).

A **sequential test** decides: the evidence of the pairs in the window (``frames`` frames)
adds up; "live" as soon as it reaches the bar (``threshold``), "not live" only once the
window is full. A face that moves is let through on its second frame when one pair is
strong; the bar itself is not lowered. A **texture penalty** (screen moire: isolated
high-frequency peaks) scales the evidence down; an optional single-frame anti-spoof model
(:class:`AntiSpoof`) caps it.

Limits, honestly: the floors come from synthetic attacks on real photos (bench/pad.py) and
the live sequences there are photos with a synthetic head turn, not recorded people; a
*video* of the resident replayed on a screen shows real parallax and blinks, and only the
texture cue (and a dual-sensor camera's IR check) stands against it; a 3-D mask passes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edge.faces.align import SIZE, TEMPLATE, align
from edge.faces.types import Face

# Floors (no evidence below) and "full" values (one pair is the whole bar) per cue, in eye
# distances, chosen on the dev half of bench/pad.py (it prints each kind's largest per-pair
# value): above the largest any dev print (still, moved, bent; camera noise and JPEG on every
# frame) reached on any pair of 20 frames: nose 0.18 (the detector's landmarks jitter), flow
# 0.015. Subtle live turns reached flow 0.14-0.40 at least once per sequence.
NOSE_FLOOR, NOSE_FULL = 0.22, 0.35
FLOW_FLOOR, FLOW_FULL = 0.02, 0.05
# The eyes' registered change is reported but adds no evidence: it no longer fires on prints
# (dev max 0.006; the unregistered cue gave 0.24-0.41), but a screen's flickering glare moves
# it up to 1.4, and without recordings of real blinks no floor can be set honestly.

_EYE_T = float(np.linalg.norm(TEMPLATE[1] - TEMPLATE[0]))  # eye distance in the crop, px
_gy, _gx = np.mgrid[30:101:6, 22:91:6]
_GRID = np.stack([_gx.ravel(), _gy.ravel()], 1).astype(np.float32).reshape(-1, 1, 2)
_NEAR_NOSE = np.linalg.norm(_GRID.reshape(-1, 2) - TEMPLATE[2], axis=1) < 0.6 * _EYE_T
_LK = {"winSize": (15, 15), "maxLevel": 2}
EYES, LOWER_BANDS = slice(40, 64), (64, 84)  # rows of the eyes, of nose and mouth


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


def nose_off_plane(src: np.ndarray, dst: np.ndarray) -> float:
    """How far the nose lands from where the plane of eyes and mouth corners puts it (the
    homography of those four landmarks src -> dst), in dst's eye distances."""
    corners = [0, 1, 3, 4]
    try:
        h = cv2.getPerspectiveTransform(src[corners].astype(np.float32),
                                        dst[corners].astype(np.float32))
    except cv2.error:  # degenerate landmarks (three in a line): no evidence
        return 0.0
    p = h @ np.array([src[2, 0], src[2, 1], 1.0])
    if abs(p[2]) < 1e-9:
        return 0.0
    eye = float(np.linalg.norm(dst[1] - dst[0])) or 1.0
    return float(np.linalg.norm(p[:2] / p[2] - dst[2])) / eye


def flow_off_plane(prev: np.ndarray, cur: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Optical flow of a point grid from one aligned grey crop to the next, one homography
    fitted (RANSAC); the median miss of the points near the nose, in eye distances, and the
    homography (None when too few points could be followed)."""
    p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, _GRID, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **_LK)
    # Points that do not come back to where they started are not followed reliably.
    good = ((st.ravel() == 1) & (st2.ravel() == 1)
            & (np.linalg.norm((back - _GRID).reshape(-1, 2), axis=1) < 0.5))
    if good.sum() < 12:
        return 0.0, None
    src, dst = _GRID.reshape(-1, 2)[good], p1.reshape(-1, 2)[good]
    h, _ = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
    if h is None:
        return 0.0, None
    miss = np.linalg.norm(cv2.perspectiveTransform(src[:, None], h)[:, 0] - dst, axis=1)
    near = _NEAR_NOSE[good]
    nose = float(np.median(miss[near])) if near.sum() >= 3 else 0.0
    return nose / _EYE_T, h


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32).ravel()
    b = b.astype(np.float32).ravel()
    a -= a.mean()
    b -= b.mean()
    d = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / d if d > 0 else 1.0


def eye_change(prev: np.ndarray, cur: np.ndarray, plane: np.ndarray | None) -> float:
    """The eyes' change once ``prev`` is registered onto ``cur`` by the face's plane, beyond
    the largest change of the bands below them (nose, mouth): local, not global."""
    if plane is None:
        return 0.0
    reg = cv2.warpPerspective(prev, plane, (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE)
    # A blink closes both eyes: the smaller of the two eyes' changes (a glare patch or a
    # shadow sliding over one eye is not a blink).
    eye = min(1 - _ncc(reg[EYES, x], cur[EYES, x]) for x in (slice(24, 56), slice(56, 88)))
    rest = max(1 - _ncc(reg[y:y + 24, 24:88], cur[y:y + 24, 24:88]) for y in LOWER_BANDS)
    return eye - rest


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


def _ramp(x: float, floor: float, full: float) -> float:
    return float(np.clip((x - floor) / (full - floor), 0.0, 1.0))


class LivenessTracker:
    """Feed it one camera's frames with the face found in each; read the verdict each time.

    One tracker per camera (per person approaching); call :meth:`reset` when the face leaves.
    ``update`` costs about a millisecond (the flow of ~130 points on the 112x112 crop, one
    homography) plus the crop's warp when the caller has not made it; the pipeline's
    ``liveness()`` runs it on the face thread.
    """

    def __init__(
        self, threshold: float = 0.5, frames: int = 6, anti_spoof: AntiSpoof | None = None
    ) -> None:
        self.threshold = threshold
        self.window = frames
        self.anti_spoof = anti_spoof
        self._marks: deque[np.ndarray] = deque(maxlen=frames)
        self._crop: np.ndarray | None = None
        # per frame after the first of the window: (nose, flow, blink) against the frame before
        self._pairs: deque[tuple[float, float, float]] = deque(maxlen=max(frames - 1, 1))
        self._model: deque[float] = deque(maxlen=frames)
        self._moire: deque[float] = deque(maxlen=frames)

    def reset(self) -> None:
        for d in (self._marks, self._pairs, self._model, self._moire):
            d.clear()
        self._crop = None

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
        marks = np.asarray(face.landmarks, np.float64)
        if self._marks and self._crop is not None:
            flow, plane = flow_off_plane(self._crop, crop)
            self._pairs.append((nose_off_plane(self._marks[-1], marks), flow,
                                eye_change(self._crop, crop, plane)))
        self._marks.append(marks)
        self._crop = crop
        self._moire.append(moire_score(crop))
        if self.anti_spoof is not None:
            self._model.append(float(self.anti_spoof.score(frame_bgr, face)))
        return self.verdict()

    def verdict(self) -> LivenessVerdict:
        n = len(self._marks)
        if n == 0:
            return LivenessVerdict(0.0, False, 0, "no_face")
        pairs = list(self._pairs)[-(n - 1):] if n > 1 else []
        # Per pair the stronger cue; over the window the evidence adds up.
        evidence = sum(max(_ramp(nz, NOSE_FLOOR, NOSE_FULL), _ramp(fl, FLOW_FLOOR, FLOW_FULL))
                       for nz, fl, _ in pairs)
        moire = float(np.median(self._moire))
        score = min(1.0, evidence) * (1 - moire)
        cues = {
            "parallax": round(max((p[0] for p in pairs), default=0.0), 4),
            "flow": round(max((p[1] for p in pairs), default=0.0), 4),
            "blink": round(max((p[2] for p in pairs), default=0.0), 4),
            "moire": round(moire, 3),
            "evidence": round(evidence, 3),
        }
        if self._model:
            model = float(np.mean(self._model))
            cues["model"] = round(model, 3)
            score = min(score, model) if score > 0 else 0.0
        score = round(float(score), 4)
        # Sequential: live as soon as the evidence reaches the bar (from the second frame
        # on); refused only when the whole window has shown too little.
        if n >= 2 and score >= self.threshold:
            reason = "live"
        elif n < self.window:
            reason = "collecting"
        elif moire > 0.5:
            reason = "screen_texture"
        elif self._model and cues["model"] < self.threshold:
            reason = "model"
        else:
            reason = "no_motion"
        return LivenessVerdict(score, reason == "live", n, reason, cues)
