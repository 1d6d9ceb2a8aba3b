"""Central retraining of the report text model (issue 16 item 4).

Staff on every box correct reports; each correction syncs here as a ``report_correction``
record. ``qilu-cloudsync text-model build`` gathers them (the latest per report), adds the
shipped training corpus and trains a new artefact with the same code the boxes use
(common/texttrain.py, in a child process: scikit-learn's memory goes back when it ends).
The artefact is versioned (its meta carries the version and the corpus digest) and stored
like any content file: by SHA-256 in the blob store and in the area's content library, so
ops see it in ``GET /api/v1/ops/content``. It reaches boxes through the ordinary feed:
``--ship`` here, or ``POST /api/v1/ops/publish`` with action ``text_model`` and
``{"sha256": ...}``. Each box downloads it from ``/api/v1/blobs/<sha>``, checks the hash,
scores it against its current model on its test split and adopts it only if no figure is
worse, otherwise keeps the model it had (edge/reports/retrain.py).
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cloudsync.blobs import BlobStore

MIME = "application/x-qilu-text-model"
ACTION = "text_model"  # the box's feed command (edge/reports/service.py cmd_text_model)
PAGE = 500
LABELS = ("category", "polarity", "urgency")


class BuildError(RuntimeError):
    """Training failed; the message holds the trainer's last words."""


async def corrections(storage: Any, scope: str = "/") -> list[dict[str, Any]]:
    """Every box's corrections in `scope` as training rows; the latest per report wins."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    after: tuple[str, str, int] | None = None
    while True:
        rows = await storage.records_query(
            ["report_correction"], scope, None, None, None, {}, after, PAGE
        )
        for r in rows:  # newest first: the first seen per report is its latest
            p = r["payload"]
            key = (r["box_id"], str(p.get("report_id") or r["record_id"]))
            text = p.get("text")
            if key in latest or not isinstance(text, str) or not text.strip():
                continue
            if all(isinstance(p.get(k), str) and p.get(k) for k in LABELS):
                latest[key] = {"id": f"{r['box_id']}:{r['record_id']}", "text": text,
                               **{k: p[k] for k in LABELS}}
        if len(rows) < PAGE:
            return list(latest.values())
        last = rows[-1]
        after = (last["ts"], last["box_id"], last["seq"])


async def train_artefact(rows: list[dict[str, Any]], version: str, timeout_s: float = 900,
                         corpus: Path | None = None) -> bytes:
    """The shipped corpus (or ``corpus``: a folder of labelled CSVs) + `rows` → the
    artefact's bytes (trained in a child process)."""
    with tempfile.TemporaryDirectory(prefix="qilu-textmodel-") as tmp:
        extra, out = Path(tmp) / "corrections.csv", Path(tmp) / f"{version}.npz"
        with extra.open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text", *LABELS])
            w.writerows([r["id"], r["text"], *(r[k] for k in LABELS)] for r in rows)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "common.texttrain", "--out", str(out), "--extra", str(extra),
            "--version", version, *(["--corpus", str(corpus)] if corpus else []),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BuildError(f"training took longer than {timeout_s:.0f} s") from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            raise BuildError(f"training failed ({proc.returncode}): {' / '.join(tail)}")
        return out.read_bytes()


async def build(storage: Any, blobs: BlobStore, scope: str = "/", by: str = "retrain",
                corpus: Path | None = None) -> dict[str, Any]:
    """Gather, train, store (blob + content library of `scope`); returns what to ship."""
    rows = await corrections(storage, scope)
    version = time.strftime("v%Y%m%d%H%M%S", time.gmtime())
    raw = await train_artefact(rows, version, corpus=corpus)
    sha = await asyncio.to_thread(blobs.put, raw)
    await storage.content_add(sha, len(raw), MIME, f"text model {version}", by, scope)
    return {"version": version, "sha256": sha, "size_bytes": len(raw), "corrections": len(rows),
            "scope": scope}


def ship_args(sha: str, size: int, title: str) -> dict[str, Any]:
    """The feed command's arguments: where the box downloads the artefact and its hash."""
    return {"sha256": sha, "size_bytes": size, "url": f"/api/v1/blobs/{sha}",
            "version": title.removeprefix("text model ")}


async def ship(storage: Any, built: dict[str, Any], by: str, areas: list[str],
               boxes: list[str]) -> list[str]:
    """Queue the artefact to the boxes of `areas` (ids, any level) and `boxes` inside the
    build's scope; returns the box ids it was queued to."""
    ids = await storage.boxes_for_targets(built["scope"], areas, boxes)
    if ids:
        args = ship_args(built["sha256"], built["size_bytes"], f"text model {built['version']}")
        await storage.feed_add(ids, "box", "-", ACTION, args, by, None)
    return list(ids)


def dumps(x: dict[str, Any]) -> str:
    return json.dumps(x, ensure_ascii=False)
