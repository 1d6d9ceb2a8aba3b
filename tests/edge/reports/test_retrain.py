"""A retrained or shipped model is adopted only if it is not worse on the check split."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.textmodel import Row, shipped_rows, train
from edge.core.store.core import Store
from edge.reports import retrain
from tests.conftest import DAEMON_UID, box_toml, daemon_user_folder, needs_daemon_user


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "box.db")
    yield s
    s.close()


def test_worse_model_is_refused_and_the_current_one_stays(store: Store, tmp_path: Path) -> None:
    rows = shipped_rows()
    check = rows[::10]  # scored in-sample by the shipped model: a fair bar to fall below
    # A model that learnt from a handful of messages is worse: refused, meta unchanged.
    few = [r for r in rows if r.source != "project"][:40:2] + [
        Row(f"x{i}", "t", t, c, p, u) for i, (t, c, p, u) in enumerate([
            ("楼道灯不亮", "facilities_repair", "neutral", "normal"),
            ("着火了快来人", "safety_hazard", "negative", "immediate"),
            ("谢谢师傅", "praise", "positive", "low"),
            ("燃气费怎么交", "policy_enquiry", "neutral", "low"),
        ])]
    weak = train(few)
    path = tmp_path / "weak.npz"
    weak.save(path)
    with pytest.raises(retrain.ModelRefused, match="worse than the current one"):
        retrain.adopt(store, path, check)
    assert store.get_meta(retrain.MODEL_META) is None
    # The shipped model itself is never worse than itself: adopted, recorded in meta.
    good = retrain.active_artefact(store)
    res = retrain.adopt(store, good, check)
    assert res["adopted"] and store.get_meta(retrain.MODEL_META) == str(good)


def test_shipped_artefact_is_checked_by_hash(store: Store, tmp_path: Path) -> None:
    raw = retrain.active_artefact(store).read_bytes()
    args = {"model_b64": base64.b64encode(raw).decode(), "sha256": "0" * 64}
    with pytest.raises(retrain.ModelRefused, match="sha256"):
        retrain.install_shipped(store, tmp_path, args)
    args["sha256"] = hashlib.sha256(raw).hexdigest()
    res = retrain.install_shipped(store, tmp_path, args | {"check": None})
    assert res["adopted"] and Path(res["path"]).read_bytes() == raw


@needs_daemon_user
@pytest.mark.timeout(900)
def test_a_retrain_run_by_root_leaves_the_model_folder_to_the_daemon() -> None:
    """`sudo qilu-edge report retrain -c /etc/qilu-edge/edge.toml` made <data_dir>/text-models
    root:root 0755; from then on every model the cloud's central retraining shipped
    (box.text_model) failed on the box: the daemon's user could not write it there."""
    base = daemon_user_folder("qilu-retrain-")
    try:
        config = base / "edge.toml"
        config.write_text(box_toml(base))
        r = subprocess.run(
            [sys.executable, "-c", "from edge.cli import main; main()", "report", "retrain",
             "-c", str(config)],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-1500:]
        folder = base / "data" / retrain.FOLDER
        assert list(folder.glob("v*.npz")), list(folder.iterdir())
        # What install_bytes does for a shipped model, as the daemon's user.
        shipped = folder / "shipped-0123456789abcdef.npz"
        w = subprocess.run(["touch", str(shipped)], user=DAEMON_UID, group=DAEMON_UID,
                           extra_groups=[], capture_output=True, text=True, timeout=30)
        assert w.returncode == 0, w.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)
