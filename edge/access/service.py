"""The access engine: each door's camera -> motion gate -> face pipeline + liveness (and QR)
-> policy -> relay, and every decision an AccessEvent.

One watcher task per door that names a camera. It always takes the camera's newest frame
(never a backlog), skips frames while nothing moves, and looks harder while a face is there.
Faces are tracked across frames (edge/faces/openset.py: IoU on detector boxes plus an
appearance check); a face is granted only when k of the last n usable frames of its track name
the same resident above the threshold derived from the gallery (and none names another), and
liveness agrees. A cool-down stops one person from re-triggering the door; denied events are
rate-limited per tracked face, so every stranger's visit leaves one.

Also here: remote open (API and the cloud's ``door.open`` command), PIN and QR pass checks,
and device health -> repair tickets (through ``box.get(TICKETS)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from drivers.cameras.base import CameraDriver
from drivers.doors.base import DoorDriver, UnlockResult
from edge.access import passes, policy
from edge.access import store as db
from edge.access.motion import MotionGate
from edge.access.second_factor import SecondFactors
from edge.core.box import Box
from edge.core.commands import CommandError
from edge.core.config import ConfigError
from edge.core.service import Service
from edge.core.standard import AccessEvent, Alert, Command, DeviceHealth, new_id
from edge.devices import DEVICES
from edge.faces import FACES
from edge.faces.openset import FaceTracker, Frame, Fused, Track
from edge.faces.pipeline import Look
from edge.faces.scheduler import FaceScheduler
from edge.tickets import TICKETS

log = logging.getLogger(__name__)
DOOR_LOCK_MAX_S = 3600.0  # the longest a guessed-at keypad stays locked (each lock doubles)


@dataclass
class Outcome:
    """What the engine did for one request (returned by the API)."""

    granted: bool
    reason: str
    event_id: str
    relay_changed: bool | None = None
    resident_id: str | None = None
    pass_id: str | None = None
    latency_ms: float | None = None


@dataclass
class WatchStats:
    frames: int = 0
    examined: int = 0  # frames that passed the motion gate
    faces: int = 0
    qr_tries: int = 0
    decisions: int = 0
    looks: int = 0  # face-thread looks that ran (the scheduler's path)
    dropped: int = 0  # looks dropped by the scheduler (older than the deadline)
    last_ms: float | None = None
    timings: list[float] = field(default_factory=list)


class AccessService(Service):
    name = "access"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.access
        self.tz = ZoneInfo(box.config.box.timezone)
        self.key: bytes = b""
        self.doors_cfg = {d.id: d for d in box.config.doors}
        unknown = [d for d in self.cfg.default_doors if d not in self.doors_cfg]
        if unknown:
            raise ConfigError(f"access.default_doors: no door {unknown[0]!r} is configured"
                              f" (known: {', '.join(self.doors_cfg) or 'none'})")
        self.defaults = db.Defaults(frozenset(self.cfg.default_doors), self.cfg.own_building)
        self._tasks: list[asyncio.Task] = []
        self._cool: dict[tuple[str, str], float] = {}  # (door, who) -> monotonic until
        self._pin_fail: dict[tuple[str, str], list[float]] = {}  # (door, source|*) -> times
        # door -> (keypad locked until, locks in a row): a door guessed at again soon after a
        # lock stays locked twice as long each time (security probe 4)
        self._door_lock: dict[str, tuple[float, int]] = {}
        # One PIN at a time per door, from the lockout checks until a failure is counted:
        # PINs posted together otherwise all passed the checks while the store looked them up.
        self._pin_locks = {d: asyncio.Lock() for d in self.doors_cfg}
        self.stats: dict[str, WatchStats] = {}
        self._face_grant_hooks: list[Callable[[str, str], Awaitable[None]]] = []
        # door -> residents with rights there (None: everyone may, search the whole gallery)
        self.door_sets: dict[str, frozenset[str] | None] = {}
        self._hook_tasks: set[asyncio.Task] = set()
        self.factors = SecondFactors(self)  # PIN / phone after the face where needed
        self.scheduler: FaceScheduler | None = None  # all doors' face work (made at first use)
        self._qr_threads: ThreadPoolExecutor | None = None  # door cameras' QR tries
        box.commands.register("door", "open", self._cmd_open)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.key = await self.box.store.run(db.box_key, self.box.store.sync)
        # Old thumbnails go even with the engine or keep_thumbnails off (privacy).
        self._tasks.append(asyncio.create_task(self._purge_thumbnails_loop(), name="thumb-purge"))
        if not self.cfg.enabled:
            return
        for door_id, dcfg in self.doors_cfg.items():
            if dcfg.camera:
                self.stats[door_id] = WatchStats()
                self._tasks.append(
                    asyncio.create_task(self._watch(door_id, dcfg.camera), name=f"watch-{door_id}")
                )
        self._tasks.append(asyncio.create_task(self._health_tickets(), name="access-health"))
        if self.cfg.door_gallery_refresh_s > 0:
            await self.refresh_door_sets()
            self._tasks.append(asyncio.create_task(self._follow_rights(), name="door-sets"))

    async def refresh_door_sets(self) -> None:
        """Per-door search sets from the rights in the store (face doors only)."""
        for door_id, dcfg in self.doors_cfg.items():
            if not dcfg.camera:
                continue
            ids, total = await self.box.store.run(
                db.door_residents, self.box.store.sync, door_id, dcfg.building, self.defaults)
            self.door_sets[door_id] = None if len(ids) >= total else ids

    async def _follow_rights(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.door_gallery_refresh_s)
            try:
                await self.refresh_door_sets()
            except Exception:
                log.exception("access: refreshing the per-door search sets failed; retrying")

    async def stop(self) -> None:
        for t in [*self._tasks, *self._hook_tasks]:
            t.cancel()
        for t in [*self._tasks, *self._hook_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self.scheduler is not None:
            await self.scheduler.close()
        if self._qr_threads is not None:
            self._qr_threads.shutdown(wait=False, cancel_futures=True)
            self._qr_threads = None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "watching": {
                d: {k: v for k, v in s.__dict__.items() if k != "timings"}
                for d, s in self.stats.items()
            }
        }
        pipeline = self._faces()
        if pipeline is not None:
            # What each face door's target gives for the residents it searches.
            ops = {}
            for d in self.stats:
                allowed = self.door_sets.get(d)
                n = pipeline.door_mask(allowed)[1] if allowed is not None else None
                op = pipeline.operating(self.doors_cfg[d].face_target_fpir, n)
                if op is not None:
                    ops[d] = op.as_dict()
                    ask = self.factors.required(d)
                    relaxed = pipeline.operating(self.face_target(d), n) if ask else None
                    if relaxed is not None:  # what the face search runs at, with the PIN
                        ops[d]["second_factor"] = {"why": ask, **relaxed.as_dict()}
            out["face_doors"] = ops
        if self.scheduler is not None:
            out["face_load"] = self.scheduler.status()
        return out

    def face_target(self, door_id: str) -> float | None:
        """The per-visit stranger target a door's face search runs at: its own (or the faces
        config's), or, where a second factor follows the face, the looser
        ``second_factor_face_fpir`` (the face then only names whom to ask for the PIN)."""
        dcfg = self.doors_cfg.get(door_id)
        own = dcfg.face_target_fpir if dcfg is not None else None
        if self.factors.required(door_id) is None:
            return own
        pipeline = self._faces()
        base = own if own is not None else (pipeline.cfg.target_fpir if pipeline else None)
        return max(base or 0.0, self.cfg.second_factor_face_fpir)

    def _score_scale(self) -> str | None:
        """The scale face scores are on now (a gallery moves to z-scores at znorm_min)."""
        pipeline = self._faces()
        return None if pipeline is None else pipeline.gallery.kind

    # --- devices ---------------------------------------------------------------------------

    def door(self, door_id: str) -> DoorDriver:
        try:
            return self.box.get(DEVICES).get("door", door_id)
        except KeyError:
            raise LookupError(f"no door {door_id!r}") from None

    def camera(self, camera_id: str) -> CameraDriver:
        return self.box.get(DEVICES).get("camera", camera_id)

    def _faces(self) -> Any:
        try:
            svc = self.box.get(FACES)
        except KeyError:
            return None
        return getattr(svc, "pipeline", None)

    # --- the one way a door opens ------------------------------------------------------------

    async def grant(
        self,
        door_id: str,
        method: str,
        reason: str,
        *,
        t0: float | None = None,
        **fields: Any,
    ) -> Outcome:
        """Energise the door, then log the granted event with what the relay read back."""
        thumb = fields.pop("thumbnail_jpeg", None)  # kept beside the event, never in it
        drv = self.door(door_id)
        res: UnlockResult = await drv.open()
        latency = round((time.monotonic() - t0) * 1000, 2) if t0 is not None else None
        # A relay that reads back off after the write did not open the door: not granted
        # (before: granted with relay_changed false, and a pass use spent at a shut door).
        ok = res.ok and res.changed is not False
        ev = AccessEvent(
            id=new_id("ae"),
            door_id=door_id,
            method=method,  # type: ignore[arg-type]
            decision="granted" if ok else "denied",
            reason=reason if ok else ("door_offline" if not res.ok else "relay_not_switched"),
            latency_ms=latency,
            relay_changed=res.changed,
            **fields,
        )
        # The face thumbnail in the same transaction: the event is never listed without it.
        await self.box.store.run(db.record_event, self.box.store.sync, ev, thumb)
        if not ok:
            log.warning("door %s: %s granted but the relay failed: %s", door_id, method,
                        res.detail or "it reads back off")
        return Outcome(ok, ev.reason, ev.id, res.changed, fields.get("resident_id"),
                       fields.get("pass_id"), latency)

    async def deny(self, door_id: str, method: str, reason: str, **fields: Any) -> Outcome:
        thumb = fields.pop("thumbnail_jpeg", None)
        ev = AccessEvent(
            id=new_id("ae"), door_id=door_id, method=method, decision="denied",  # type: ignore[arg-type]
            reason=reason, **fields,
        )
        # The face thumbnail in the same transaction: the event is never listed without it.
        await self.box.store.run(db.record_event, self.box.store.sync, ev, thumb)
        return Outcome(False, reason, ev.id, None, fields.get("resident_id"),
                       fields.get("pass_id"), fields.get("latency_ms"))

    async def purge_thumbnails(self) -> int:
        """Remove thumbnails older than [access] thumbnail_days (kept or not any more)."""
        before = db.iso(datetime.now(UTC) - timedelta(days=self.cfg.thumbnail_days))
        return await self.box.store.run(db.purge_thumbnails, self.box.store.sync, before)

    async def _purge_thumbnails_loop(self) -> None:
        while True:
            try:
                if n := await self.purge_thumbnails():
                    log.info("access: removed %d face thumbnails past thumbnail_days", n)
            except Exception:
                log.exception("access: purging face thumbnails failed; retrying")
            await asyncio.sleep(self.cfg.thumbnail_purge_s)

    async def facts(self, resident_id: str, now: datetime | None = None) -> db.Facts:
        """What the policy needs about a resident, with this community's default rights."""
        return await self.box.store.run(
            db.facts, self.box.store.sync, resident_id, db.iso(now), self.defaults
        )

    async def check_policy(self, resident_id: str, door_id: str) -> str | None:
        now = datetime.now(self.tz)
        facts = await self.facts(resident_id, now)
        building = self.doors_cfg[door_id].building if door_id in self.doors_cfg else None
        return policy.evaluate(facts, door_id, building, now)

    # --- remote open ------------------------------------------------------------------------

    async def remote_open(self, door_id: str, actor: str, role: str | None) -> Outcome:
        """Staff open any door; a resident opens a door their own rights allow."""
        self.door(door_id)  # LookupError for an unknown door
        if role == "resident":
            why = await self.check_policy(actor, door_id)
            if why is not None:
                return await self.deny(door_id, "remote", why, actor=actor, resident_id=actor)
            return await self.grant(door_id, "remote", "remote", actor=actor, resident_id=actor)
        return await self.grant(door_id, "remote", "remote", actor=actor)

    async def _cmd_open(self, target_id: str, cmd: Command) -> str:
        try:
            out = await self.remote_open(target_id, cmd.actor or "cloud", "staff")
        except LookupError as e:
            raise CommandError(str(e)) from e
        if not out.granted:
            raise CommandError(f"door {target_id} did not open: {out.reason}")
        return f"opened (event {out.event_id}, relay read back: {out.relay_changed})"

    # --- passes -------------------------------------------------------------------------------

    async def use_pass(self, door_id: str, pass_id: str, method: str,
                       t0: float | None = None) -> Outcome:
        self.door(door_id)
        # The resident who issued the pass must still be allowed here now (not blocked,
        # suspended, moved out, stripped of the door or outside their hours).
        host = await self.box.store.run(db.pass_resident, self.box.store.sync, pass_id)
        if host is not None:
            why = await self.check_policy(host, door_id)
            if why is not None:
                return await self.deny(door_id, method, f"issuer_{why}", pass_id=pass_id,
                                       resident_id=host)
        now = db.iso()
        why, resident = await self.box.store.run(
            db.use_pass, self.box.store.sync, pass_id, door_id, method, now
        )
        if why is not None:
            return await self.deny(door_id, method, why, pass_id=pass_id, resident_id=resident)
        out = await self.grant(door_id, method, "pass", t0=t0, pass_id=pass_id,
                               resident_id=resident)
        if not out.granted:  # the relay failed: the door stayed shut, the use is not spent
            await self.box.store.run(db.unuse_pass, self.box.store.sync, pass_id, door_id, now)
        return out

    async def enter_qr(self, door_id: str, text: str, t0: float | None = None) -> Outcome:
        pass_id = passes.verify_qr(self.key, text)
        if pass_id is None:
            self.door(door_id)
            return await self.deny(door_id, "qr", "bad_signature")
        return await self.use_pass(door_id, pass_id, "qr", t0)

    def _recent_fails(self, key: tuple[str, str]) -> int:
        now = time.monotonic()
        fails = [t for t in self._pin_fail.get(key, []) if now - t < self.cfg.pin_lockout_s]
        if fails:
            self._pin_fail[key] = fails
        else:
            self._pin_fail.pop(key, None)  # bounded: only sources that failed lately stay
        return len(fails)

    def pin_locked(self, door_id: str, source: str = "") -> bool:
        """Locked for this source (its own wrong PINs) or for the whole door (wrong PINs from
        many sources together): one passer-by can no longer lock a door for everyone."""
        return (self._recent_fails((door_id, source)) >= self.cfg.pin_max_failures
                or time.monotonic() < self._door_lock.get(door_id, (0.0, 0))[0])

    async def pin_failed(self, door_id: str, source: str) -> None:
        """Count a wrong PIN for its source and the door. pin_door_max_failures of them lock
        the door's keypad for pin_lockout_s, twice as long for each lock that follows the last
        one within an hour (at most an hour), with a keypad_guessing alert: a lock of the same
        length every time let a guesser try ~43,000 pass PINs a day against every live pass
        of the door (security probe 4)."""
        now = time.monotonic()
        self._pin_fail.setdefault((door_id, source), []).append(now)
        self._pin_fail.setdefault((door_id, "*"), []).append(now)
        if self._recent_fails((door_id, "*")) < self.cfg.pin_door_max_failures:
            return
        self._pin_fail.pop((door_id, "*"), None)
        until, n = self._door_lock.get(door_id, (0.0, 0))
        n = n + 1 if now - until < DOOR_LOCK_MAX_S else 1
        lock_s = min(self.cfg.pin_lockout_s * 2 ** min(n - 1, 32), DOOR_LOCK_MAX_S)
        self._door_lock[door_id] = (now + lock_s, n)
        log.warning("door %s: keypad locked %g s after %d wrong PINs (lock %d in a row)",
                    door_id, lock_s, self.cfg.pin_door_max_failures, n)
        await self.box.store.record(Alert(
            id=new_id("al"), level="warning" if n == 1 else "critical", type="keypad_guessing",
            message=f"门 {door_id} 的键盘疑似被猜密码：{self.cfg.pin_door_max_failures} 次错误，"
                    f"键盘锁定 {lock_s:g} 秒（连续第 {n} 次）",
            evidence=[door_id]))

    async def enter_pin(self, door_id: str, pin: str, source: str = "") -> Outcome:
        """A PIN typed at a door's keypad; ``source`` is who typed it (a keypad session or
        the caller's address), the unit of the lockout."""
        self.door(door_id)
        async with self._pin_locks.setdefault(door_id, asyncio.Lock()):
            return await self._enter_pin(door_id, pin, source)

    async def _enter_pin(self, door_id: str, pin: str, source: str) -> Outcome:
        if self.pin_locked(door_id, source):
            return await self.deny(door_id, "pin", "keypad_locked")
        out = await self.factors.enter_pin(door_id, pin, source)  # a face waiting for its PIN
        if out is not None:
            return out
        pass_id = await self.box.store.run(
            db.find_pass_by_pin, self.box.store.sync, passes.pin_hash(self.key, pin), db.iso()
        )
        if pass_id is None:
            await self.pin_failed(door_id, source)
            return await self.deny(door_id, "pin", "unknown_pin")
        return await self.use_pass(door_id, pass_id, "pin")

    # --- the door watcher -----------------------------------------------------------------------

    def _cooling(self, door_id: str, who: str) -> bool:
        until = self._cool.get((door_id, who), 0.0)
        return time.monotonic() < until

    def _cool_down(self, door_id: str, who: str, seconds: float) -> None:
        now = time.monotonic()
        if len(self._cool) > 4096:  # per-track keys: drop the expired ones now and then
            self._cool = {k: v for k, v in self._cool.items() if v > now}
        self._cool[(door_id, who)] = now + seconds

    def _qr_new(self, door_id: str, text: str) -> bool:
        """A QR code read at a door camera: a new showing (act on it), or the same one still
        held up? Every read pushes the cool-down on, so a code kept in view is one showing
        however long it is held (before, each cooldown_s of holding spent another use of the
        pass); shown again after cooldown_s out of view, it is a new entry."""
        new = not self._cooling(door_id, f"qr:{text}")
        self._cool_down(door_id, f"qr:{text}", self.cfg.cooldown_s)
        return new

    async def _watch(self, door_id: str, camera_id: str) -> None:
        try:
            cam = self.camera(camera_id)
        except KeyError:
            log.error("door %s names camera %s, which is not configured", door_id, camera_id)
            return
        st = self.stats[door_id]
        if self.cfg.face_scheduler:
            await self._watch_tracked(door_id, cam, st)
            return
        # The path before the scheduler (``face_scheduler = false``; bench/rush.py's
        # baseline): every active frame through the whole pipeline, each door on its own.
        gate = MotionGate()
        qr = passes.QrReader()
        tracker = None
        faces_tracked: FaceTracker | None = None
        current: Track | None = None  # the face being decided at this door
        period = 1.0 / self.cfg.sample_fps
        last_seq = -1
        active_until = 0.0
        first_seen: float | None = None  # arrival of the first frame of this encounter
        n_active = 0
        while True:
            frame = await cam.next_frame(last_seq, 2.0)
            if frame is None:
                continue
            last_seq = frame.seq
            st.frames += 1
            now = time.monotonic()
            moving = await asyncio.to_thread(gate.score, frame.image) >= self.cfg.motion_threshold
            if moving:
                active_until = now + self.cfg.active_hold_s
            if now > active_until:
                if tracker is not None:
                    tracker.reset()
                if faces_tracked is not None:
                    faces_tracked.reset()
                if current is not None:
                    await self._close_track(door_id, current, frame.t)
                    current = None
                first_seen = None
                # Idle: look at most sample_fps times a second, counted from this frame's
                # arrival (a flat sleep would add up to a frame period of latency when
                # someone steps in).
                await asyncio.sleep(max(0.0, frame.t + period - time.monotonic()))
                continue
            st.examined += 1
            n_active += 1
            try:
                pipeline = self._faces()
                if pipeline is not None and tracker is None:
                    tracker = pipeline.liveness_tracker(frames=self.cfg.liveness_frames)
                    faces_tracked = FaceTracker(pipeline.cfg.visit_k, pipeline.cfg.visit_n)
                qr_due = self.cfg.qr and n_active % self.cfg.qr_every == 1 % self.cfg.qr_every
                # The QR reader (a default-executor thread) and the face pipeline (its own
                # thread: one detection gives the decision, its face and liveness) look at
                # the frame at the same time, so a QR try adds no latency to a face.
                text, seen = await asyncio.gather(
                    asyncio.to_thread(qr.read, frame.image) if qr_due else _none(),
                    pipeline.recognise(frame.image, tracker, self.face_target(door_id),
                                       getattr(frame, "ir", None),
                                       self.door_sets.get(door_id))
                    if pipeline else _none(),
                )
                st.qr_tries += bool(qr_due)
                if text and self._qr_new(door_id, text):
                    await self.enter_qr(door_id, text, frame.t)
                    continue
                if seen is None:
                    continue
                decision, verdict = seen.decision, seen.liveness
                st.last_ms = round((time.monotonic() - frame.t) * 1000, 2)
                if decision.faces == 0:
                    first_seen = None
                    if current is not None:  # fusion starts over with liveness (below)
                        current.fusion.reset()
                    continue
                st.faces += 1
                active_until = time.monotonic() + self.cfg.active_hold_s
                if first_seen is None:
                    first_seen = frame.t
                if seen.face is None or faces_tracked is None:
                    if faces_tracked is not None:
                        faces_tracked.missed(frame.t)
                    continue
                track = faces_tracked.update(seen.face.bbox, frame.t, seen.embedding)
                if current is not None and track is not current:
                    await self._close_track(door_id, current, frame.t)
                current = track
                if track.new and tracker is not None and track.id > 1:
                    tracker.reset()  # someone else: liveness starts over with their frames
                if seen.embedding is None:
                    continue  # not usable (quality): neither for nor against anyone
                fused = track.fusion.add(Frame(decision.candidate_id, decision.similarity,
                                               decision.resident_id is not None))
                track.last = fused
                await self._decide(door_id, frame.t, decision, verdict, fused, track,
                                   seen.ir_face)
            except LookupError:
                log.error("door %s is not configured as a device", door_id)
                return
            except Exception:
                log.exception("door %s: frame handling failed; going on", door_id)

    # --- the door watcher with tracking and the face scheduler (docs/access.md "Rush hour") -----

    def _scheduler(self, pipeline: Any) -> FaceScheduler:
        if self.scheduler is None or self.scheduler.pipeline is not pipeline:
            c = self.cfg
            self.scheduler = FaceScheduler(
                pipeline, deadline_s=c.face_deadline_ms / 1000, batch_max=c.face_batch,
                workers=c.face_workers, capacity_per_s=c.face_capacity_per_s,
                on_state=self._load_state)
        return self.scheduler

    async def _load_state(self, overloaded: bool, reason: str) -> None:
        """The face scheduler fell behind or caught up: a health event, like a device's."""
        await self.box.store.record(DeviceHealth(
            id=new_id("dh"), device_kind="box", device_id="face-scheduler",
            state="degraded" if overloaded else "online",
            previous="online" if overloaded else "degraded", reason=reason))

    async def _watch_tracked(self, door_id: str, cam: CameraDriver, st: WatchStats) -> None:
        """Track, then recognise. A face is found by a cheap scan of the whole frame (at
        ``scan_side``), then followed frame by frame by a search of the small region around
        its last box; each followed frame is embedded and fed to fusion and liveness, which
        decide exactly as on the old path (k of n frames of one track, liveness, _decide).
        Once the face's approach is over (the door opened for it, or policy refused it) the
        door only rechecks every ``recheck_every``-th
        frame where the face is (and every ``reembed_every``-th recheck that it is still the
        same person), until it leaves. All looks go through the one FaceScheduler: a person
        waiting longest goes first; a frame that cannot be looked at within the deadline is
        dropped (the door tries its newest frame instead), never used late."""
        c = self.cfg
        gate = MotionGate(strided=True)
        qr = passes.QrReader()
        liveness = None
        tracks: FaceTracker | None = None
        current: Track | None = None
        current_t0 = 0.0  # first frame of the current track (its person's waiting time)
        box: tuple[float, float, float, float] | None = None  # the face's last box
        face_before = False  # the previous look saw a face (liveness holds its frames)
        holding = False  # a decided face is in view where it was: recheck only
        rechecks = n_active = 0
        looked_seq = -1  # the last frame looked at
        me = f"door:{door_id}"
        period = 1.0 / c.sample_fps
        last_seq = -1
        active_until = 0.0
        live_now = False  # the last look's liveness verdict for the current track
        qr_task: asyncio.Task | None = None
        while True:
            # Idle: the camera's reader thread runs the motion gate and wakes this loop only
            # for a frame that moved (or a heartbeat every 2 s), not for every frame.
            idle = box is None and time.monotonic() > active_until
            frame = await cam.next_frame(last_seq, 2.0,
                                         motion=c.motion_threshold if idle else None)
            if frame is None:
                continue
            last_seq = frame.seq
            st.frames += 1
            now = time.monotonic()
            if box is None:  # a face in view holds the door awake by itself
                # The reader's score when it runs the gate; else ~0.3 ms on 1280x720 here.
                moved = frame.motion if frame.motion is not None else gate.score_frame(frame)
                if moved >= c.motion_threshold:
                    active_until = now + c.active_hold_s
            if now > active_until:
                if liveness is not None:
                    liveness.reset()
                if tracks is not None:
                    tracks.reset()
                if current is not None:
                    await self._close_track(door_id, current, frame.t)
                    current = None
                box, face_before, holding = None, False, False
                cam.want_every(me, 1)
                await asyncio.sleep(max(0.0, frame.t + period - time.monotonic()))
                continue
            st.examined += 1
            n_active += 1
            try:
                pipeline = self._faces()
                qr_due = c.qr and n_active % c.qr_every == 1 % c.qr_every
                if pipeline is None:
                    text = await asyncio.to_thread(qr.read, frame.image) if qr_due else None
                    if text and self._qr_new(door_id, text):
                        await self.enter_qr(door_id, text, frame.t)
                    continue
                if liveness is None or tracks is None:
                    liveness = pipeline.liveness_tracker(frames=c.liveness_frames)
                    tracks = FaceTracker(pipeline.cfg.visit_k, pipeline.cfg.visit_n)
                # Holding a decided face: only every recheck_every-th frame is looked at, so
                # the camera need not convert the others (drivers/cameras/base.py).
                cam.want_every(me, c.recheck_every if holding else 1)
                if holding and frame.seq - looked_seq < c.recheck_every:
                    continue
                if holding:
                    rechecks += 1
                # Priority (earliest deadline first, on the person's clock): how long this
                # door's undecided person has waited; with nobody found yet, this frame's
                # arrival (the earliest a face in it can have appeared: a door awake since
                # motion long ago must not jump the queue of people being decided, as the
                # empty hallway after each visit did at rush hour); a recheck: its frame.
                undecided = current is not None and not current.decided
                waiting = current_t0 if undecided else frame.t
                # This look can finish the decision: k-1 agreeing frames, live already.
                finishing = bool(undecided and box is not None and live_now
                                 and current.last is not None
                                 and current.last.votes >= current.fusion.k - 1)
                target = self.face_target(door_id)
                look = self._look(frame, holding, rechecks, box, liveness, target, door_id)

                def renew(seq: int = frame.seq, h: bool = holding, r: int = rechecks,
                          b: Any = box, lv: Any = liveness,
                          target: float | None = target) -> tuple[Look, float, Any] | None:
                    # The frame went stale in the queue: look at the camera's newest instead.
                    f = cam.latest()
                    if f is None or f.seq <= seq:
                        return None
                    return self._look(f, h, r, b, lv, target, door_id), f.t, f

                looked_seq = frame.seq
                # The QR try runs beside the look, not in its way: the face decision does not
                # wait for it (at rush hour a QR read on a busy core took longer than the
                # look), and a door has one QR try at a time.
                if qr_due and (qr_task is None or qr_task.done()):
                    st.qr_tries += 1
                    qr_task = asyncio.create_task(self._qr_try(door_id, qr, frame),
                                                  name=f"qr-{door_id}")
                    self._hook_tasks.add(qr_task)  # cancelled with the service
                    qr_task.add_done_callback(self._hook_tasks.discard)
                served = await self._scheduler(pipeline).look(
                    door_id, look, frame.t, waiting, urgent=not holding, renew=renew,
                    finishing=finishing)
                if served is None:
                    st.dropped += 1  # too late for the deadline: no evidence either way
                    continue
                seen, newer = served
                if newer is not None:  # looked at the camera's newest frame instead
                    frame = newer
                    # ...and the next look must be at a frame after it, not at it again
                    looked_seq = last_seq = frame.seq
                st.looks += 1
                st.last_ms = round((time.monotonic() - frame.t) * 1000, 2)
                if seen.face is None:
                    tracks.missed(frame.t)  # the face was not seen: its track's time runs
                    # Nobody there: liveness starts over (a look that fed liveness cleared it
                    # already; a recheck did not, and must not leave the last person's frames).
                    liveness.reset()
                    live_now = False
                    # And so does the fusion: a face back in the same spot within the track's
                    # gap may be someone else (a look-alike passes the tracker's appearance
                    # check); liveness decides in 2 frames now, so frames of the one before
                    # must not count towards them.
                    if current is not None:
                        current.fusion.reset()
                    box, face_before, holding = None, False, False
                    continue
                st.faces += 1
                active_until = time.monotonic() + c.active_hold_s
                box = seen.face.bbox
                track = tracks.update(seen.face.bbox, frame.t, seen.embedding)
                switched = track is not current
                if current is not None and switched:
                    await self._close_track(door_id, current, frame.t)
                if switched:
                    current_t0 = frame.t
                current = track
                # Someone else: liveness starts over with their frames (it already did if the
                # last look saw nobody).
                if switched and face_before:
                    liveness.reset()
                face_before = True
                if holding:  # a recheck: where the decided face is, no evidence
                    holding = holding and not switched
                    continue
                decision, verdict = seen.decision, seen.liveness
                live_now = verdict is not None and verdict.live
                if seen.embedding is None:
                    continue  # not usable (quality): neither for nor against anyone
                fused = track.fusion.add(Frame(decision.candidate_id, decision.similarity,
                                               decision.resident_id is not None))
                track.last = fused
                holding = await self._decide(door_id, frame.t, decision, verdict, fused,
                                             track, seen.ir_face)
            except LookupError:
                log.error("door %s is not configured as a device", door_id)
                return
            except Exception:
                log.exception("door %s: frame handling failed; going on", door_id)

    async def _qr_try(self, door_id: str, qr: passes.QrReader, frame: Any) -> None:
        """One QR try on a door camera's frame, on the QR thread (below the face lanes)."""
        try:
            text = await asyncio.get_running_loop().run_in_executor(
                self._qr_pool(), qr.read, frame.image)
            if text and self._qr_new(door_id, text):
                await self.enter_qr(door_id, text, frame.t)
        except Exception:
            log.exception("door %s: QR try failed; going on", door_id)

    def _qr_pool(self) -> ThreadPoolExecutor:
        """One thread for every door's QR tries, at a lower CPU priority than the face
        lanes: at rush hour a face decision should not wait behind a QR search of a frame
        (~5-8 ms at 1280x720); a pass held up to the camera is read a moment later."""
        if self._qr_threads is None:
            self._qr_threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qr",
                                                  initializer=_lower_priority)
        return self._qr_threads

    def _look(self, frame: Any, holding: bool, rechecks: int, box: Any, liveness: Any,
              target: float | None, door_id: str) -> Look:
        c = self.cfg
        if holding:
            # Where is the decided face (the largest, as on every look), and now and then:
            # is it still the same person (the tracker's appearance check)?
            return Look(frame.image, None, scan=True, live=False,
                        embed=rechecks % c.reembed_every == 0, scan_side=c.scan_side)
        return Look(frame.image, box, scan=True, tracker=liveness, target_fpir=target,
                    ir=getattr(frame, "ir", None), allowed=self.door_sets.get(door_id),
                    scan_side=c.scan_side)

    async def _close_track(self, door_id: str, track: Track, t0: float) -> None:
        """A face left (or another took its place) before its approach was decided: it still
        leaves one denied event, so a stranger walking past quickly is on the record too."""
        f = track.last
        if track.decided or f is None:
            return
        track.decided = True
        who = f"track:{track.id}"
        if self._cooling(door_id, who):
            return
        self._cool_down(door_id, who, self.cfg.denied_cooldown_s)
        self.stats[door_id].decisions += 1
        reason = "too_few_frames" if f.votes else "unknown_face"
        await self.deny(door_id, "face", reason, fused_score=f.score, frames_used=f.frames_used,
                        score_scale=self._score_scale(),
                        track=track.id)

    async def _decide(self, door_id: str, t0: float, decision: Any, verdict: Any,
                      fused: Fused, track: Track, ir_face: bool | None = None) -> bool:
        """Act on a track's fused verdict. True when the approach is over for good (the door
        opened, or this resident was refused by policy or just let in): more frames of this
        face cannot change anything. A stranger or a not-yet-live face is refused once but
        stays open to more evidence, as before."""
        st = self.stats[door_id]
        live = verdict.live if verdict is not None else True
        if ir_face is False:  # a dual-sensor camera sees no face in infrared: a screen/photo
            live = False
        score = verdict.score if verdict is not None else None
        collecting = verdict is not None and verdict.reason == "collecting"
        sim = decision.similarity
        sim = None if sim is None else float(sim)
        common = {"similarity": sim, "liveness": score, "fused_score": fused.score,
                  "score_scale": self._score_scale(),
                  "frames_used": fused.frames_used, "track": track.id,
                  "thumbnail_jpeg": decision.thumbnail_jpeg}  # kept beside the event only
        if fused.reason == "collecting":
            return False  # fewer than n usable frames and no k agree yet: keep looking
        if fused.resident_id is None:
            # Window full and nobody accepted (or two residents named): one denied event per
            # tracked face, so a second stranger right after the first still leaves one.
            who = f"track:{track.id}"
            if collecting or self._cooling(door_id, who):
                return False
            self._cool_down(door_id, who, self.cfg.denied_cooldown_s)
            st.decisions += 1
            track.decided = True
            reason = "ambiguous" if fused.reason == "conflict" else decision.reason
            if reason not in ("unknown_face", "ambiguous", "negative_example"):
                reason = "unknown_face"
            await self.deny(door_id, "face", reason, latency_ms=_ms(t0), **common)
            return False
        rid = fused.resident_id
        if self.cfg.require_liveness and not live:
            # Not (yet) live: keep collecting evidence; the window slides, so a real person
            # who moves passes a moment later. Only the denied *event* is rate-limited.
            if collecting:
                return False
            # Rate-limited per tracked face, like every denied event: a second photo held up
            # (a new track) within denied_cooldown_s leaves its own (per resident it left none).
            who = f"liveness:track:{track.id}"
            if self._cooling(door_id, who):
                track.decided = True  # this face's liveness refusal is on the record already
                return False
            self._cool_down(door_id, who, self.cfg.denied_cooldown_s)
            st.decisions += 1
            track.decided = True
            why = "liveness_ir" if ir_face is False else "liveness"
            await self.deny(door_id, "face", why, resident_id=rid,
                            latency_ms=_ms(t0), **common)
            return False
        refused = f"refused:track:{track.id}"
        if self._cooling(door_id, rid) or self._cooling(door_id, refused):
            # This person was just let in at this door (or this face was just refused).
            # Checked after liveness: a photo of them held up meanwhile is not them, and its
            # refusal goes on record.
            track.decided = True
            return True
        if decision.resident_id != rid:
            # The k agreeing frames are there, but this frame does not name the resident: wait
            # for one that does, so a grant never rests on earlier frames alone.
            return False
        why = await self.check_policy(rid, door_id)
        st.decisions += 1
        track.decided = True
        if why is not None:
            # Per tracked face, like every denied event: their next try (a new track) leaves
            # its own record (per resident, a try within denied_cooldown_s left none).
            self._cool_down(door_id, refused, self.cfg.denied_cooldown_s)
            await self.deny(door_id, "face", why, resident_id=rid, latency_ms=_ms(t0), **common)
            return True
        self._cool_down(door_id, rid, self.cfg.cooldown_s)
        ask = self.factors.required(door_id)
        if ask is not None:  # face alone is not enough here: wait for a PIN or the phone
            await self.factors.challenge(door_id, rid, ask, t0, common)
            return
        out = await self.grant(door_id, "face", "match", t0=t0, resident_id=rid, **common)
        if out.granted:
            self._after_face_grant(door_id, rid)
        return True

    def on_face_grant(self, hook: Callable[[str, str], Awaitable[None]]) -> None:
        """Call ``await hook(door_id, resident_id)`` after each face grant (e.g. the portal's
        login code on the door's screen). It runs as its own task once the relay is on and the
        event is stored, so nothing it does can delay or fail the door."""
        self._face_grant_hooks.append(hook)

    def _after_face_grant(self, door_id: str, rid: str) -> None:
        for hook in self._face_grant_hooks:
            task = asyncio.create_task(hook(door_id, rid), name=f"face-grant-{door_id}")
            self._hook_tasks.add(task)  # a reference, so the task is not collected mid-run
            task.add_done_callback(self._hook_done)

    def _hook_done(self, task: asyncio.Task) -> None:
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("face-grant hook %s failed", task.get_name(), exc_info=task.exception())

    # --- device health -> repair tickets ---------------------------------------------------------

    async def _health_tickets(self) -> None:
        """A device offline longer than offline_ticket_after_s gets a repair ticket (once);
        it is closed when the device is back online."""
        since: dict[tuple[str, str], float] = {}
        ticketed: set[tuple[str, str]] = set()
        while True:
            await asyncio.sleep(self.cfg.health_check_s)
            try:
                devices = self.box.get(DEVICES)
            except KeyError:
                return
            try:
                tickets = self.box.get(TICKETS)
            except KeyError:
                tickets = None
            now = time.monotonic()
            for (kind, dev_id), drv in list(devices.drivers.items()):
                key = (kind, dev_id)
                # "not started": the driver has not reported yet (an RTSP camera still
                # connecting at boot); only a reported outage counts towards a ticket.
                if drv.state == "offline" and drv.reason not in ("stopped", "not started"):
                    since.setdefault(key, now)
                    due = now - since[key] >= self.cfg.offline_ticket_after_s
                    if due and key not in ticketed and tickets is not None:
                        try:
                            await tickets.open_device_ticket(kind, dev_id, drv.reason)
                            ticketed.add(key)
                        except Exception:
                            log.exception("could not open a ticket for %s %s", kind, dev_id)
                elif drv.state == "online":
                    since.pop(key, None)
                    if key in ticketed and tickets is not None:
                        try:
                            await tickets.close_device_ticket(kind, dev_id)
                            ticketed.discard(key)
                        except Exception:
                            log.exception("could not close the ticket of %s %s", kind, dev_id)


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000, 2)


async def _none() -> None:
    return None


def _lower_priority() -> None:
    """Nice the calling thread (Linux: a thread has its own nice value)."""
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + 5, 19))
