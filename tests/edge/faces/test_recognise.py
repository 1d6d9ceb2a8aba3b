"""FacePipeline.recognise: one detection gives the decision, its face and the liveness verdict
(what the access engine uses at a door)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.faces.config import FacesConfig
from edge.faces.pipeline import FacePipeline
from tests.edge.access.helpers import head_turn

from .conftest import door_frame


class CountingDetector:
    """The real detector, counting its calls (to prove there is one detection per frame)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0

    def detect(self, image: np.ndarray) -> list:
        self.calls += 1
        return self.inner.detect(image)


@pytest.fixture(scope="module")
def door(model_dir: Path, img):
    p = FacePipeline(FacesConfig(), model_dir)
    enrol = p.analyse_sync(door_frame(img("obama2.jpg")), max_faces=1).faces[0]
    p.gallery.add("t-obama", "r-obama", enrol.embedding)
    p.detector = CountingDetector(p.detector)
    yield p
    p.close()


async def test_known_face_with_its_face_and_liveness(door: FacePipeline, img) -> None:
    frame = door_frame(img("obama.jpg"))
    frames = head_turn(frame, door)[:8]
    tracker = door.liveness_tracker(frames=3)
    door.detector.calls = 0
    seen = None
    for f in frames:
        seen = await door.recognise(f, tracker)
    assert door.detector.calls == len(frames)  # one detection per frame, not two
    assert seen is not None
    d = seen.decision
    assert d.matched and d.resident_id == "r-obama" and d.reason == "match"
    # The face the decision is about: the detector's largest face in that frame.
    ref = door.detector.inner.detect(frames[-1])[0]
    assert len(seen.face.bbox) == 4 and seen.face.landmarks.shape == (5, 2)
    assert np.allclose(seen.face.landmarks, ref.landmarks, atol=1.0)
    x, y, w, h = seen.face.bbox
    assert x < 320 < x + w and y < 240 < y + h  # the face was placed in the middle
    assert seen.liveness is not None and seen.liveness.live, seen.liveness
    assert seen.liveness.score >= door.cfg.liveness_threshold
    assert "liveness" in d.timings_ms


async def test_still_photo_recognised_but_not_live(door: FacePipeline, img) -> None:
    frame = door_frame(img("obama.jpg"))
    tracker = door.liveness_tracker(frames=3)
    for _ in range(5):
        seen = await door.recognise(frame, tracker)
    assert seen.decision.resident_id == "r-obama"
    assert not seen.liveness.live and seen.liveness.reason == "no_motion"


async def test_no_face_and_no_tracker(door: FacePipeline, img) -> None:
    empty = np.full((480, 640, 3), 90, np.uint8)
    tracker = door.liveness_tracker(frames=3)
    frame = door_frame(img("biden.jpg"))
    await door.recognise(frame, tracker)
    seen = await door.recognise(empty, tracker)
    assert seen.face is None and seen.decision.reason == "no_face"
    assert seen.liveness.reason == "no_face" and seen.liveness.frames == 0  # tracker reset
    stranger = await door.recognise(frame)
    assert stranger.liveness is None and stranger.face is not None
    assert stranger.decision.reason == "unknown_face" and not stranger.decision.matched
