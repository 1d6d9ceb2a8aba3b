"""The demo's cloud step: a local cloud, the demo box provisioned, records arrive, a command
comes back over the feed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_cloud_step(tmp_path: Path, mosquitto) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
            "--seconds",
            "0.2",
            "--mqtt-port",
            str(mosquitto.port),
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "Cloud sync: a local cloud service" in text
    assert re.search(
        r"provisioned as box-[0-9a-f]+ in /jinan/lixia/quancheng/demo-community/", text
    )
    m = re.search(r"acked through seq (\d+); box outbox now (\d+) rows", text)
    assert m and int(m.group(1)) > 0 and m.group(2) == "0", text[-2000:]
    assert "ping → 'pong'" in text
    assert re.search(r"http://127\.0\.0\.1:\d+/console/ +sign in as demo-ops / \S{10,}", text)
    ident = tmp_path / "demo" / "data" / "cloud-identity.json"
    assert ident.stat().st_mode & 0o777 == 0o600
