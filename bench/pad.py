"""Presentation attacks at a door camera, synthesised from the real photos (bench/face.py).

No recordings of attacks exist offline, so each attack is made from a registry photo the way
it reaches a door camera; each sequence is ``frames`` door frames fed to the box's own
LivenessTracker (edge/faces/liveness.py) and, for a dual-sensor camera, to the pipeline's
IR check (``FacePipeline.face_in_ir``) on the matching synthetic IR frame:

- print_moved: a printed photo held by hand: rigid drift, tilt, scale and a slight bend
  (perspective) that changes frame by frame; paper reflects near-IR, so the IR sensor sees the
  printed face too (an IR check does not stop paper; the motion cues must).
- phone_photo: the photo on a phone screen held by hand: moire, a glare patch, the bezel; the
  screen has no near-IR (dark in IR).
- replay: a recording of the resident turning their head (a live sequence) replayed on a
  screen held still: real non-rigid motion, plus moire and glare; dark in IR.
- live: the live sequence itself (synthetic head turn), for the pass rate of real people.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.access import synthetic
from edge.faces.config import FacesConfig
from edge.faces.liveness import LivenessTracker
from edge.faces.pipeline import FacePipeline


def _moire(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang, per = rng.uniform(0, np.pi), rng.uniform(2.5, 4.5)
    wave = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / per)
    return np.clip(frame + 14 * wave[..., None], 0, 255).astype(np.uint8)


def _glare(frame: np.ndarray, centre: tuple[float, float], rng: np.random.Generator):
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sx, sy = rng.uniform(30, 70), rng.uniform(15, 35)
    g = np.exp(-(((xx - centre[0]) / sx) ** 2 + ((yy - centre[1]) / sy) ** 2))
    return np.clip(frame + 120 * g[..., None], 0, 255).astype(np.uint8)


def _screen(frame: np.ndarray, face, rng: np.random.Generator) -> np.ndarray:
    """The frame as a phone screen shows it to the door camera: bezel, moire, glare."""
    x, y, w, h = (int(v) for v in face.bbox)
    out = frame.copy()
    x0, y0, x1, y1 = x - w // 3, y - h // 2, x + w + w // 3, y + h + h // 2
    cv2.rectangle(out, (x0 - 12, y0 - 20), (x1 + 12, y1 + 20), (20, 20, 20), 12)
    out = _moire(out, rng)
    return _glare(out, (x + w * rng.uniform(0.2, 0.8), y + h * rng.uniform(0.1, 0.5)), rng)


def _hand(frame: np.ndarray, i: int, rng: np.random.Generator, phase: np.ndarray) -> np.ndarray:
    """Hand-held: smooth drift, tilt and scale, plus a bend (perspective) for paper."""
    t = i / 3.0
    ang = 6 * np.sin(t + phase[0])
    sc = 1 + 0.08 * np.sin(0.7 * t + phase[1])
    m = cv2.getRotationMatrix2D((320, 240), ang, sc)
    m[:, 2] += 15 * np.sin(0.9 * t + phase[2]), 10 * np.cos(0.8 * t + phase[3])
    f = cv2.warpAffine(frame, m, (640, 480), borderValue=(90, 90, 90))
    d = 12 * np.sin(0.6 * t + phase[4])
    src = np.float32([[0, 0], [640, 0], [640, 480], [0, 480]])
    dst = np.float32([[d, 0], [640 - d, 0], [640, 480], [0, 480]])
    return cv2.warpPerspective(f, cv2.getPerspectiveTransform(src, dst), (640, 480),
                               borderValue=(90, 90, 90))


def run(p: FacePipeline, cfg: FacesConfig, door_frames: list[np.ndarray], frames: int = 12,
        seeds: int = 2) -> dict:
    counts: dict[str, dict[str, int]] = {}

    def tally(kind: str, live: bool, ir_ok: bool | None) -> None:
        c = counts.setdefault(kind, {"sequences": 0, "passed_motion_cues": 0,
                                     "passed_motion_and_ir": 0})
        c["sequences"] += 1
        c["passed_motion_cues"] += live
        c["passed_motion_and_ir"] += bool(live and ir_ok)

    for base in door_frames:
        face = p.detector.detect(base)
        if not face:
            continue
        face = face[0]
        live_seq = synthetic.head_turn(base, face)[:frames]
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            phase = rng.uniform(0, 2 * np.pi, 5)
            seqs = {
                "live": [(f, synthetic.infrared(f)) for f in live_seq],
                "print_moved": [],
                "phone_photo": [],
                "replay": [],
            }
            for i in range(frames):
                pr = _hand(base, i, rng, phase)
                seqs["print_moved"].append((pr, synthetic.infrared(pr)))
                ph = _hand(_screen(base, face, rng), i, rng, phase)
                seqs["phone_photo"].append((ph, synthetic.infrared_of_screen(ph, face)))
                rp = _screen(live_seq[i % len(live_seq)], face, rng)
                seqs["replay"].append((rp, synthetic.infrared_of_screen(rp, face)))
            for kind, seq in seqs.items():
                tr = LivenessTracker(cfg.liveness_threshold, cfg.liveness_frames)
                v = None
                ir_hits = 0
                for img, ir in seq:
                    found = p.detector.detect(img)
                    v = tr.update(img, found[0] if found else None)
                    if found:
                        ir_hits += p.face_in_ir(ir, found[0])
                tally(kind, bool(v and v.live), ir_hits >= len(seq) // 2)
    out = {k: {**c, "motion_pass_rate": round(c["passed_motion_cues"] / c["sequences"], 3),
               "motion_and_ir_pass_rate": round(c["passed_motion_and_ir"] / c["sequences"], 3)}
           for k, c in counts.items()}
    for k, c in out.items():
        print(f"PAD {k:<12} passed motion cues {c['passed_motion_cues']}/{c['sequences']}, "
              f"motion + IR {c['passed_motion_and_ir']}/{c['sequences']}")
    return out
