"""Shared pieces of the access tests and bench/access.py: door frames and live-looking
sequences made from the test photos, and enrolment through the real face pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.access import store as access_db
from edge.access import synthetic
from edge.core.standard import Resident
from edge.faces import store as store_faces

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"


def photo(name: str) -> np.ndarray:
    img = cv2.imread(str(FACES / name))
    assert img is not None, f"missing test photo {name} (tests/data/fetch_faces.py)"
    return img


def door_frame(image: np.ndarray, pipeline, face_px: int = 150) -> np.ndarray:
    """640x480 frame with the photo's face ~face_px wide in the middle."""
    faces = pipeline.detector.detect(image)
    return synthetic.door_frame(image, faces[0] if faces else None, face_px)


TURN = synthetic.TURN


def head_turn(frame: np.ndarray, pipeline, amounts: tuple = TURN) -> list[np.ndarray]:
    """Frames of a head turning (edge/access/synthetic.py)."""
    return synthetic.head_turn(frame, pipeline.detector.detect(frame)[0], amounts)


def write_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f)
    return folder


def enrol(store, pipeline, resident_id: str, image: np.ndarray, **fields) -> None:
    """Add a resident and one face template (synchronously, on the store)."""
    store_faces.add_resident(store, Resident(id=resident_id, name=resident_id, **fields))
    if not fields.get("doors"):  # door rights are explicit: no rights would be no door
        access_db.set_rights(store, resident_id, [], [], [], "test", all_doors=True)
    fr = pipeline.analyse_sync(image, max_faces=1)
    emb = fr.faces[0].embedding
    assert emb is not None, "enrolment photo failed the quality gate"
    store_faces.add_template(store, resident_id, emb, fr.faces[0].quality.score, "sface", "test")
