"""The face-doors demo step, run through the real demo box: what it prints is what happened."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

import edge.demo
from edge.access import passes
from edge.access import store as db
from edge.access.demo import DOOR, step_face_doors
from edge.core.store import Store
from edge.features import load_config


async def test_demo_step_face_doors(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(edge.demo, "steps", lambda: [step_face_doors])
    await edge.demo.run_demo(tmp_path, seconds=0, mqtt_port=1, api_port=0)
    out = capsys.readouterr().out
    assert "resident: granted (match) resident=r-demo-face" in out, out
    assert "stranger: denied (unknown_face)" in out, out
    assert "first use -> 200 pass" in out and "second use -> 403 used_up" in out, out
    # The QR PNG the demo wrote holds a pass the box signed.
    png = tmp_path / "visitor-pass.png"
    text = passes.QrReader().read(cv2.imread(str(png)))
    store = Store(load_config(tmp_path / "edge.toml").db_path)
    try:
        key = db.box_key(store)
        pass_id = passes.verify_qr(key, text)
        assert pass_id is not None and pass_id in out
        evs = sorted(db.list_events(store, DOOR, 50, None), key=lambda e: e["ts"])
    finally:
        store.close()
    got = [(e["method"], e["decision"], e["reason"]) for e in evs]
    # One face grant (the resident; a "liveness" denial may come first while the head turn
    # has not shown enough), the stranger refused, then remote open and the pass, once.
    assert [g for g in got if g[0] == "face" and g[1] == "granted"] == [
        ("face", "granted", "match")]
    face = [g for g in got if g[0] == "face"]
    assert set(face) <= {("face", "granted", "match"), ("face", "denied", "liveness"),
                         ("face", "denied", "unknown_face")}
    assert ("face", "denied", "unknown_face") in face
    assert got[-3:] == [("remote", "granted", "remote"), ("pin", "granted", "pass"),
                        ("pin", "denied", "used_up")]


def test_demo_config_carries_the_face_door(tmp_path: Path) -> None:
    path = edge.demo.write_demo_config(tmp_path, 1, 0, "t")
    text = path.read_text()
    assert f'id = "{DOOR}"' in text and 'type = "file"' in text
    link = tmp_path / "door-camera"
    assert link.is_symlink() and len(list(link.iterdir())) == 1  # an empty hallway


@pytest.fixture(autouse=True)
def _photos() -> None:
    from edge.access.demo import PHOTOS

    if not (PHOTOS / "obama.jpg").exists():
        pytest.fail("test photos missing: .venv/bin/python tests/data/fetch_faces.py")
