"""Flip test-time augmentation (FacesConfig.flip): real photos through the real SFace."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.faces.config import FacesConfig
from edge.faces.embed import fuse_flip
from edge.faces.pipeline import FacePipeline

from .conftest import frame_640


@pytest.fixture(scope="module")
def flipped(model_dir) -> FacePipeline:
    p = FacePipeline(FacesConfig(flip=True), model_dir)
    yield p
    p.close()


@pytest.fixture(scope="module")
def plain(model_dir) -> FacePipeline:
    p = FacePipeline(FacesConfig(flip=False), model_dir)
    yield p
    p.close()


def test_flip_is_off_by_default() -> None:
    assert not FacesConfig().flip  # twice the SFace work per door frame: opt-in


def _face(p: FacePipeline, frame: np.ndarray):
    fr = p.analyse_sync(frame, max_faces=1)
    assert fr.faces and fr.faces[0].embedding is not None
    return fr.faces[0]


def test_flip_embedding_is_the_normalised_sum_of_the_two_forwards(
        plain: FacePipeline, flipped: FacePipeline, img) -> None:
    frame = frame_640(img("obama2.jpg"))
    got = _face(flipped, frame)
    before = _face(plain, frame)
    # the plain pipeline's own forwards of the crop and of its mirror
    own = plain.embedder.embed(before.aligned)
    mirror = plain.embedder.embed(cv2.flip(before.aligned, 1))
    np.testing.assert_allclose(own, before.embedding, atol=1e-6)
    np.testing.assert_allclose(got.embedding, fuse_flip(own, mirror), atol=2e-5)
    assert abs(float(np.linalg.norm(got.embedding)) - 1) < 1e-5
    # the mirror really is another input: the flip embedding is not the plain one
    assert float(got.embedding @ before.embedding) < 0.999
    assert float(own @ mirror) < 0.99


def test_flip_batch_matches_one_by_one(flipped: FacePipeline, img) -> None:
    crops = [_face(flipped, frame_640(img(n))).aligned
             for n in ("obama.jpg", "biden.jpg", "person_b_1.jpg")]
    batch = flipped.embedder.embed_batch(crops)
    for c, b in zip(crops, batch, strict=True):
        np.testing.assert_allclose(b, flipped.embedder.embed(c), atol=2e-5)
    # three different people: three different vectors
    assert float(batch[0] @ batch[1]) < 0.6


def test_flip_pipeline_still_tells_people_apart(flipped: FacePipeline, img) -> None:
    enrol = {r: flipped.check_enrol_sync(img(n), r) for r, n in
             (("r-obama", "obama.jpg"), ("r-ardern", "person_b_1.jpg"))}
    assert all(c.ok for c in enrol.values())
    probe = _face(flipped, frame_640(img("obama3.jpg"))).embedding
    same = float(probe @ enrol["r-obama"].embedding)
    other = float(probe @ enrol["r-ardern"].embedding)
    assert same > 0.45 > other, (same, other)


def test_flip_on_takes_the_flip_fits_unless_set() -> None:
    from edge.faces.config import FLIP_FITS

    off, on = FacesConfig(), FacesConfig(flip=True)
    assert off.tail_znorm != FLIP_FITS["tail_znorm"]
    assert all(getattr(on, f) == v for f, v in FLIP_FITS.items())
    assert FacesConfig(flip=True, tail_znorm=(1.0, 2.0)).tail_znorm == (1.0, 2.0)
