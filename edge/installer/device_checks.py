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
from edge.faces import FACES
from edge.screens import SCREENS

FPS_SETTLE_S = 1.5  # after the first frame, wait this long at most for an fps estimate
NO_FACE_HINT = (
    "nobody in view? have someone stand where residents will stand and run the doctor again; "
    "if a face is there, check focus, lighting and the camera's angle"
)


class FaceProbe:
    """The face pipeline for the doctor's run (the daemon's own, or one built on demand)."""

    def __init__(self, config: CoreConfig, box: Any = None) -> None:
        self.config = config
        self.box = box
        self._pipeline: Any = None
        self._owned = False
        self._why_not: str | None = None
        self._lock = asyncio.Lock()

    async def pipeline(self) -> tuple[Any, str | None]:
        async with self._lock:
            if self._pipeline is None and self._why_not is None:
                await self._load()
            return self._pipeline, self._why_not

    async def _load(self) -> None:
        face = getattr(self.config, "faces", None)
        if face is None or not face.enabled:
            self._why_not = "face recognition off ([faces] enabled = false)"
            return
        if self.box is not None:
            try:
                self._pipeline = self.box.get(FACES).pipeline
            except KeyError:
                self._pipeline = None
            if self._pipeline is None:
                self._why_not = "the faces service has no pipeline (see `qilu-edge models`)"
            return
        try:
            from edge.faces.pipeline import FacePipeline
            from edge.faces.service import model_dir

            self._pipeline = await asyncio.to_thread(FacePipeline, face, model_dir(self.config))
            self._owned = True
        except Exception as e:  # missing models are reported by the models check
            self._why_not = f"face pipeline unavailable: {e}"

    def close(self) -> None:
        if self._owned and self._pipeline is not None:
            self._pipeline.close()
        self._pipeline = None


async def camera_frame(drv: Any, budget_s: float, faces: FaceProbe) -> tuple[str, str]:
    """(detail, status) for a camera whose driver is online: frame, fps, face."""
    if not hasattr(drv, "next_frame"):
        return "frame check not available for this driver", "pass"
    frame = await drv.next_frame(limit_s=budget_s)
    if frame is None:
        return f"no frame within {budget_s:g} s", "fail"
    deadline = time.monotonic() + FPS_SETTLE_S
    while drv.fps is None and time.monotonic() < deadline:  # two frames give a rate
        newer = await drv.next_frame(frame.seq, deadline - time.monotonic())
        frame = newer or frame
    h, w = frame.image.shape[:2]
    detail = f"frame {w}x{h}" + (f", {drv.fps:.1f} fps" if drv.fps else "")
    pipeline, why_not = await faces.pipeline()
    if pipeline is None:
        return f"{detail}; face check skipped: {why_not}", "pass"
    result = await pipeline.analyse(frame.image, max_faces=1)
    if not result.faces:
        return f"{detail}; no face on a live frame", "warn"
    f = result.faces[0].face
    return (
        f"{detail}; face detected ({f.bbox[2]:.0f}x{f.bbox[3]:.0f} px, score {f.score:.2f})",
        "pass",
    )


async def screen_player(config: CoreConfig, box: Any, screen_id: str) -> tuple[str, str, str]:
    """(detail, status, hint) for one configured screen's player page."""
    box_url = f"http://<box>:{config.api.port or 8080}"
    hint = (
        f"provision its key with `qilu-edge screens key {screen_id} --base {box_url}` and open"
        f" the address it prints ({box_url}/screen/{screen_id}#key=...) in the screen's browser"
        " (kiosk mode); keep it on the network"
    )
    offline_after = config.player.offline_after_s
    if box is not None:
        try:
            svc = box.get(SCREENS)
        except KeyError:
            return "player check: screens service not running", "skip", ""
        connected = len(svc.sockets.get(screen_id, ()))
        seen = svc.last_seen.get(screen_id)
        ago = None if seen is None else time.monotonic() - seen
        if connected:
            return f"player page connected ({connected})", "pass", ""
        if ago is not None and ago < offline_after:
            return f"player page reported {ago:.0f} s ago", "pass", ""
        never = "never connected since the daemon started"
        return (
            f"player page not connected ({never if ago is None else f'{ago:.0f} s ago'})",
            ("fail"),
            hint,
        )
    return await _screen_via_api(config, screen_id, hint)


async def _screen_via_api(config: CoreConfig, screen_id: str, hint: str) -> tuple[str, str, str]:
    tokens = [t] if (t := config.api.client_token()) else []
    if not tokens:
        return "player check needs a [[api.tokens]] entry to ask the daemon", "warn", hint
    host = "127.0.0.1" if config.api.host in ("0.0.0.0", "::", "") else config.api.host
    url = f"http://{host}:{config.api.port}/api/v1/screens"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=4)) as s:
            async with s.get(url, headers={"Authorization": f"Bearer {tokens[0]}"}) as r:
                if r.status != 200:
                    return f"daemon answered HTTP {r.status} at {url}", "warn", hint
                screens = (await r.json())["screens"]
    except (aiohttp.ClientError, TimeoutError, OSError, KeyError, ValueError) as e:
        return (
            f"cannot ask the daemon at {url} ({e or 'timed out'})",
            "warn",
            "start the daemon (`systemctl start qilu-edge`) and run the doctor again",
        )
    info = next((x for x in screens if x.get("id") == screen_id), None)
    if info is None:
        return (
            "the daemon does not know this screen (restart it after config changes)",
            ("warn"),
            "systemctl restart qilu-edge",
        )
    if info.get("connected"):
        return f"player page connected ({info['connected']})", "pass", ""
    if info.get("player") == "online":
        return "player page reporting (not connected right now)", "pass", ""
    return f"player page not connected (player {info.get('player', 'unknown')})", "fail", hint
