"""Liveness: a still photo (repeated, or moved about like a hand-held print) must not pass."""

from __future__ import annotations

import cv2
import numpy as np

from edge.faces.liveness import LivenessTracker
from edge.faces.pipeline import FacePipeline
from edge.faces.types import Face

from .conftest import door_frame


def _run(pipeline: FacePipeline, frames: list[np.ndarray]) -> object:
    tracker = pipeline.liveness_tracker()
    verdict = None
    for f in frames:
        fr = pipeline.analyse_sync(f, max_faces=1)
        verdict = tracker.update(f, fr.faces[0].face if fr.faces else None)
    return verdict


def test_static_image_repeated_fails_liveness(pipeline: FacePipeline, img) -> None:
    frame = door_frame(img("person_b_2.jpg"))
    v = _run(pipeline, [frame] * 8)
    assert v.frames == pipeline.cfg.liveness_frames
    assert not v.live and v.reason == "no_motion"
    assert v.score == 0.0
    assert v.cues["parallax"] < 1e-6


def test_handheld_photo_moving_rigidly_fails(pipeline: FacePipeline, img) -> None:
    """A print moved, rotated, scaled and tilted in front of the camera: affine motion only."""
    base = door_frame(img("person_b_2.jpg"))
    rng = np.random.default_rng(7)
    frames = []
    for i in range(8):
        ang, s = rng.uniform(-8, 8), rng.uniform(0.9, 1.1)
        m = cv2.getRotationMatrix2D((320, 240), ang, s)
        m[:, 2] += rng.uniform(-25, 25, 2)
        m[0, 1] += 0.04 * np.sin(i)  # shear: the print tilted a little
        frames.append(cv2.warpAffine(base, m, (640, 480), borderValue=(90, 90, 90)))
    v = _run(pipeline, frames)
    assert not v.live, v
    assert v.cues["parallax"] < 0.06


def test_static_then_face_gone_resets(pipeline: FacePipeline, img) -> None:
    tracker = pipeline.liveness_tracker()
    frame = door_frame(img("person_b_2.jpg"))
    face = pipeline.analyse_sync(frame).faces[0].face
    for _ in range(3):
        tracker.update(frame, face)
    v = tracker.update(frame, None)
    assert (v.frames, v.reason) == (0, "no_face")


def test_non_rigid_landmark_motion_passes(pipeline: FacePipeline, img) -> None:
    """A head turning: the nose moves against eyes and mouth, which no affine map explains.

    We have no video of a live person offline, so this feeds the real frame with landmark
    tracks as a turning head produces them (nose swinging by 0.3 eye distances).
    """
    frame = door_frame(img("person_b_2.jpg"))
    face = pipeline.analyse_sync(frame).faces[0].face
    tracker = pipeline.liveness_tracker()
    eye = face.eye_distance
    v = None
    for i in range(8):
        lm = face.landmarks.copy()
        lm[2, 0] += 0.3 * eye * np.sin(i / 2)  # nose swings with yaw
        v = tracker.update(frame, Face(face.bbox, lm, face.score))
    assert v is not None and v.live and v.reason == "live", v


def test_screen_moire_penalises(pipeline: FacePipeline, img) -> None:
    """A fine periodic pattern over the face (a screen's pixel grid seen by a camera) lowers
    the score of the very same motion; the clean frame gets no penalty."""
    clean = door_frame(img("person_b_2.jpg"))
    yy, xx = np.mgrid[0:480, 0:640]
    grid = 40 * np.sin(xx * 2.6) * np.sin(yy * 2.6)
    screen = np.clip(clean.astype(np.float32) + grid[..., None], 0, 255).astype(np.uint8)
    scores = {}
    for name, frame in (("clean", clean), ("screen", screen)):
        face = pipeline.analyse_sync(frame).faces[0].face
        tracker = LivenessTracker(0.5, 6)
        for i in range(6):
            lm = face.landmarks.copy()
            lm[2, 0] += 0.3 * face.eye_distance * np.sin(i / 2)
            v = tracker.update(frame, Face(face.bbox, lm, face.score))
        scores[name] = v
    assert scores["clean"].cues["moire"] == 0.0
    assert scores["screen"].cues["moire"] > 0.3
    assert scores["screen"].score < scores["clean"].score * 0.7


class _Model:
    def __init__(self, value: float) -> None:
        self.value = value

    def score(self, frame_bgr: np.ndarray, face: Face) -> float:
        return self.value


def test_anti_spoof_model_plugs_in(pipeline: FacePipeline, img) -> None:
    frame = door_frame(img("person_b_2.jpg"))
    face = pipeline.analyse_sync(frame).faces[0].face
    for value, live in ((0.1, False), (0.9, True)):
        tracker = pipeline.liveness_tracker(anti_spoof=_Model(value))
        v = None
        for i in range(6):
            lm = face.landmarks.copy()
            lm[2, 0] += 0.3 * face.eye_distance * np.sin(i / 2)
            v = tracker.update(frame, Face(face.bbox, lm, face.score))
        assert v is not None and v.live is live and v.cues["model"] == value
