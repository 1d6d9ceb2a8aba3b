"""Learning from staff: corrections → training rows → a versioned model, adopted only if it
is not worse on the untouched test split (otherwise the box keeps — rolls back to — the
model it had). Used by ``qilu-edge report retrain`` and by the feed command
``box.text_model`` that ships an artefact built elsewhere (e.g. in the cloud from every box's
corrections)."""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common.textmodel import Row, TextModel
from edge.core.files import make_folder
from edge.core.store.core import Store
from edge.reports import store as db
from edge.reports.analyze import Analyzer, default_artefact
from edge.reports.evaluate import score, untouched_rows

MODEL_META = "reports.text_model"  # path of the adopted artefact
FOLDER = "text-models"  # under box.data_dir
# A new model may lose at most this much on any figure of the test split.
TOLERANCE = 0.005


class ModelRefused(ValueError):
    """The artefact is unusable or worse than the current model; the message says why."""


def correction_rows(store: Store) -> list[Row]:
    """Staff's corrections as training rows; the latest correction of a report wins."""
    latest: dict[str, dict[str, Any]] = {}
    for c in db.list_corrections(store):
        latest[c["report_id"]] = c
    return [Row(c["id"], "correction", c["text"], c["category"], c["polarity"], c["urgency"])
            for c in latest.values()]


def active_artefact(store: Store) -> Path:
    saved = store.get_meta(MODEL_META)
    return Path(saved) if saved and Path(saved).exists() else default_artefact()


def figures(model: TextModel, rows: list[Row]) -> dict[str, Any]:
    a = Analyzer(model=model)
    s = score(rows, [a.analyze(r.text) for r in rows])
    return {k: v for k, v in s.items() if isinstance(v, float)}


def adopt(store: Store, path: Path, check: list[Row] | None = None) -> dict[str, Any]:
    """Compare the artefact at `path` with the active model on the test split; make it the
    active one only if no figure drops by more than TOLERANCE. Raises ModelRefused."""
    try:
        new = TextModel.load(path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelRefused(f"model: unreadable artefact {path.name}: {e}") from e
    check = untouched_rows() if check is None else check
    current = TextModel.load(active_artefact(store))
    out: dict[str, Any] = {"version": new.meta.get("version"), "path": str(path)}
    if check:
        old_f, new_f = figures(current, check), figures(new, check)
        out |= {"checked_on": len(check), "current": old_f, "new": new_f}
        worse = [k for k in old_f if k != "false_alarm_rate" and k != "possible_emergency_rate"
                 and new_f.get(k, 0.0) < old_f[k] - TOLERANCE]
        if new_f.get("false_alarm_rate", 0.0) > old_f.get("false_alarm_rate", 0.0) + TOLERANCE:
            worse.append("false_alarm_rate")
        if worse:
            was = json.dumps({k: [old_f.get(k), new_f.get(k)] for k in worse})
            raise ModelRefused(f"model: worse than the current one on the test split"
                               f" ({', '.join(worse)}: {was}); kept the current model")
    store.set_meta(MODEL_META, str(path))
    return out | {"adopted": True}


def retrain(store: Store, data_dir: Path) -> dict[str, Any]:
    """Shipped corpus + corrections → <data_dir>/text-models/<version>.npz, then adopt()."""
    rows = correction_rows(store)
    folder = data_dir / FOLDER
    make_folder(folder)  # `sudo qilu-edge report retrain`: the daemon adds shipped models here
    version = time.strftime("v%Y%m%d%H%M%S", time.gmtime())
    extra = folder / f"{version}.corrections.csv"
    with extra.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "category", "polarity", "urgency"])
        w.writerows([r.id, r.text, r.category, r.polarity, r.urgency] for r in rows)
    out = folder / f"{version}.npz"
    subprocess.run([sys.executable, "-m", "common.texttrain", "--out", str(out), "--extra",
                    str(extra), "--version", version], check=True, timeout=900)
    return {"corrections": len(rows)} | adopt(store, out)


def install_shipped(store: Store, data_dir: Path, args: dict[str, Any]) -> dict[str, Any]:
    """The feed command box.text_model: {"model_b64": ..., "sha256": ...} → checked, adopted."""
    blob, want = args.get("model_b64"), args.get("sha256")
    if not isinstance(blob, str) or not isinstance(want, str):
        raise ModelRefused("model_b64: the artefact (base64) and its sha256 are required")
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ModelRefused(f"model_b64: not base64: {e}") from e
    return install_bytes(store, data_dir, raw, want)


def install_bytes(store: Store, data_dir: Path, raw: bytes, want: str,
                  check: list[Row] | None = None) -> dict[str, Any]:
    """An artefact's bytes (inline in the command or downloaded from the cloud's blob
    store): checked by hash, kept under <data_dir>/text-models/, then adopt()."""
    if hashlib.sha256(raw).hexdigest() != want.lower():
        raise ModelRefused("sha256: does not match the artefact")
    folder = data_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shipped-{want.lower()[:16]}.npz"
    path.write_bytes(raw)
    try:
        return adopt(store, path, check)
    except ModelRefused:
        path.unlink(missing_ok=True)  # refused: nothing of it stays on the box
        raise
