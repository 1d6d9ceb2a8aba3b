"""One scheduler for every door camera's face work: fair across doors, with deadlines.

A 2-core box drives several face doors; at rush hour people arrive at all of them at once.
Each door asks for one look at a time (its newest frame, :class:`~edge.faces.pipeline.Look`);
the scheduler runs the looks on the face thread in batches:

- **earliest deadline first, on the person's clock**: a look carries ``waiting_since``,
  when the person it is about first showed up undecided (for a scan that has found nobody
  yet: its frame's own arrival, the earliest a person in it can have appeared). Looks about
  an undecided person come before rechecks of a face already decided; among them a look
  that can *finish* a decision (``finishing``: the track has k-1 agreeing frames and is
  live already) goes first, then the person who has waited longest, so no door starves
  while another keeps its camera busy and a visit's last look is not queued behind other
  doors' first ones;
- **deadlines**: a look whose frame is older than ``deadline_s`` when its turn comes is never
  run late: it is swapped for the door's newest frame (``renew``) when that one is fresh, and
  dropped otherwise (the door asks again). Each door has at most one look waiting; a newer one
  replaces it;
- **lanes**: ``workers`` looks run side by side, each on its own face lane (a thread with
  its own nets, FacePipeline.run_lane): on a 2-core box the second core serves a second
  door instead of splitting one small net (edge/faces/pipeline.py);
- **batching** (optional, ``batch_max``): up to that many looks per trip to a lane; their
  faces go through SFace in one inference. It saves little CPU here and every look of a
  batch waits for the whole batch, so the door default is 1 (docs/access.md);
- **capacity** (optional): at most ``capacity_per_s`` looks a second, to leave the rest of
  the box a share of the CPU (and for tests: a tiny capacity is an overloaded box).

Dropping stale looks is what bounds latency under overload; it never lowers the evidence a
door needs (k of n frames, liveness: edge/access/service.py decides as before on the looks
that did run). While looks are being dropped the scheduler reports *overloaded*
(``status()``, the callback -> a health event and ``qilu-edge doctor``), and back to normal
after ``hold_s`` without a drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.faces.pipeline import FacePipeline, Look, Recognition

log = logging.getLogger(__name__)

URGENT, RECHECK = 0, 1  # a look about an undecided person / about a face already decided


@dataclass
class _Job:
    door: str
    look: Look
    t_frame: float  # arrival of the frame (time.monotonic())
    waiting_since: float
    kind: int
    fut: asyncio.Future
    renew: Callable[[], tuple[Look, float, Any] | None] | None = None
    used: Any = None  # what renew handed over with the frame that was looked at
    finishing: bool = False  # this look can complete the person's decision
    t_asked: float = 0.0

    def key(self) -> tuple[int, bool, float, float]:
        return (self.kind, not self.finishing, self.waiting_since, self.t_frame)


@dataclass
class DoorLoad:
    served: int = 0
    dropped: int = 0  # frames older than the deadline when their turn came (renewed or not)
    waits: deque = field(default_factory=lambda: deque(maxlen=200))  # queue wait, ms
    last_drop: float = 0.0


class FaceScheduler:
    def __init__(
        self,
        pipeline: FacePipeline,
        *,
        deadline_s: float = 0.2,
        batch_max: int = 1,
        workers: int = 1,
        capacity_per_s: float | None = None,
        hold_s: float = 5.0,
        on_state: Callable[[bool, str], Awaitable[None]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.deadline_s = deadline_s
        self.batch_max = batch_max
        self.workers = max(1, workers)
        self.capacity_per_s = capacity_per_s
        self.hold_s = hold_s
        self.on_state = on_state
        self._pending: dict[str, _Job] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._running: set[int] = set()  # lanes running a batch now
        self.doors: dict[str, DoorLoad] = {}
        self.batches: deque[int] = deque(maxlen=500)
        self.busy_s = 0.0  # time the face lanes spent on looks (summed over lanes)
        # Every look's timeline, for bench/rush.py's per-visit breakdown: (door, kind,
        # finishing, frame arrival, waiting since, asked, started, done, lane, batch size).
        self.trace: deque[tuple] = deque(maxlen=20000)
        self.started = time.monotonic()
        self.overloaded = False
        self.overload_since: float | None = None
        self.overload_reason = ""
        self._next_slot = 0.0  # capacity: when the next look may start

    # --- doors ------------------------------------------------------------------------

    async def look(self, door: str, look: Look, t_frame: float,
                   waiting_since: float | None = None, urgent: bool = True,
                   renew: Callable[[], tuple[Look, float, Any] | None] | None = None,
                   finishing: bool = False,
                   ) -> tuple[Recognition, Any] | None:
        """Run ``look`` in the door's turn: (its result, None), or (the result, what
        ``renew`` returned with it) when the frame went stale and was swapped for the door's
        newest (``renew() -> (look, t_frame, token)``); None when it was dropped.
        ``finishing``: this look can complete a decision (it goes first among urgent ones)."""
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < self.workers:
            lane = len(self._tasks)
            self._tasks.append(asyncio.create_task(self._run(lane),
                                                   name=f"face-scheduler-{lane}"))
        old = self._pending.pop(door, None)
        if old is not None and not old.fut.done():
            old.fut.set_result(None)
        fut = asyncio.get_running_loop().create_future()
        self._pending[door] = _Job(door, look, t_frame,
                                   t_frame if waiting_since is None else waiting_since,
                                   URGENT if urgent else RECHECK, fut, renew,
                                   finishing=finishing and urgent,
                                   t_asked=time.monotonic())
        self.doors.setdefault(door, DoorLoad())
        self._wake.set()
        try:
            return await fut
        finally:
            job = self._pending.get(door)
            if job is not None and job.fut is fut:  # cancelled while waiting: withdraw it
                del self._pending[door]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for job in self._pending.values():
            if not job.fut.done():
                job.fut.set_result(None)
        self._pending.clear()

    # --- the worker --------------------------------------------------------------------

    async def _run(self, lane: int) -> None:
        """One lane: take the most urgent looks, run them on face lane ``lane``."""
        if lane:
            # A lane's own nets cost ~87 MB: load them only once a look waits while every
            # lower lane is busy (a box with one busy door never pays for them).
            while not (self._pending and all(i in self._running for i in range(lane))):
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
            # Load and warm this lane's nets before it takes any look (~1 s on a busy box):
            # a look must not wait for that while the face thread serves meanwhile.
            try:
                await self.pipeline.run_lane(lane, int)
            except Exception:
                log.exception("face scheduler: lane %d could not start; one lane less", lane)
                return
        while True:
            # A lower lane that is free takes the look: with one busy door (or a few) the
            # looks keep to the face thread and its warm nets, as before the lanes.
            if not self._pending or any(i not in self._running for i in range(lane)):
                self._wake.clear()
                try:
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
                except TimeoutError:
                    await self._check_state()
                continue
            # A loop: with several lanes, another may have taken the slot meanwhile.
            while self.capacity_per_s and (  # noqa: ASYNC110 - a timed slot, not an event
                    wait := self._next_slot - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            batch = self._take()
            if not batch:
                await self._check_state()
                continue
            if self.capacity_per_s:
                self._next_slot = time.monotonic() + len(batch) / self.capacity_per_s
            t = time.monotonic()
            for job in batch:
                self.doors[job.door].waits.append(round((t - job.t_frame) * 1000, 1))
            self._running.add(lane)
            try:
                results = await self.pipeline.run_lane(lane, self.pipeline.look_many_sync,
                                                       [j.look for j in batch])
            except Exception as e:  # a broken frame must not stop every door
                log.exception("face scheduler: a batch failed")
                for job in batch:
                    if not job.fut.done():
                        job.fut.set_exception(e)
                continue
            finally:
                self._running.discard(lane)
            done = time.monotonic()
            self.busy_s += done - t
            self.batches.append(len(batch))
            for job in batch:
                self.trace.append((job.door, job.kind, job.finishing, job.t_frame,
                                   job.waiting_since, job.t_asked, t, done, lane, len(batch)))
            for job, res in zip(batch, results, strict=True):
                self.doors[job.door].served += 1
                if not job.fut.done():
                    job.fut.set_result((res, job.used))
            await self._check_state()

    def _take(self) -> list[_Job]:
        """Renew or drop the stale looks, then the next batch: longest-waiting door first."""
        now = time.monotonic()
        for door, job in list(self._pending.items()):
            if now - job.t_frame <= self.deadline_s:
                continue
            load = self.doors[door]
            load.dropped += 1
            load.last_drop = now
            fresh = job.renew() if job.renew is not None else None
            if fresh is not None and now - fresh[1] <= self.deadline_s:
                job.look, job.t_frame, job.used = fresh
                continue
            del self._pending[door]
            if not job.fut.done():
                job.fut.set_result(None)
        order = sorted(self._pending.values(), key=_Job.key)[: self.batch_max]
        for job in order:
            del self._pending[job.door]
        return order

    async def _check_state(self) -> None:
        now = time.monotonic()
        late = [d for d, ld in self.doors.items() if now - ld.last_drop <= self.hold_s
                and ld.last_drop > 0]
        over = bool(late)
        if over == self.overloaded:
            return
        self.overloaded = over
        self.overload_since = now if over else None
        self.overload_reason = (
            f"face work behind: frames older than {int(self.deadline_s * 1000)} ms dropped "
            f"at {', '.join(sorted(late))}; doors decide later, on the same evidence"
            if over else "keeping up")
        (log.warning if over else log.info)("face scheduler: %s", self.overload_reason)
        if self.on_state is not None:
            try:
                await self.on_state(over, self.overload_reason)
            except Exception:
                log.exception("face scheduler: reporting the load state failed")

    # --- what the status API and the doctor show ------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        up = max(now - self.started, 1e-6)
        doors = {}
        for d, ld in self.doors.items():
            w = list(ld.waits)
            doors[d] = {
                "looks": ld.served,
                "dropped_stale": ld.dropped,
                "wait_ms_p50": round(float(np.percentile(w, 50)), 1) if w else None,
                "wait_ms_p95": round(float(np.percentile(w, 95)), 1) if w else None,
            }
        b = list(self.batches)
        return {
            "overloaded": self.overloaded,
            "reason": self.overload_reason or "keeping up",
            "overloaded_for_s": round(now - self.overload_since, 1)
            if self.overload_since is not None else None,
            "deadline_ms": round(self.deadline_s * 1000),
            "batch_max": self.batch_max,
            "workers": self.workers,
            "batch_mean": round(sum(b) / len(b), 2) if b else None,
            "capacity_per_s": self.capacity_per_s,
            # per lane: the share of the time a lane was running looks
            "face_thread_busy": round(min(self.busy_s / up / self.workers, 1.0), 3),
            "doors": doors,
        }
