"""The daemon does not load, at start, the large native libraries of parts only used later: a
WebRTC call (aiortc, PyAV), a push to a phone (pywebpush, py_vapid), a pass link
(cryptography), a QR code (qrcode, Pillow). Together ~47 MB of RSS (bench/rss.py). A fresh
process: the test process has them all loaded by other tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import box_toml

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("aiortc", "av", "pywebpush", "py_vapid", "cryptography", "qrcode", "PIL")
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
