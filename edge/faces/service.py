"""The ``faces`` daemon service: loads the models and the gallery at start, keeps the gallery
in step with the store, and serves the enrolment API (edge/faces/routes.py).

Start-up fails, naming the file, when a model is missing, corrupt or not the manifest's.
The gallery follows the ``face_changes`` log (filled by SQL triggers), so enrolments and
deletions from the API, from ``qilu-edge resident ...`` in another process, or by cascade all
reach the in-memory matrix incrementally within a second.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from edge.core.box import Box
from edge.core.config import CoreConfig
from edge.core.memory import trim_heap
from edge.core.service import Service, cancel
from edge.faces import store as store_faces
from edge.faces import weights
from edge.faces.pipeline import FacePipeline
from edge.faces.texts import mismatch_texts

log = logging.getLogger(__name__)
POLL_S = 1.0


def model_dir(config: CoreConfig) -> Path:
    d = config.faces.model_dir
    if d is None:
        return weights.default_model_dir()
    if not d.is_absolute() and config.source is not None:
        d = config.source.parent / d
    return d


class FaceStartError(RuntimeError):
    pass


class FacesService(Service):
    name = "faces"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.pipeline: FacePipeline | None = None
        self.cursor = 0
        self._task: asyncio.Task[None] | None = None
        self._refresh_lock = asyncio.Lock()
        self.loaded_ms: float | None = None
        self._new_templates: list[str] = []  # added since the statistics were last stored
        self._stored_basis = -1  # the gallery's basis_version last stored in full
        self.by_model: dict[str, int] = {}  # templates per embedding label
        # templates not of the current embedding kind (store_faces.embedding_mismatch)
        self.mismatch: dict[str, Any] | None = None

    @property
    def enabled(self) -> bool:
        return self.box.config.faces.enabled

    async def start(self) -> None:
        if not self.enabled:
            log.info("face recognition disabled ([faces] enabled = false)")
            return
        cfg = self.box.config.faces
        mdir = model_dir(self.box.config)
        t0 = time.perf_counter()
        try:
            self.pipeline = await asyncio.to_thread(FacePipeline, cfg, mdir)
        except weights.ModelError as e:
            raise FaceStartError(f"face recognition cannot start: {e}") from e
        except Exception as e:  # OpenCV refusing a file that passed the hash is still fatal
            raise FaceStartError(f"face recognition cannot load its models from {mdir}: {e}") from e
        # Cursor first: a change landing between the two reads is replayed, harmlessly.
        cursor, _, negatives = await self.box.store.run(
            store_faces.load_all_negatives_only, self.box.store.sync
        )
        tids, rids, mat = await self.box.store.run(store_faces.load_matrix, self.box.store.sync)
        gallery = self.pipeline.gallery
        if tids:
            await asyncio.to_thread(gallery.add_many, tids, rids, mat)
        del mat
        for rid, vecs in negatives.items():
            self.pipeline.set_negatives(rid, vecs)
        self.cursor = cursor
        await self._save_stats()
        if self.mismatch is not None:
            log.warning("faces: %s", self.mismatch_status()["warning"])
        await asyncio.to_thread(trim_heap)  # the loads' freed buffers back to the OS
        self.loaded_ms = round((time.perf_counter() - t0) * 1000, 1)
        log.info(
            "faces: %s + sface from %s, %d templates of %d residents (%.0f ms)",
            cfg.detector,
            mdir,
            len(gallery),
            gallery.residents,
            self.loaded_ms,
        )
        self._task = asyncio.create_task(self._follow(), name="faces-follow")

    async def stop(self) -> None:
        await cancel(self._task)
        if self.pipeline:
            await asyncio.to_thread(self.pipeline.close)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self.refresh()
            except Exception:
                log.exception("faces: following the store's changes failed; retrying")

    async def refresh(self) -> int:
        """Apply the store's face changes since the last look; returns how many."""
        if self.pipeline is None:
            return 0
        async with self._refresh_lock:
            changes = await self.box.store.run(
                store_faces.changes_after, self.box.store.sync, self.cursor
            )
            p = self.pipeline
            touched_neg: set[str] = set()
            for c in changes:
                if c.op == "add_template" and c.embedding is not None:
                    if p.gallery.add(c.item_id, c.resident_id, c.embedding):
                        self._new_templates.append(c.item_id)
                elif c.op == "del_template":
                    p.gallery.remove(c.item_id)
                elif c.op in ("add_negative", "del_negative"):
                    touched_neg.add(c.resident_id)
                self.cursor = c.seq
            for rid in touched_neg:
                vecs = await self.box.store.run(store_faces.negatives_of, self.box.store.sync, rid)
                p.set_negatives(rid, vecs)
            if changes:
                await self._save_stats()
            return len(changes)

    def operating(self) -> dict[str, Any]:
        """Threshold and expected resident acceptance: the config's target and each door's."""
        p = self.pipeline
        if p is None:
            return {}
        out: dict[str, Any] = {}
        op = p.operating()
        out["default"] = op.as_dict() if op else {"threshold": p.cfg.threshold, "fixed": True}
        for d in self.box.config.doors:
            if d.face_target_fpir is not None:
                dop = p.operating(d.face_target_fpir)
                if dop is not None:
                    out[f"door:{d.id}"] = dop.as_dict()
        return out

    async def _save_stats(self) -> None:
        """The gallery's statistics with the gallery version they belong to: the mean, the
        score scale, the operating point and each template's cohort statistics - those of the
        templates added since the last save, or all of them after a rebase (the gallery
        recomputes everything once it has changed by a few per cent; off the event loop)."""
        p = self.pipeline
        if p is None:
            return
        g = p.gallery
        mean = await asyncio.to_thread(g.mean)  # a pending rebase runs here, not on a door
        full = g.basis_version != self._stored_basis
        basis = g.basis_version
        new, self._new_templates = self._new_templates, []
        stats = await asyncio.to_thread(g.row_stats, None if full else new)
        self.by_model = await self.box.store.run(store_faces.templates_by_model,
                                                 self.box.store.sync)
        label = weights.embedding_label(self.box.config.faces.flip)
        self.mismatch = None if set(self.by_model) <= {label} else await self.box.store.run(
            store_faces.embedding_mismatch_of, self.box.store.sync, label)
        await self.box.store.run(
            store_faces.save_gallery_stats, self.box.store.sync, self.cursor, len(g),
            g.residents, mean, self.operating(), g.kind, g.cohort_size(), stats, full,
        )
        self._stored_basis = basis

    def mismatch_status(self) -> dict[str, Any]:
        """The embedding mismatch and what to do, as the doctor says it (edge/faces/texts.py)."""
        assert self.mismatch is not None
        detail, hint = mismatch_texts(self.mismatch, self.box.config.faces.flip)
        return {**self.mismatch, "warning": f"{detail.en}; {hint.en}",
                "warning_zh": f"{detail.zh}；{hint.zh}"}  # fmt: skip

    def status(self) -> dict[str, Any]:
        if self.pipeline is None:
            return {"enabled": False}
        g = self.pipeline.gallery
        return {
            "enabled": True,
            "detector": self.box.config.faces.detector,
            "templates": len(g),
            "residents": g.residents,
            "gallery_mb": round(g.nbytes() / 1e6, 1),
            "flip": self.box.config.faces.flip,
            "templates_by_model": self.by_model,
            # None, or the templates not of the current kind and what to do (doctor: the
            # face_templates check)
            "embedding_mismatch": None if self.mismatch is None else self.mismatch_status(),
            "load_ms": self.loaded_ms,
            "operating": self.operating(),
        }
