"""A retrained or shipped model is adopted only if it is not worse on the check split."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from common.textmodel import Row, shipped_rows, train
from edge.core.store.core import Store
from edge.reports import retrain


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
