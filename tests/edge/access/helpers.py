"""Shared pieces of the access tests and bench/access.py: door frames and live-looking
sequences made from the test photos, and enrolment through the real face pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.standard import Resident
from edge.store import faces as store_faces

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"


def photo(name: str) -> np.ndarray:
    img = cv2.imread(str(FACES / name))
    assert img is not None, f"missing test photo {name} (tests/data/fetch_faces.py)"
    return img


def door_frame(image: np.ndarray, pipeline, face_px: int = 150) -> np.ndarray:
    """640x480 frame with the photo's face ~face_px wide in the middle."""
    faces = pipeline.detector.detect(image)
    box = faces[0].bbox if faces else (0, 0, image.shape[1], 1)
    scale = face_px / max(box[2], 1)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = (box[0] + box[2] / 2) * scale, (box[1] + box[3] / 2) * scale
    frame = np.full((480, 640, 3), 90, np.uint8)
    ox, oy = int(320 - cx), int(240 - cy)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(640, ox + small.shape[1]), min(480, oy + small.shape[0])
    frame[y0:y1, x0:x1] = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return frame


# A turn that never repeats with a short period, so a door that samples every n-th frame
# still sees the head move (a periodic sequence can alias to a still picture).
TURN = tuple(round(0.9 * float(np.sin(i * 2.4)), 3) for i in range(24))


def head_turn(frame: np.ndarray, pipeline, amounts: tuple = TURN) -> list[np.ndarray]:
    """Frames of a head turning: the nose region is displaced against eyes and mouth (a
    non-rigid change a flat photo cannot make). We have no video of a live person offline."""
    face = pipeline.detector.detect(frame)[0]
    nose, eye = face.landmarks[2], face.eye_distance
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.exp(-(((xx - nose[0]) ** 2 + (yy - nose[1]) ** 2) / (2 * (0.35 * eye) ** 2)))
    out = []
    for a in amounts:
        mapx = (xx - a * eye * g).astype(np.float32)
        out.append(cv2.remap(frame, mapx, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f)
    return folder


def enrol(store, pipeline, resident_id: str, image: np.ndarray, **fields) -> None:
    """Add a resident and one face template (synchronously, on the store)."""
    store_faces.add_resident(store, Resident(id=resident_id, name=resident_id, **fields))
    fr = pipeline.analyse_sync(image, max_faces=1)
    emb = fr.faces[0].embedding
    assert emb is not None, "enrolment photo failed the quality gate"
    store_faces.add_template(store, resident_id, emb, fr.faces[0].quality.score, "sface", "test")
