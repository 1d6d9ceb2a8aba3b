"""The face tracker's appearance check: same-person splits against strangers let through.

    .venv/bin/python bench/tracker_split.py

A door's track goes on while the face stays in place and looks like the track's recent
frames (edge/faces/openset.py ``FaceTracker``: raw SFace cosine >= ``same_person``, 0.35).
Compared with the last usable frame only (before), one odd frame of the same person split a
track, and the person's fusion and liveness started over (bench/rush.py: 6 looks instead
of 3); compared with the best of the last two (now), a stranger stepping into exactly the
same spot within a frame has two frames to resemble instead of one. This measures both on
every test photo (tests/data/fetch_faces.py identities): each photo's face made into a
12-frame approach (edge/access/synthetic.py, the bench's head turn), each frame found and
embedded the way the door does (region look around the last box).

- ``same_person_split``: frames j >= 2 of one approach whose check fails (a false split);
- ``stranger_continues``: frame j of person B against frames j-1 (and j-2) of person A, B
  not A: the check passes (B would continue A's track, if B stood in A's exact spot with no
  empty frame between; a grant would still need B's own current frame accepted as A at the
  door's threshold, k of n on the track, and liveness).

Prints readable lines, then one JSON object on the LAST line.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.openset import SAME_PERSON  # noqa: E402
from edge.access import synthetic  # noqa: E402
from edge.faces import weights  # noqa: E402
from edge.faces.config import FacesConfig  # noqa: E402
from edge.faces.openset import FaceTracker  # noqa: E402
from edge.faces.pipeline import FacePipeline, Look  # noqa: E402
from tests.data.fetch_faces import MORE, PHOTOS  # noqa: E402
from tests.edge.access.helpers import FACES, photo  # noqa: E402

FRAMES = 12


def identity(name: str) -> str | None:
    if name in PHOTOS:
        return PHOTOS[name][4]
    if name in MORE:
        return MORE[name][3] or None  # a group photo has no one identity
    if name.startswith("crowd_"):
        key = f"crowd:{Path(name).stem}:0"  # the largest face of the group photo
        return SAME_PERSON.get(key, key)
    return None


def main() -> None:
    load0 = os.getloadavg()[0]
    pipeline = FacePipeline(FacesConfig(), weights.default_model_dir())
    bar = FaceTracker(1, 1).same_person  # the tracker's own bar (unchanged)
    embs: dict[str, list] = {}
    ids: dict[str, str] = {}
    for path in sorted(FACES.glob("*.jpg")):
        who = identity(path.name)
        img = photo(path.name)
        faces = pipeline.detector.detect(img)
        if who is None or not faces:
            continue
        try:
            frames = synthetic.approach(img, faces[0], FRAMES, (1280, 720))
        except AssertionError:  # the face does not fit the frame at the approach's size
            continue
        out, box = [], None
        for f in frames:
            r = pipeline.look_many_sync([Look(f, box, scan=True, live=False)])[0]
            box = r.face.bbox if r.face is not None else None
            out.append(r.embedding)
        if sum(e is not None for e in out) >= FRAMES // 2:
            embs[path.name], ids[path.name] = out, who
    pipeline.close()
    counts = {k: [0, 0] for k in ("split_last", "split_two", "through_last", "through_two")}
    for es in embs.values():
        for j in range(2, FRAMES):
            if es[j] is None or es[j - 1] is None or es[j - 2] is None:
                continue
            last = float(es[j] @ es[j - 1])
            two = max(last, float(es[j] @ es[j - 2]))
            for key, v in (("split_last", last), ("split_two", two)):
                counts[key][0] += v < bar
                counts[key][1] += 1
    for a, b in itertools.permutations(embs, 2):
        if ids[a] == ids[b]:
            continue
        ea, eb = embs[a], embs[b]
        for j in range(2, FRAMES):
            if eb[j] is None or ea[j - 1] is None or ea[j - 2] is None:
                continue
            last = float(eb[j] @ ea[j - 1])
            two = max(last, float(eb[j] @ ea[j - 2]))
            for key, v in (("through_last", last), ("through_two", two)):
                counts[key][0] += v >= bar
                counts[key][1] += 1

    def rate(key: str) -> dict[str, float | int]:
        hit, n = counts[key]
        return {"events": hit, "of": n, "rate": round(hit / n, 5) if n else 0.0}

    res = {"photos": len(embs), "identities": len(set(ids.values())), "frames": FRAMES,
           "same_person": bar,
           "same_person_split": {"last_frame (before)": rate("split_last"),
                                 "best_of_last_two (now)": rate("split_two")},
           "stranger_continues": {"last_frame (before)": rate("through_last"),
                                  "best_of_last_two (now)": rate("through_two")},
           "loadavg": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    print(f"{res['photos']} photos of {res['identities']} people, {FRAMES}-frame approaches")
    print(f"same person split: {res['same_person_split']}")
    print(f"stranger continues a track: {res['stranger_continues']}")
    print(json.dumps(res, separators=(",", ":")))


if __name__ == "__main__":
    main()
