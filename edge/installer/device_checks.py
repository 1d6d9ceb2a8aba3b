"""Doctor's live device checks: a camera frame with a face on it, a screen's player page.

Camera: one frame from the running stream (its size and measured fps), then the face pipeline
on that frame. No face is a warn, never a fail: nobody may be standing there. Inside the daemon
the faces service's pipeline is used; from the CLI a pipeline is built once for the run.

Screen: whether the screen's player page is connected (WebSocket) or reported recently, read
from the screens service: inside the daemon directly, from the CLI through the running
daemon's API (``GET /api/v1/screens``) with a staff token from the config.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from edge.core.config import CoreConfig
from edge.core.i18n import Msg
from edge.faces import FACES
from edge.installer.doctor_texts import TIMED_OUT, T
from edge.screens import SCREENS
from edge.screens.config import ScreensConfig

FPS_SETTLE_S = 1.5  # after the first frame, wait this long at most for an fps estimate


class FaceProbe:
    """The face pipeline for the doctor's run (the daemon's own, or one built on demand)."""

    def __init__(self, config: CoreConfig, box: Any = None) -> None:
        self.config = config
        self.box = box
        self._pipeline: Any = None
        self._owned = False
        self._why_not: Msg | None = None
        self._lock = asyncio.Lock()

    async def pipeline(self) -> tuple[Any, Msg | None]:
        async with self._lock:
            if self._pipeline is None and self._why_not is None:
                await self._load()
            return self._pipeline, self._why_not

    async def _load(self) -> None:
        face = getattr(self.config, "faces", None)
        if face is None or not face.enabled:
            self._why_not = T("models.off")
            return
        if self.box is not None:
            try:
                self._pipeline = self.box.get(FACES).pipeline
            except KeyError:
                self._pipeline = None
            if self._pipeline is None:
                self._why_not = T("camera.no_pipeline")
            return
        try:
            from edge.faces.pipeline import FacePipeline
            from edge.faces.service import model_dir

            self._pipeline = await asyncio.to_thread(FacePipeline, face, model_dir(self.config))
            self._owned = True
        except Exception as e:  # missing models are reported by the models check
            self._why_not = T("camera.pipeline_error", error=e)

    def close(self) -> None:
        if self._owned and self._pipeline is not None:
            self._pipeline.close()
        self._pipeline = None


async def camera_frame(drv: Any, budget_s: float, faces: FaceProbe) -> tuple[Msg, str]:
    """(detail, status) for a camera whose driver is online: frame, fps, face."""
    if not hasattr(drv, "next_frame"):
        return T("camera.no_frame_check"), "pass"
    frame = await drv.next_frame(limit_s=budget_s)
    if frame is None:
        return T("camera.no_frame", seconds=budget_s), "fail"
    deadline = time.monotonic() + FPS_SETTLE_S
    while drv.fps is None and time.monotonic() < deadline:  # two frames give a rate
        newer = await drv.next_frame(frame.seq, deadline - time.monotonic())
        frame = newer or frame
    h, w = frame.image.shape[:2]
    detail = (
        T("camera.frame_fps", w=w, h=h, fps=drv.fps) if drv.fps else T("camera.frame", w=w, h=h)
    )
    pipeline, why_not = await faces.pipeline()
    if pipeline is None:
        return T("camera.face_skipped", frame=detail, why=why_not), "pass"
    result = await pipeline.analyse(frame.image, max_faces=1)
    if not result.faces:
        return T("camera.no_face", frame=detail), "warn"
    f = result.faces[0].face
    return T("camera.face", frame=detail, w=f.bbox[2], h=f.bbox[3], score=f.score), "pass"


async def screen_player(
    config: CoreConfig, box: Any, screen_id: str
) -> tuple[Msg, str, Msg | None]:
    """(detail, status, hint) for one configured screen's player page."""
    box_url = f"http://<box>:{config.api.port or 8080}"
    hint = T("screen.key_hint", screen=screen_id, box_url=box_url)
    offline_after = config.section(ScreensConfig).offline_after_s
    if box is not None:
        try:
            svc = box.get(SCREENS)
        except KeyError:
            return T("screen.no_service"), "skip", None
        connected = len(svc.sockets.get(screen_id, ()))
        seen = svc.last_seen.get(screen_id)
        ago = None if seen is None else time.monotonic() - seen
        if connected:
            return T("screen.connected", n=connected), "pass", None
        if ago is not None and ago < offline_after:
            return T("screen.reported", ago=ago), "pass", None
        gone = T("screen.never") if ago is None else T("screen.gone", ago=ago)
        return gone, "fail", hint
    return await _screen_via_api(config, screen_id, hint)


async def _screen_via_api(
    config: CoreConfig, screen_id: str, hint: Msg
) -> tuple[Msg, str, Msg | None]:
    tokens = [t] if (t := config.api.client_token()) else []
    if not tokens:
        return T("screen.needs_token"), "warn", hint
    host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::", "") else config.api.host
    url = f"http://{host}:{config.api.port}/api/v1/screens"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=4)) as s:
            async with s.get(url, headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
                if r.status != 200:
                    return T("screen.http", status=r.status, url=url), "warn", hint
                screens = (await r.json())["screens"]
    except (aiohttp.ClientError, TimeoutError, OSError, KeyError, ValueError) as e:
        return (
            T("screen.no_daemon", url=url, error=str(e) or TIMED_OUT),
            "warn",
            T("screen.start_daemon"),
        )
    info = next((x for x in screens if x.get("id") == screen_id), None)
    if info is None:
        return T("screen.unknown"), "warn", T("screen.restart")
    if info.get("connected"):
        return T("screen.connected", n=info["connected"]), "pass", None
    if info.get("player") == "online":
        return T("screen.reporting"), "pass", None
    return T("screen.not_connected", player=info.get("player", "unknown")), "fail", hint
