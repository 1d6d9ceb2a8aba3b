"""Quality gates, each with a named reason, checked in order (cheapest and most telling first).

The gates reject what would make a poor template or an unreliable match: a face too small to
carry detail, a blurred one, one turned away, one too dark or blown out, or a doubtful
detection. Limits come from ``[faces]`` in the config.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.faces.config import FacesConfig
from edge.faces.types import Face, Quality


def assess(
    face: Face, frame_size: tuple[int, int], aligned: np.ndarray, cfg: FacesConfig,
    door: bool = False,
) -> Quality:
    """``door``: a door-camera frame, judged with the looser visit_min_* blur and light gates
    (a template is made from an enrolment photo; a frame only adds one vote of k)."""
    min_sharp = cfg.visit_min_sharpness if door else cfg.min_sharpness
    min_bright = cfg.visit_min_brightness if door else cfg.min_brightness
    lm = face.landmarks
    eye_px = face.eye_distance
    re, le, nose = lm[0], lm[1], lm[2]
    eye_mid = (re + le) / 2
    # Yaw: the nose leaves the eyes' midline when the head turns (about 0 frontal).
    yaw = abs(float(nose[0] - eye_mid[0])) / max(eye_px, 1e-6)
    roll = math.degrees(math.atan2(float(le[1] - re[1]), float(le[0] - re[0])))
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    # Inner face only: background and hair at the crop's edges would dominate otherwise.
    inner = gray[16:104, 16:96]
    sharp = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    bright = float(inner.mean())
    x, y, w, h = face.bbox
    fw, fh = frame_size
    inside = x >= -0.05 * w and y >= -0.05 * h and x + w <= fw + 0.05 * w and y + h <= fh + 0.05 * h
    metrics = {
        "eye_px": round(eye_px, 1),
        "sharpness": round(sharp, 1),
        "yaw": round(yaw, 3),
        "roll_deg": round(roll, 1),
        "brightness": round(bright, 1),
        "detector_score": round(face.score, 3),
    }
    reason = "ok"
    if eye_px < cfg.min_eye_px:
        reason = "face_too_small"
    elif not inside:
        reason = "partial_face"
    elif yaw > cfg.max_yaw or abs(roll) > cfg.max_roll_deg:
        reason = "pose"
    elif bright < min_bright:
        reason = "too_dark"
    elif bright > cfg.max_brightness:
        reason = "too_bright"
    elif sharp < min_sharp:
        reason = "blurry"
    # A 0..1 score to rank an enrolee's photos: size, sharpness and frontality saturate.
    score = (
        min(1.0, eye_px / (2 * cfg.min_eye_px))
        * min(1.0, sharp / (3 * max(cfg.min_sharpness, 1)))
        * max(0.0, 1 - yaw / (2 * cfg.max_yaw))
        * face.score
    )
    return Quality(ok=reason == "ok", reason=reason, score=round(score, 4), metrics=metrics)
