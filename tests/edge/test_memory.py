"""Memory (docs/faces.md, bench/rss.py): the daemon does not load, at start, the large native
libraries of parts only used later: a WebRTC call (aiortc, PyAV), a push to a phone
(pywebpush, py_vapid), a pass link (cryptography), a QR code (qrcode, Pillow), LAN
advertising (zeroconf, off by default), intercom call buttons (pymodbus), together ~50 MB
of RSS (a fresh process: the test process has them all loaded by other tests); and door
traffic does not grow a face detector per face-region size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.faces import weights
from edge.faces.config import FacesConfig
from edge.faces.detect import YuNetDetector
from edge.faces.pipeline import FacePipeline
from tests.conftest import box_toml

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("aiortc", "av", "pywebpush", "py_vapid", "cryptography", "qrcode", "PIL", "zeroconf",
         "pymodbus")
PROBE = """
import asyncio, json, sys
from edge.daemon import Daemon
from edge.features import load_config

async def main():
    d = Daemon(load_config(sys.argv[1]))
    box = await d.start()
    ic = box.service("intercom")
    out = {"at_start": [m for m in sys.argv[2:] if m in sys.modules],
           "rtc_on": ic.rtc is not None, "push_on": ic.push is not None,
           "key_at_start": ic.push.key_path.exists()}
    await ic.rtc.load()  # what a ringing call does
    out["key"] = ic.push.public_key  # what a phone page asks for
    out["after_use"] = [m for m in sys.argv[2:] if m in sys.modules]
    out["key_mode"] = oct(ic.push.key_path.stat().st_mode & 0o777)
    await d.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_heavy_libraries_load_on_first_use_not_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "edge.toml"
    cfg.write_text(box_toml(tmp_path, extra="[faces]\nenabled = false\n"))
    r = subprocess.run([sys.executable, "-c", PROBE, str(cfg), *HEAVY], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # the features are on (the defaults), only their libraries wait
    assert out["rtc_on"] and out["push_on"]
    assert out["at_start"] == [], out
    assert not out["key_at_start"]
    assert {"aiortc", "av", "cryptography"} <= set(out["after_use"]), out
    assert len(out["key"]) == 87 and out["key_mode"] == "0o600", out  # P-256 point, base64url


def test_one_region_detector_serves_every_region_size() -> None:
    """A face searched in regions of many sizes (a person walking up to the door) is found in
    each, where the whole-frame detection has it, by the whole-frame detector itself: a YuNet
    instance per size kept each size's buffers (+216 MB over the 18 sizes, bench/rss.py)."""
    p = FacePipeline(FacesConfig(), weights.default_model_dir())
    photo = cv2.imread(str(ROOT / "tests/data/faces/biden.jpg"))
    frame = np.zeros((720, 1280, 3), np.uint8)
    h, w = photo.shape[:2]
    k = 600 / max(h, w)
    photo = cv2.resize(photo, (round(w * k), round(h * k)))
    frame[60 : 60 + photo.shape[0], 300 : 300 + photo.shape[1]] = photo
    whole = p.detector.detect(frame)
    assert whole, "the test photo has a face"
    x, y, fw, fh = whole[0].bbox
    sides = set()
    for grow in np.geomspace(0.6, 5.0, 14):
        box = (x + fw / 2 - grow * fw / 2, y + fh / 2 - grow * fh / 2, grow * fw, grow * fh)
        span = 2.5 * max(box[2], box[3]) * 640 / 1280  # the region at the frame's scale
        sides.add(min(max(int(-(-span // 32) * 32), 96), 640))
        found = p.detect_region(frame, box)
        assert found, f"no face in the region of {grow:.2f} face widths"
        assert np.abs(found[0].landmarks - whole[0].landmarks).max() < 0.15 * fw
        # the same faces, bit for bit, as a detector planned for this size alone (as before)
        shared, p.detector = p.detector, YuNetDetector(p._yunet_path, max_side=640)
        alone = p.detect_region(frame, box)
        p.detector = shared
        assert [(f.bbox, f.landmarks.tolist(), f.score) for f in found] == [
            (f.bbox, f.landmarks.tolist(), f.score) for f in alone]
    assert len(sides) >= 8, sides  # the regions really had many sizes
    assert p._sized == {}, sorted(p._sized)  # the whole-frame detector served them all
    p.close()
