"""FacePipeline: the one object other capabilities use (``box.get(FACES).pipeline``).

    pipeline = FacePipeline(config.faces, model_dir)      # verifies and loads the models
    result = await pipeline.analyse(frame_bgr)            # faces, quality, embeddings
    decision = await pipeline.identify(frame_bgr)         # who is it (or why not)
    tracker = pipeline.liveness_tracker()                 # one per camera
    seen = await pipeline.recognise(frame_bgr, tracker)   # decision + its face + liveness
    seen.decision, seen.face.bbox, seen.face.landmarks, seen.liveness.score

``recognise`` is the call for a door camera: one detection feeds both the decision and the
liveness tracker (the tracker reuses the aligned crop too), in one hop to the worker thread.

``look_many_sync`` is the door cameras' batched call (edge/faces/scheduler.py): each
:class:`Look` says where to search (a small region around a tracked face, or a cheap scan of
the whole frame at reduced resolution) and whether to embed; the embeddings of all looks go
through SFace in one batch.

All CPU work runs on one worker thread, never on the event loop. OpenCV releases the GIL
while it works and uses both cores inside the nets itself; one thread also keeps the models'
(not thread-safe) state consistent and the frame order of a camera intact.

Door looks may also run on more *lanes* (``run_lane``; the scheduler's ``face_workers``): a
lane is one more thread with its own copy of the nets (YuNet 122 KB, SFace 10.7 MB), so two
doors' looks run side by side. Inside a net OpenCV splits the work over both cores, but on
these small inputs (a 256 px region, a 112 px face) that bought little: on a quiet box a look
took ~14 ms of wall time for ~16 ms of CPU. Two lanes use the second core for a second look
instead. OpenCV runs a parallel loop in the calling thread while its pool serves the other
lane, so the two do not oversubscribe the cores (SFace + a region detection: ~20 ms of CPU
per item from one thread or two at once, docs/access.md "Tail latency").

Threads: numpy's OpenBLAS starts one thread per core and they busy-wait after each 1:N
product, taking the core that OpenCV's nets need next. On the 2-core box that oversubscription
nearly doubled the frame time (bench/face.py, ``threads`` section), so the pipeline limits
BLAS to one thread for the process; the 1:N product is memory-bound and loses nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from edge.core.standard import new_id
from edge.faces import weights
from edge.faces.align import align
from edge.faces.config import FacesConfig
from edge.faces.detect import BlazeFaceDetector, Detector, YuNetDetector
from edge.faces.embed import SFaceEmbedder
from edge.faces.gallery import Gallery
from edge.faces.liveness import AntiSpoof, LivenessTracker, LivenessVerdict
from edge.faces.matcher import match
from edge.faces.openset import Operating, iou, operating_point
from edge.faces.quality import assess
from edge.faces.types import Decision, Face, FaceResult, FrameResult, Quality

T = TypeVar("T")
BLAS_THREADS = 1
RECENT_DECISIONS = 512  # probes kept in memory for "not this person" reports


@dataclass(frozen=True)
class Recognition:
    """One frame's answer with the face it is about, from a single detection.

    ``face`` is the face the decision is about (the largest; None when there is none);
    ``liveness`` is the tracker's verdict after this frame (None when no tracker was given).
    """

    decision: Decision
    face: Face | None
    liveness: LivenessVerdict | None = None
    embedding: np.ndarray | None = None  # the face's (raw) embedding, for tracking
    ir_face: bool | None = None  # dual-sensor camera: the face is in the IR frame too


@dataclass(frozen=True)
class Look:
    """One door camera frame's request to the face thread (edge/faces/scheduler.py).

    ``roi``: the tracked face's last box (frame pixels): search only a region around it;
    ``scan``: search the whole frame at ``scan_side`` (a cheap, coarse
    pass that finds arrivals) when there is no roi or the face left it, then refine the face
    found in its region; ``embed``: align, gate and embed the face (fusion evidence);
    ``live``: feed the liveness tracker with it. A look that neither embeds nor feeds
    liveness (a recheck of a decided face: only *where* it is) takes the scan's box as it is:
    no region search for landmarks, no alignment, nothing reads them.
    """

    frame: np.ndarray
    roi: tuple[float, float, float, float] | None = None
    scan: bool = True
    embed: bool = True
    live: bool = True
    tracker: LivenessTracker | None = None
    target_fpir: float | None = None
    ir: np.ndarray | None = None
    allowed: frozenset[str] | None = None
    scan_side: int = 384


@dataclass
class _Nets:
    """One thread's nets (not thread-safe): the face thread's, or a lane's own copy."""

    detector: Detector
    embedder: SFaceEmbedder
    sized: dict[int, Detector]


ROI_SPAN = 2.5  # a tracked face is searched for in a square this many face widths wide
ROI_STEP = 32


@dataclass(frozen=True)
class EnrolCheck:
    """Whether a photo can become a template, and why not."""

    ok: bool
    reason: str  # ok, not_an_image, no_face, several_faces, quality:<gate>
    detail: str = ""
    embedding: np.ndarray | None = None
    quality: Quality | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. close to another resident


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 2)


class FacePipeline:
    def __init__(
        self, cfg: FacesConfig, model_dir: Path, *, gallery: Gallery | None = None
    ) -> None:
        self.cfg = cfg
        threadpool_limits(limits=BLAS_THREADS, user_api="blas")  # see the module doc
        paths = weights.verify(model_dir, weights.required(cfg.detector, cfg.blazeface_range))
        self._model_dir, self._paths = model_dir, paths
        self.detector: Detector = self._new_detector()
        self.embedder = SFaceEmbedder(paths["sface"], flip=cfg.flip)
        self._local = threading.local()  # a lane thread's own nets (_Nets), see run_lane
        self._lanes: list[ThreadPoolExecutor] = []
        self._yunet_path = paths.get("yunet")
        self._sized: dict[int, Detector] = {}  # scan / region detectors, one per input size
        self.gallery = gallery if gallery is not None else Gallery(
            centre_min=cfg.centre_min, znorm_min=cfg.znorm_min, znorm_shift=cfg.znorm_shift)
        self._op_cache: dict[tuple[int, float, tuple[int, int] | None, str], Operating] = {}
        self._masks: dict[frozenset[str], tuple[int, np.ndarray, tuple[int, int]]] = {}
        self.negatives: dict[str, np.ndarray] = {}  # resident id -> (k, 128) wrong-match probes
        self._recent: OrderedDict[str, tuple[str | None, np.ndarray]] = OrderedDict()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faces")
        # Warm up both nets (first inference plans the graph) so the first door is not slow.
        self.analyse_sync(np.zeros((240, 320, 3), np.uint8))
        self.embedder.embed(np.zeros((112, 112, 3), np.uint8))

    # --- async API (event loop) --------------------------------------------------------

    def _new_detector(self) -> Detector:
        cfg = self.cfg
        if cfg.detector == "yunet":
            return YuNetDetector(self._paths["yunet"], score=cfg.detect_score,
                                 max_side=cfg.detect_max_side)
        return BlazeFaceDetector(self._model_dir, variant=cfg.blazeface_range,
                                 score=min(cfg.detect_score, 0.6))

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def run_lane(self, lane: int, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on face lane ``lane``: 0 is the face thread itself; each further lane
        is a thread with its own nets (made on first use), for door looks side by side."""
        if lane == 0:
            return await self._run(fn, *args)
        while len(self._lanes) < lane:
            self._lanes.append(ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"faces-lane{len(self._lanes) + 1}",
                initializer=self._lane_init))
        return await asyncio.get_running_loop().run_in_executor(self._lanes[lane - 1], fn,
                                                                 *args)

    def _lane_init(self) -> None:
        nets = _Nets(self._new_detector(),
                     SFaceEmbedder(self._paths["sface"], flip=self.cfg.flip), {})
        self._local.nets = nets
        nets.detector.detect(np.zeros((240, 320, 3), np.uint8))  # plan the graphs now
        nets.embedder.embed(np.zeros((112, 112, 3), np.uint8))

    def _nets(self) -> _Nets:
        """The nets of the calling thread: a lane's own, else the face thread's (read each
        time: tests swap ``detector`` on the pipeline)."""
        own = getattr(self._local, "nets", None)
        return own if own is not None else _Nets(self.detector, self.embedder, self._sized)

    async def analyse(self, frame_bgr: np.ndarray, *, max_faces: int = 5) -> FrameResult:
        return await self._run(self.analyse_sync, frame_bgr, max_faces)

    async def identify(self, frame_bgr: np.ndarray) -> Decision:
        return await self._run(self.identify_sync, frame_bgr)

    async def recognise(
        self,
        frame_bgr: np.ndarray,
        tracker: LivenessTracker | None = None,
        target_fpir: float | None = None,
        ir: np.ndarray | None = None,
        allowed: frozenset[str] | None = None,
    ) -> Recognition:
        """Decision, the face it is about and (with a tracker) liveness: one detection.
        ``target_fpir``: a door's own per-visit target (default the config's); ``ir``: the
        infrared frame of a dual-sensor camera (the face must be there too); ``allowed``: the
        door's residents (searched first, see decide_embedding)."""
        return await self._run(self.recognise_sync, frame_bgr, tracker, target_fpir, ir,
                               allowed)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn`` on the face thread (the scheduler's batches go this way)."""
        return await self._run(fn, *args)

    async def liveness(
        self, tracker: LivenessTracker, frame_bgr: np.ndarray, face: Face | None
    ) -> LivenessVerdict:
        return await self._run(tracker.update, frame_bgr, face)

    async def check_enrol(self, image_bgr: np.ndarray, resident_id: str) -> EnrolCheck:
        return await self._run(self.check_enrol_sync, image_bgr, resident_id)

    def liveness_tracker(
        self, anti_spoof: AntiSpoof | None = None, frames: int | None = None
    ) -> LivenessTracker:
        """A tracker for one camera; ``frames`` overrides ``[faces] liveness_frames``."""
        return LivenessTracker(
            self.cfg.liveness_threshold, frames or self.cfg.liveness_frames, anti_spoof
        )

    def close(self) -> None:
        for pool in (self._pool, *self._lanes):
            pool.shutdown(wait=True, cancel_futures=True)

    # --- the threshold from the gallery ----------------------------------------------------

    def operating(self, target_fpir: float | None = None,
                  size: tuple[int, int] | None = None) -> Operating | None:
        """Threshold and expected resident acceptance for a per-visit target (default the
        config's) at the current gallery (or ``size`` = (residents, templates): a door's own
        search set, ``door_mask``); None when no target is configured."""
        target = target_fpir if target_fpir is not None else self.cfg.target_fpir
        if target is None:
            return None
        kind = self.gallery.kind
        key = (len(self.gallery), target, size, kind)
        op: Operating | None = self._op_cache.get(key)
        if op is None:
            residents, templates = size or (self.gallery.residents, len(self.gallery))
            op = operating_point(self.cfg, residents, templates, target, kind)
            if len(self._op_cache) > 64:
                self._op_cache.clear()
            if op is not None:
                self._op_cache[key] = op
        return op

    def threshold(self, target_fpir: float | None = None,
                  size: tuple[int, int] | None = None) -> float | None:
        op = self.operating(target_fpir, size)
        return None if op is None else op.threshold

    def door_mask(self, allowed: frozenset[str]) -> tuple[np.ndarray, tuple[int, int]]:
        """Search mask and size (residents, templates) of a door's resident set (rebuilt
        when the gallery's rows change: a deletion then an enrolment keeps its size, and a
        mask made before knows only the residents of its time)."""
        layout = self.gallery.layout
        hit = self._masks.get(allowed)
        if hit is None or hit[0] != layout:
            mask = self.gallery.allowed_mask(allowed)
            hit = (layout, mask, (int(mask.sum()), self.gallery.rows_of(mask)))
            if len(self._masks) > 256:
                self._masks.clear()
            self._masks[allowed] = hit
        return hit[1], hit[2]

    # --- the stages (worker thread) ----------------------------------------------------

    def analyse_sync(self, frame: np.ndarray, max_faces: int = 5,
                     enrol: bool = False) -> FrameResult:
        """``enrol``: an enrolment photo (the strict quality gates); otherwise a probe frame
        (the door gates, FacesConfig.visit_min_*)."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        faces = self._nets().detector.detect(frame)[:max_faces]
        timings["detect"] = _ms(t)
        size = (frame.shape[1], frame.shape[0])
        results = []
        t_align = t_quality = t_embed = 0.0
        for face in faces:
            t = time.perf_counter()
            crop = align(frame, face.landmarks)
            t_align += _ms(t)
            t = time.perf_counter()
            q = assess(face, size, crop, self.cfg, door=not enrol)
            t_quality += _ms(t)
            emb = None
            if q.ok:
                t = time.perf_counter()
                emb = self._nets().embedder.embed(crop)
                t_embed += _ms(t)
            results.append(FaceResult(face=face, quality=q, embedding=emb, aligned=crop))
        timings.update(align=t_align, quality=t_quality, embed=t_embed)
        return FrameResult(faces=results, timings_ms=timings, frame_size=size)

    def detector_at(self, side: int) -> Detector:
        """A detector for inputs of at most ``side`` pixels (larger ones are scaled down): a
        scan gets its own instance (the file is 122 KB); at ``detect_max_side`` (the region
        search) it is the whole-frame detector itself, not a second copy of it. BlazeFace
        always works at its own fixed size."""
        nets = self._nets()
        if self._yunet_path is None or side == self.cfg.detect_max_side:
            return nets.detector
        det = nets.sized.get(side)
        if det is None:
            det = nets.sized[side] = YuNetDetector(
                self._yunet_path, score=self.cfg.detect_score, max_side=side)
        return det

    def detect_region(self, frame: np.ndarray,
                      box: tuple[float, float, float, float]) -> list[Face]:
        """Faces in a square region ROI_SPAN face widths wide around ``box``, in frame
        coordinates. The region is searched at the scale a whole-frame detection would use
        (``detect_max_side``), so its landmarks are as precise as before (liveness cues were
        calibrated on them), at a fraction of the pixels; its size is rounded up to 32 px so
        the net is planned for a handful of sizes only."""
        x, y, w, h = box
        span = ROI_SPAN * max(w, h, 8.0)
        x0, y0 = round(x + w / 2 - span / 2), round(y + h / 2 - span / 2)
        x1, y1 = x0 + int(span), y0 + int(span)
        fh, fw = frame.shape[:2]
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(fw, x1), min(fh, y1)
        if cx1 - cx0 < 8 or cy1 - cy0 < 8:
            return []
        crop = frame[cy0:cy1, cx0:cx1]
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):  # at the frame's edge: pad to the square
            crop = cv2.copyMakeBorder(crop, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1,
                                      cv2.BORDER_CONSTANT, value=(0, 0, 0))
        full = min(1.0, self.cfg.detect_max_side / max(fh, fw))
        side = int(min(max(-(-crop.shape[0] * full // ROI_STEP) * ROI_STEP, ROI_STEP * 3),
                       self.cfg.detect_max_side))
        scale = side / crop.shape[0]
        small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA
                           if scale < 1 else cv2.INTER_LINEAR)
        out = []
        # One detector for every region size (the whole-frame one): re-planning YuNet for a
        # new input size costs no more than a detection on OpenCV 5 and gives the same faces
        # bit for bit, while one instance per size kept each size's buffers (+216 MB over the
        # 18 sizes; bench/rss.py).
        for f in self.detector_at(self.cfg.detect_max_side).detect(small):
            bx, by, bw, bh = f.bbox
            out.append(Face(bbox=(bx / scale + x0, by / scale + y0, bw / scale, bh / scale),
                            landmarks=(f.landmarks / scale + np.array([x0, y0], np.float32)
                                       ).astype(np.float32),
                            score=f.score))
        return out

    def look_many_sync(self, looks: list[Look]) -> list[Recognition]:
        """The door cameras' batched call: find each look's face (region or scan), gate it,
        embed all usable faces in one SFace batch, then match and update liveness per look.
        The decision of a look is exactly what ``recognise`` gives for that face."""
        staged: list[tuple[float, dict[str, float], FaceResult | None]] = []
        crops: list[np.ndarray] = []
        for lk in looks:
            t0 = time.perf_counter()
            timings: dict[str, float] = {}
            faces: list[Face] = []
            where_only = not lk.embed and not (lk.live and lk.tracker is not None)
            if lk.roi is not None:
                faces = self.detect_region(lk.frame, lk.roi)
                timings["detect_region"] = _ms(t0)
            if not faces and (lk.scan or lk.roi is None):
                t = time.perf_counter()
                found = self.detector_at(lk.scan_side).detect(lk.frame)
                timings["scan"] = _ms(t)
                if found and where_only:
                    faces = found[:1]
                elif found:  # the scan is coarse: landmarks from a region search around it
                    t = time.perf_counter()
                    faces = self.detect_region(lk.frame, found[0].bbox) or found[:1]
                    timings["detect_region"] = timings.get("detect_region", 0.0) + _ms(t)
            if not faces:
                staged.append((t0, timings, None))
                continue
            face = faces[0]
            if where_only:
                staged.append((t0, timings, FaceResult(face, _UNGATED, None, None)))
                continue
            t = time.perf_counter()
            crop = align(lk.frame, face.landmarks)
            q = assess(face, (lk.frame.shape[1], lk.frame.shape[0]), crop, self.cfg, door=True)
            timings["align_quality"] = _ms(t)
            staged.append((t0, timings, FaceResult(face, q, None, crop)))
            if q.ok and lk.embed:
                crops.append(crop)
        t = time.perf_counter()
        embs = iter(self._nets().embedder.embed_batch(crops))
        embed_ms = _ms(t) / max(len(crops), 1)  # the batch's time, shared by its faces
        out = []
        for lk, (t0, timings, fr) in zip(looks, staged, strict=True):
            if fr is not None and fr.quality.ok and lk.embed:
                fr = FaceResult(fr.face, fr.quality, next(embs), fr.aligned)
                timings["embed"] = embed_ms
            out.append(self._look_result(lk, fr, timings, t0))
        return out

    def _look_result(self, lk: Look, fr: FaceResult | None, timings: dict[str, float],
                     t0: float) -> Recognition:
        frame = FrameResult([fr] if fr is not None else [], timings,
                            (lk.frame.shape[1], lk.frame.shape[0]))
        if fr is not None and not lk.embed:
            # A recheck of a face already decided: where it is, nothing to decide.
            d = Decision(new_id("fd"), None, None, None, "tracked", faces=1,
                         timings_ms=_total(timings, t0))
            return Recognition(d, fr.face)
        decision = self._decision(frame, lk.target_fpir, lk.allowed, t0)
        verdict = None
        if lk.tracker is not None and lk.live:
            t = time.perf_counter()
            verdict = lk.tracker.update(lk.frame, fr.face if fr else None,
                                        aligned=fr.aligned if fr else None)
            decision.timings_ms["liveness"] = _ms(t)
        face = fr.face if fr is not None else None
        ir_face = None if lk.ir is None or face is None else self.face_in_ir(lk.ir, face)
        return Recognition(decision, face, verdict, fr.embedding if fr else None, ir_face)

    def identify_sync(self, frame: np.ndarray) -> Decision:
        return self._decide(frame)[0]

    def recognise_sync(
        self,
        frame: np.ndarray,
        tracker: LivenessTracker | None = None,
        target_fpir: float | None = None,
        ir: np.ndarray | None = None,
        allowed: frozenset[str] | None = None,
    ) -> Recognition:
        decision, best = self._decide(frame, target_fpir, allowed)
        face = best.face if best is not None else None
        verdict = None
        if tracker is not None:
            t = time.perf_counter()
            if best is None:
                verdict = tracker.update(frame, None)  # the face left: start over
            else:
                verdict = tracker.update(frame, best.face, aligned=best.aligned)
            decision.timings_ms["liveness"] = _ms(t)
        emb = best.embedding if best is not None else None
        ir_face = None if ir is None or face is None else self.face_in_ir(ir, face)
        return Recognition(decision, face, verdict, emb, ir_face)

    def face_in_ir(self, ir: np.ndarray, face: Face, min_iou: float = 0.3) -> bool:
        """Whether the infrared frame shows a face where the colour frame has one (a screen
        shows none in IR). Looks at the region around the face only: one small detection."""
        x, y, w, h = face.bbox
        x0, y0 = int(max(0, x - 0.5 * w)), int(max(0, y - 0.5 * h))
        x1, y1 = int(min(ir.shape[1], x + 1.5 * w)), int(min(ir.shape[0], y + 1.5 * h))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return False
        crop = ir[y0:y1, x0:x1]
        crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop
        for f in self._nets().detector.detect(np.ascontiguousarray(crop)):
            fx, fy, fw, fh = f.bbox
            if iou((fx + x0, fy + y0, fw, fh), face.bbox) >= min_iou:
                return True
        return False

    def decide_embedding(self, emb: np.ndarray, target_fpir: float | None = None,
                         allowed: frozenset[str] | None = None):
        """The matcher's verdict for one embedding at the derived threshold (the same call a
        frame goes through; bench/face.py replays door-camera visits through it). ``allowed``:
        the door's residents: searched alone, the threshold derived for their number, with
        the guard against a closer resident outside them."""
        if allowed is None:
            return match(self.gallery, emb, self.negatives, self.cfg, self.threshold(target_fpir))
        mask, size = self.door_mask(allowed)
        thr = self.threshold(target_fpir, size)
        return match(self.gallery, emb, self.negatives, self.cfg, thr, allowed=mask)

    def _decide(
        self, frame: np.ndarray, target_fpir: float | None = None,
        allowed: frozenset[str] | None = None,
    ) -> tuple[Decision, FaceResult | None]:
        t0 = time.perf_counter()
        fr = self.analyse_sync(frame, max_faces=1)  # the largest face is the one at the door
        d = self._decision(fr, target_fpir, allowed, t0)
        return d, (fr.faces[0] if fr.faces else None)

    def _decision(self, fr: FrameResult, target_fpir: float | None,
                  allowed: frozenset[str] | None, t0: float) -> Decision:
        """The decision for a frame's (largest) face, analysed already."""
        timings = dict(fr.timings_ms)
        did = new_id("fd")
        if not fr.faces:
            return Decision(did, None, None, None, "no_face", timings_ms=_total(timings, t0))
        best = fr.faces[0]
        thumb = self._thumbnail(best)
        if best.embedding is None:
            return Decision(
                did,
                None,
                None,
                None,
                f"quality:{best.quality.reason}",
                faces=len(fr.faces),
                timings_ms=_total(timings, t0),
                thumbnail_jpeg=thumb,
            )
        t = time.perf_counter()
        m = self.decide_embedding(best.embedding, target_fpir, allowed)
        timings["match"] = _ms(t)
        self._remember(did, m.candidate_id, best.embedding)
        return Decision(
            id=did,
            resident_id=m.resident_id,
            similarity=m.similarity,
            margin=m.margin,
            reason=m.reason,
            candidate_id=m.candidate_id,
            threshold=m.threshold,
            faces=len(fr.faces),
            timings_ms=_total(timings, t0),
            thumbnail_jpeg=thumb,
        )

    def check_enrol_sync(self, image: np.ndarray | None, resident_id: str) -> EnrolCheck:
        if image is None or image.ndim != 3 or image.shape[2] != 3:
            return EnrolCheck(False, "not_an_image", "the file could not be decoded as an image")
        fr = self.analyse_sync(image, max_faces=5, enrol=True)
        if not fr.faces:
            return EnrolCheck(False, "no_face", "no face was found in the photo")
        # A face much smaller than the main one is a bystander in the background; a second
        # face of similar size makes the photo ambiguous.
        main = fr.faces[0].face.eye_distance
        big = [f for f in fr.faces if f.face.eye_distance >= 0.5 * main]
        if len(big) > 1:
            return EnrolCheck(
                False, "several_faces", f"{len(big)} faces in the photo; use a photo of one person"
            )
        best = fr.faces[0]
        if best.embedding is None:
            q = best.quality
            return EnrolCheck(False, f"quality:{q.reason}", _quality_detail(q, self.cfg), quality=q)
        warnings = []
        hit = self.gallery.search(best.embedding, exclude=resident_id)
        z = self.gallery.kind == "znorm"  # the duplicate limit on the scale scores are on
        warn = self.cfg.duplicate_warn_znorm if z else self.cfg.duplicate_warn
        if hit is not None and hit.similarity >= warn:
            warnings.append(
                f"possible duplicate: this face is close to resident {hit.resident_id} "
                f"({'z-score' if z else 'similarity'} {hit.similarity:.2f})"
            )
        return EnrolCheck(
            True, "ok", embedding=best.embedding, quality=best.quality, warnings=warnings
        )

    # --- "not this person" -------------------------------------------------------------

    def _remember(self, decision_id: str, candidate: str | None, emb: np.ndarray) -> None:
        self._recent[decision_id] = (candidate, emb)
        while len(self._recent) > RECENT_DECISIONS:
            self._recent.popitem(last=False)

    def recent_probe(self, decision_id: str) -> tuple[str | None, np.ndarray] | None:
        """The candidate and probe of a recent decision (kept in memory only)."""
        return self._recent.get(decision_id)

    def set_negatives(self, resident_id: str, vecs: np.ndarray) -> None:
        if len(vecs):
            self.negatives[resident_id] = np.asarray(vecs, np.float32).reshape(-1, 128)
        else:
            self.negatives.pop(resident_id, None)

    def _thumbnail(self, fr: FaceResult) -> bytes | None:
        if not self.cfg.keep_thumbnails or fr.aligned is None:
            return None
        ok, buf = cv2.imencode(".jpg", fr.aligned, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return buf.tobytes() if ok else None


_UNGATED = Quality(False, "not_checked", 0.0)  # a where-only look: no crop, no gates


def _total(timings: dict[str, float], t0: float) -> dict[str, float]:
    timings["total"] = _ms(t0)
    return timings


def _quality_detail(q: Quality, cfg: FacesConfig) -> str:
    m = q.metrics
    return {
        "face_too_small": f"face too small: eyes {m.get('eye_px')} px apart, need {cfg.min_eye_px}",
        "partial_face": "the face is cut off by the photo's edge",
        "pose": f"face turned away (yaw {m.get('yaw')}, roll {m.get('roll_deg')} deg)",
        "too_dark": f"too dark (brightness {m.get('brightness')}, need {cfg.min_brightness})",
        "too_bright": f"too bright (brightness {m.get('brightness')}, max {cfg.max_brightness})",
        "blurry": f"blurred (sharpness {m.get('sharpness')}, need {cfg.min_sharpness})",
    }.get(q.reason, q.reason)
