"""WebRTC for an answered call (aiortc): the box sends the door camera's frames and the door's
audio, and receives the phone's microphone for the door speaker.

Signalling is one HTTP exchange (the phone POSTs its offer with every ICE candidate gathered, the
box answers likewise), so it works the same on the LAN and through the cloud relay, which carries
requests. Media goes peer to peer on the LAN, through TURN (e.g. coturn, credentials made here
from a shared secret, RFC-style "TURN REST API") when the phone is away. When WebRTC cannot
connect the page keeps the JPEG snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.intercom.config import DoorAudio, IntercomConfig

if TYPE_CHECKING:
    from aiortc import MediaStreamTrack, RTCPeerConnection
    from aiortc.contrib.media import MediaPlayer, MediaRecorder

    from edge.intercom.media import DoorVideo

log = logging.getLogger(__name__)
MEDIA = "edge.intercom.media"  # aiortc + PyAV: imported for the first call, not at start


@dataclass
class Session:
    """One phone's media with the box for one call."""

    pc: RTCPeerConnection
    resident_id: str
    video: DoorVideo | None = None
    player: MediaPlayer | None = None
    recorder: MediaRecorder | None = None
    rx_audio_frames: int = 0
    rx_audio_peak: float = 0.0  # of the phone's microphone (0..1): is anything arriving
    tasks: list[asyncio.Task] = field(default_factory=list)


def turn_credentials(secret: str, user: str, ttl_s: int = 3600) -> tuple[str, str]:
    """coturn ``use-auth-secret``: username ``<expiry>:<user>``, password
    base64(HMAC-SHA1(secret, username)); the phone's credentials expire with the TTL."""
    name = f"{int(time.time()) + ttl_s}:{user}"
    mac = hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest()
    return name, base64.b64encode(mac).decode()


def check_audio(cfg: IntercomConfig) -> list[str]:
    """What is wrong with the doors' audio config for this PyAV build (empty: all fine).
    A device format PyAV was built without, or a microphone file that is not there, would
    otherwise only show when the first call is answered."""
    problems = []
    for a in cfg.audio:
        for what, target, fmt in (("mic", a.mic, a.mic_format),
                                  ("speaker", a.speaker, a.speaker_format)):  # fmt: skip
            if target and fmt and fmt not in _av_formats():
                problems.append(f"intercom.audio door {a.door}: {what}_format {fmt!r} is not"
                                " in this PyAV/FFmpeg build")
        if a.mic and not a.mic_format and not Path(a.mic).is_file():
            problems.append(f"intercom.audio door {a.door}: mic file {a.mic} does not exist")
    return problems


def _av_formats() -> set[str]:
    import av  # only a box with door audio devices pays for PyAV at start

    return set(av.formats_available)


class Rtc:
    def __init__(self, cfg: IntercomConfig) -> None:
        self.cfg = cfg
        self.sessions: dict[str, list[Session]] = {}  # call id -> sessions
        for problem in check_audio(cfg):
            log.error("%s: that door's calls carry no door audio", problem)

    def ice_servers(self, user: str, ttl_s: int | None) -> list[dict[str, Any]]:
        """For the phone page (and the box): STUN/TURN, with TURN credentials valid ``ttl_s``
        only when given one (the parties of a live call, for its remaining time); without, a
        TURN server with a secret is left out (probe 11: every signed-in resident got
        one-hour credentials, a free relay, without any call)."""
        if not self.cfg.turn_urls:
            return []
        if not self.cfg.turn_secret:  # an open STUN/TURN server: nothing to hand out
            return [{"urls": list(self.cfg.turn_urls), "username": "", "credential": ""}]
        if ttl_s is None:
            return []
        name, pw = turn_credentials(self.cfg.turn_secret, user, ttl_s)
        return [{"urls": list(self.cfg.turn_urls), "username": name, "credential": pw}]

    def client_config(self, user: str, ttl_s: int | None = None) -> dict[str, Any]:
        return {"iceServers": self.ice_servers(user, ttl_s),
                "iceTransportPolicy": "relay" if self.cfg.rtc_relay_only else "all"}

    async def load(self) -> None:
        """Import the media code (~1 s) off the loop while the call rings, so the phone that
        answers does not wait for it; after that it stays loaded."""
        try:
            await asyncio.to_thread(importlib.import_module, MEDIA)
        except ImportError as e:  # answer() says so to the phone; the call goes on
            log.warning("intercom: no WebRTC (%s); phones get picture snapshots", e)

    async def answer(self, call_id: str, resident_id: str, offer: dict[str, str],
                     camera: Any, audio: DoorAudio | None = None, turn_ttl_s: int = 60
                     ) -> dict[str, str]:
        import av
        from aiortc import (
            RTCConfiguration,
            RTCIceServer,
            RTCIceTransportPolicy,
            RTCPeerConnection,
            RTCSessionDescription,
        )
        from aiortc.contrib.media import MediaPlayer

        from edge.intercom.media import DoorVideo

        servers = [RTCIceServer(urls=s["urls"], username=s["username"] or None,
                                credential=s["credential"] or None)
                   for s in self.ice_servers(f"box-{call_id}", turn_ttl_s)]
        policy = (RTCIceTransportPolicy.RELAY if self.cfg.rtc_relay_only
                  else RTCIceTransportPolicy.ALL)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers or None,
                                                iceTransportPolicy=policy))
        sess = Session(pc, resident_id)
        self.sessions.setdefault(call_id, []).append(sess)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                sess.tasks.append(asyncio.create_task(self._hear(sess, track, audio)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("intercom rtc %s: %s", call_id, pc.connectionState)
            if pc.connectionState == "failed":
                await self._close(sess)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        if not pc.getTransceivers():
            raise ValueError("the offer has no audio or video")
        for t in pc.getTransceivers():
            if t.kind == "video" and camera is not None:
                sess.video = DoorVideo(camera, self.cfg.rtc_fps, self.cfg.snapshot_width)
                t.sender.replaceTrack(sess.video)
                t.direction = "sendonly" if t.direction == "recvonly" else "sendrecv"
            elif t.kind == "audio":
                if audio is not None and audio.mic:
                    fmt = audio.mic_format or None
                    # a device streams; a file (tests, a recorded greeting) loops
                    try:
                        sess.player = MediaPlayer(audio.mic, format=fmt, loop=fmt is None)
                    except (OSError, av.FFmpegError) as e:  # the call goes on without it
                        log.error("intercom: door %s mic %s cannot be opened: %s", audio.door,
                                  audio.mic, e)  # fmt: skip
                    if sess.player is not None and sess.player.audio is not None:
                        t.sender.replaceTrack(sess.player.audio)
                t.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        desc = pc.localDescription
        return {"sdp": desc.sdp, "type": desc.type}

    async def _hear(self, sess: Session, track: MediaStreamTrack,
                    audio: DoorAudio | None) -> None:
        """The phone's microphone: to the door speaker if one is configured, and its level
        kept either way (health: is the phone's voice arriving at all)."""
        import av
        from aiortc.contrib.media import MediaRecorder, MediaRelay

        if audio is not None and audio.speaker:
            relay = MediaRelay()  # one track, two readers: the speaker and the level meter
            try:
                sess.recorder = MediaRecorder(audio.speaker,
                                              format=audio.speaker_format or None)
                sess.recorder.addTrack(relay.subscribe(track))
                await sess.recorder.start()
            except (OSError, av.FFmpegError) as e:
                log.error("intercom: door %s speaker %s cannot be opened: %s", audio.door,
                          audio.speaker, e)  # fmt: skip
                sess.recorder = None
            track = relay.subscribe(track)
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray()  # type: ignore[union-attr]
                peak = float(np.abs(pcm).max()) / 32768.0 if pcm.size else 0.0
                sess.rx_audio_frames += 1
                sess.rx_audio_peak = max(sess.rx_audio_peak, peak)

    async def _close(self, sess: Session) -> None:
        for t in sess.tasks:
            t.cancel()
        if sess.recorder is not None:
            with contextlib.suppress(Exception):
                await sess.recorder.stop()
        if sess.player is not None and sess.player.audio is not None:
            sess.player.audio.stop()
        with contextlib.suppress(Exception):
            await sess.pc.close()

    async def end(self, call_id: str) -> None:
        for sess in self.sessions.pop(call_id, []):
            await self._close(sess)

    async def close_all(self) -> None:
        for cid in list(self.sessions):
            await self.end(cid)
