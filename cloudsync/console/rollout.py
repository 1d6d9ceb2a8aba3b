"""Software updates rolled out in waves (issue 17 #7): ops pick boxes and a version; the first
wave's boxes get the ``update`` command down the feed, and the next wave goes out only when
every box of the current one reports the version in its heartbeat. A wave that does not get
there within ``wave_timeout_s`` pauses the roll-out (stop the line: a bad version reaches a
few boxes, not the fleet). Pause, resume (re-sends to the wave's boxes still waiting) and
abort. Who may see or act: the roll-out's area is the narrowest area holding all its boxes.

The box's side is ``edge/sync`` (``update`` command): it runs the box's configured update hook
with the version; the box reports the new version once it runs it. Several workers may step
the same roll-out: moving to the next wave is one conditional UPDATE, so only one sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from cloudsync.console.auth import SETTINGS
from cloudsync.context import CLOUD, err
from cloudsync.ops_api import Targets, _targets, require_admin, scope
from cloudsync.routing import AUDIT_AREA, Api, ok

api = Api()  # this module's route table (cloudsync/app.py includes it)
log = logging.getLogger(__name__)
VERSION = r"^[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}$"
ROLLOUT_ID = r"^ro-[0-9a-f]{12}$"


def plan_waves(spec: list[str], total: int) -> list[int]:
    """Cumulative box counts after each wave: ["1", "10%", "100%"] of 50 boxes -> [1, 5, 50].
    Waves that add no box are dropped; the last wave always takes the rest."""
    out: list[int] = []
    for s in spec:
        n = math.ceil(total * int(s[:-1]) / 100) if s.endswith("%") else int(s)
        n = min(max(n, 1), total)
        if not out or n > out[-1]:
            out.append(n)
    if not out or out[-1] < total:
        out.append(total)
    return out


class NewRollout(BaseModel):
    version: str = Field(pattern=VERSION)
    targets: Targets  # areas and/or boxes, inside the caller's scope (screen_tags unused)
    waves: list[Annotated[str, Field(pattern=r"^([0-9]+|([1-9][0-9]?|100)%)$")]] = Field(
        default_factory=lambda: ["1", "10%", "100%"],
        min_length=1,
        max_length=20,
        description="Cumulative size after each wave: a box count or a percentage",
    )
    wave_timeout_s: float = Field(3600, ge=1, le=7 * 86400)
    url: str | None = Field(None, max_length=500, pattern=r"^https?://[^\s\x00]+$")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class RolloutState(BaseModel):
    action: Literal["pause", "resume", "abort"]


class ListQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500)


def _now() -> datetime:
    return datetime.now(UTC)


async def _send(app: web.Application, ro: dict[str, Any], boxes: list[dict[str, Any]]) -> int:
    """The update command to the boxes not yet at the version; those already there are done."""
    storage = app[CLOUD].storage
    todo = [b["box_id"] for b in boxes if b["software_version"] != ro["version"]]
    done = [b["box_id"] for b in boxes if b["software_version"] == ro["version"]]
    ids: list[int] = []
    if todo:
        args = {**ro["args"], "version": ro["version"], "rollout": ro["id"],
                "actor": ro["created_by"]}  # fmt: skip
        ids = await storage.feed_add(todo, "box", "-", "update", args, ro["created_by"], None)
        for b in todo:
            app[CLOUD].feed.wake(b)
    await storage.rollout_sent(ro["id"], list(zip(todo, ids, strict=True)), done)
    return len(todo)


async def step(app: web.Application, rid: str) -> None:
    """Advance one running roll-out as far as the boxes' heartbeats allow."""
    storage = app[CLOUD].storage
    ro = await storage.rollout_get(rid, "/")
    if ro is None or ro["state"] != "running":
        return
    await storage.rollout_mark_done(rid, ro["version"])
    wave, sent_at = ro["wave"], ro["wave_sent_at"]
    while True:
        if wave > 0:
            boxes = await storage.rollout_wave_boxes(rid, wave)
            waiting = [b["box_id"] for b in boxes if b["done_at"] is None]
            if waiting:
                age = (_now() - datetime.fromisoformat(sent_at)).total_seconds()
                if age > ro["wave_timeout_s"]:
                    note = (
                        f"wave {wave}: {len(waiting)} box(es) did not report {ro['version']}"
                        f" within {ro['wave_timeout_s']:g} s: {', '.join(waiting[:5])}"
                    )
                    if await storage.rollout_set_state(rid, "paused", note, ("running",)):
                        await storage.audit_add(ro["created_by"], "rollout", "rollout paused",
                                                ro["area_path"], rid, note, 200)  # fmt: skip
                return
        if wave >= len(ro["waves"]):
            if await storage.rollout_set_state(rid, "done", "", ("running",)):
                await storage.audit_add(ro["created_by"], "rollout", "rollout done",
                                        ro["area_path"], rid, ro["version"], 200)  # fmt: skip
            return
        if not await storage.rollout_claim_wave(rid, wave + 1):
            return  # another worker sent it, or the roll-out was paused meanwhile
        wave += 1
        sent_at = _now().isoformat()
        n = await _send(app, ro, await storage.rollout_wave_boxes(rid, wave))
        await storage.audit_add(ro["created_by"], "rollout", f"rollout wave {wave}",
                                ro["area_path"], rid, f"update to {ro['version']}: {n} box(es)",
                                200)  # fmt: skip


async def step_all(app: web.Application) -> None:
    for rid in await app[CLOUD].storage.rollouts_running():
        try:
            await step(app, rid)
        except Exception:  # one roll-out's trouble must not stop the others
            log.exception("rollout %s: step failed", rid)


async def _rollout_in_scope(request: web.Request, rid: str) -> dict[str, Any]:
    ro = await request.app[CLOUD].storage.rollout_get(rid, scope(request))
    if ro is None:
        raise web.HTTPNotFound(
            text=f'{{"error": "no roll-out {rid} in your scope"}}', content_type="application/json"
        )
    request[AUDIT_AREA] = ro["area_path"]
    return ro


@api.route(
    "POST",
    "/api/v1/ops/rollouts",
    summary="Roll a software version out to boxes in waves (e.g. 1 box, then 10 %, then the"
    " rest); each wave waits until its boxes' heartbeats report the version",
    tag="fleet",
    auth="ops",
    body=NewRollout,
    responses={404: "No such area or box", 403: "Target outside your scope"},
    status=201,
)
async def create(request: web.Request, q: None, body: NewRollout) -> web.Response:
    by = require_admin(request)
    for w in body.waves:
        if not (w.isdigit() or (w.endswith("%") and w[:-1].isdigit() and 0 < int(w[:-1]) <= 100)):
            return err(400, f"waves: {w!r} is neither a box count nor a percentage (1-100%)",
                       field="waves")  # fmt: skip
    storage = request.app[CLOUD].storage
    box_ids = await _targets(request, body.targets)  # 404/403 for unknown or foreign targets
    rows = await storage.rollout_boxes_in_scope(scope(request), box_ids) if box_ids else []
    if not rows:
        return err(400, "targets: no box that is not revoked", field="targets")
    # The first wave takes the boxes heard from most recently: a canary that is online.
    rows.sort(key=lambda b: b["id"])
    rows.sort(key=lambda b: b["last_seen_at"] or "", reverse=True)
    waves = plan_waves(body.waves, len(rows))
    plan = [
        (b["id"], next(k + 1 for k, n in enumerate(waves) if i < n)) for i, b in enumerate(rows)
    ]
    area = request[AUDIT_AREA]  # _targets: the narrowest area holding every target
    rid = f"ro-{secrets.token_hex(6)}"
    args = {k: v for k, v in (("url", body.url), ("sha256", body.sha256)) if v}
    await storage.rollout_create(
        rid, body.version, args, waves, body.wave_timeout_s, area, by, plan
    )
    await step(request.app, rid)  # the first wave goes out now
    return ok(await storage.rollout_get(rid, "/"), 201)


@api.route(
    "GET",
    "/api/v1/ops/rollouts",
    summary="Update roll-outs whose boxes lie in your scope, newest first, with progress",
    tag="fleet",
    auth="ops",
    query=ListQuery,
)
async def list_rollouts(request: web.Request, q: ListQuery, body: None) -> web.Response:
    return ok({"items": await request.app[CLOUD].storage.rollout_list(scope(request), q.limit)})


@api.route(
    "GET",
    "/api/v1/ops/rollouts/{rollout_id}",
    summary="One roll-out with each box's wave, when it was sent the update, and when it"
    " reported the version",
    tag="fleet",
    auth="ops",
    responses={404: "No such roll-out in scope"},
)
async def get_rollout(request: web.Request, q: None, body: None) -> web.Response:
    ro = await _rollout_in_scope(request, request.match_info["rollout_id"])
    if ro["state"] == "running":  # show the newest heartbeats without waiting for the poll
        await step(request.app, ro["id"])
        ro = await _rollout_in_scope(request, ro["id"])
    return ok(ro)


TRANSITIONS = {  # action: (new state, states it may come from)
    "pause": ("paused", ("running",)),
    "resume": ("running", ("paused",)),
    "abort": ("aborted", ("running", "paused")),
}


@api.route(
    "POST",
    "/api/v1/ops/rollouts/{rollout_id}/state",
    summary="Pause, resume or abort a roll-out (boxes already sent the update keep it; resume"
    " re-sends it to the current wave's boxes that have not reported the version)",
    tag="fleet",
    auth="ops",
    body=RolloutState,
    responses={404: "No such roll-out in scope", 409: "Not possible in its state"},
)
async def set_state(request: web.Request, q: None, body: RolloutState) -> web.Response:
    by = require_admin(request)
    ro = await _rollout_in_scope(request, request.match_info["rollout_id"])
    storage = request.app[CLOUD].storage
    new, allowed = TRANSITIONS[body.action]
    if ro["state"] != new:
        note = f"{body.action} by {by}"
        if not await storage.rollout_set_state(ro["id"], new, note, allowed):
            return err(409, f"action: cannot {body.action} a roll-out that is {ro['state']}")
        if body.action == "resume" and ro["wave"] > 0:
            waiting = [b for b in await storage.rollout_wave_boxes(ro["id"], ro["wave"])
                       if b["done_at"] is None]  # fmt: skip
            await _send(request.app, ro, waiting)
        if new == "running":
            await step(request.app, ro["id"])
    return ok(await storage.rollout_get(ro["id"], "/"))


async def stepper(app: web.Application) -> AsyncIterator[None]:
    """Background: step running roll-outs every ``rollout_poll_s`` (cleanup context)."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(app[SETTINGS].rollout_poll_s)
            with contextlib.suppress(Exception):  # logged in step_all; keep polling
                await step_all(app)

    task = asyncio.create_task(loop(), name="rollout-stepper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def install(app: web.Application) -> None:
    app.cleanup_ctx.append(stepper)
