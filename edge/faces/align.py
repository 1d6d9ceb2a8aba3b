"""5-point similarity alignment to the 112x112 ArcFace/SFace template."""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 112
# The reference positions SFace was trained with (right eye, left eye, nose, mouth corners).
TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping src onto dst (Umeyama).

    Closed form and deterministic (unlike a RANSAC estimator), so alignment of the same face
    gives the same crop every time.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    m = similarity_transform(landmarks, TEMPLATE)
    return cv2.warpAffine(image, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
