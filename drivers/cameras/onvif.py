"""ONVIF cameras (onvif-zeep-async): device information, profiles, stream and snapshot URIs,
then frames through the ``rtsp`` reader. Plus a WS-Discovery scan for installers.

The ONVIF lookup runs on the event loop; the reader thread asks for it (and re-asks after a
failure, with the reader's back-off), so a camera that was off at boot is found later.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from onvif import ONVIFCamera
from pydantic import Field

from drivers.cameras.base import CameraDriver, CameraOptions, Source
from drivers.cameras.rtsp import open_stream, redact, with_credentials
from drivers.registry import register

WSD_GROUP = ("239.255.255.250", 3702)


class OnvifOptions(CameraOptions):
    host: str
    port: int = Field(80, ge=1, le=65535)  # the ONVIF (HTTP) port
    username: str | None = None
    password: str | None = None
    profile: int | str = 0  # index or token of the media profile (0 = main stream)
    # Decode only what the door needs: the smallest profile at least this wide (a camera's
    # sub-stream, e.g. 640x360 beside 1920x1080) instead of ``profile``. Face doors work on
    # 640 px (docs/access.md "Rush hour"); None: use ``profile``.
    min_width: int | None = Field(None, ge=64, le=7680)
    transport: Literal["tcp", "udp"] = "tcp"
    timeout_s: float = Field(5.0, gt=0, le=60)  # ONVIF calls
    open_timeout_ms: int = Field(5000, ge=100, le=60000)
    read_timeout_ms: int = Field(5000, ge=100, le=60000)
    hw_decode: bool = False  # see the rtsp driver
    decoder: str | None = None  # see the rtsp driver


@dataclass
class OnvifInfo:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    profiles: list[dict[str, Any]] = field(default_factory=list)
    stream_uri: str = ""
    snapshot_uri: str = ""


async def query(o: OnvifOptions) -> OnvifInfo:
    """Ask the camera who it is and where its streams are."""
    cam = ONVIFCamera(o.host, o.port, o.username or "", o.password or "")
    try:
        async with asyncio.timeout(o.timeout_s):
            await cam.update_xaddrs()
            dm = await cam.create_devicemgmt_service()
            di = await dm.GetDeviceInformation()
            media = await cam.create_media_service()
            profiles = await media.GetProfiles()
            if not profiles:
                raise OSError("camera reports no media profiles")
            if o.min_width is not None:
                chosen = pick_profile(profiles, o.min_width)
            elif isinstance(o.profile, int):
                if o.profile >= len(profiles):
                    raise OSError(f"profile {o.profile}: camera has {len(profiles)} profiles")
                chosen = profiles[o.profile]
            else:
                chosen = next((p for p in profiles if p.token == o.profile), None)
                if chosen is None:
                    raise OSError(f"profile {o.profile!r} not found")
            setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            uri = await media.GetStreamUri({"StreamSetup": setup, "ProfileToken": chosen.token})
            try:
                snap = (await media.GetSnapshotUri({"ProfileToken": chosen.token})).Uri
            except Exception:  # optional in the profile S spec
                snap = ""
    finally:
        await cam.close()
    info = OnvifInfo(
        manufacturer=str(di.Manufacturer or ""),
        model=str(di.Model or ""),
        firmware=str(di.FirmwareVersion or ""),
        serial=str(di.SerialNumber or ""),
        stream_uri=str(uri.Uri),
        snapshot_uri=str(snap or ""),
    )
    for p in profiles:
        enc = getattr(p, "VideoEncoderConfiguration", None)
        res = getattr(enc, "Resolution", None) if enc is not None else None
        info.profiles.append(
            {
                "token": p.token,
                "name": p.Name,
                "width": getattr(res, "Width", None),
                "height": getattr(res, "Height", None),
                "chosen": p.token == chosen.token,
            }
        )
    return info


def _width(p: Any) -> int | None:
    enc = getattr(p, "VideoEncoderConfiguration", None)
    res = getattr(enc, "Resolution", None) if enc is not None else None
    w = getattr(res, "Width", None)
    return int(w) if w else None


def pick_profile(profiles: list[Any], min_width: int) -> Any:
    """The smallest profile at least ``min_width`` wide; the widest if none is (a sub-stream
    that small does not exist); the first when the camera reports no resolutions."""
    sized = [(w, i) for i, p in enumerate(profiles) if (w := _width(p)) is not None]
    if not sized:
        return profiles[0]
    wide = [x for x in sized if x[0] >= min_width]
    _, i = min(wide) if wide else max(sized)
    return profiles[i]


@register("cameras", "onvif")
class OnvifCamera(CameraDriver):
    Options = OnvifOptions
    options: OnvifOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info: OnvifInfo | None = None

    def describe(self) -> str:
        return f"onvif://{self.options.host}:{self.options.port}"

    def open_source(self) -> Source:
        o = self.options
        loop = self._loop
        assert loop is not None
        if self.info is None or self.reconnects:  # re-ask after a failure: the URI may move
            fut = asyncio.run_coroutine_threadsafe(query(o), loop)
            try:
                self.info = fut.result(o.timeout_s + 1)
            except Exception as e:
                fut.cancel()
                raise OSError(f"ONVIF: {e or type(e).__name__}") from e
        url = with_credentials(self.info.stream_uri, o.username, o.password)
        return open_stream(url, o.transport, o.open_timeout_ms, o.read_timeout_ms,
                           o.hw_decode, o.decoder)

    async def snapshot(self) -> bytes:
        """One JPEG from the camera's snapshot URI (no stream needed)."""
        if self.info is None or not self.info.snapshot_uri:
            raise OSError("camera has no snapshot URI")
        o = self.options
        headers = {}
        if o.username:
            # RFC 7617 by hand: aiohttp.BasicAuth is deprecated and its successor is 3.13+ only.
            token = base64.b64encode(f"{o.username}:{o.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        timeout = aiohttp.ClientTimeout(total=o.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as s:
            async with s.get(self.info.snapshot_uri, headers=headers) as r:
                r.raise_for_status()
                return await r.read()

    def status(self) -> dict[str, Any]:
        st = super().status()
        if self.info is not None:
            st.update(
                manufacturer=self.info.manufacturer,
                model=self.info.model,
                firmware=self.info.firmware,
                stream=redact(self.info.stream_uri),
                profiles=self.info.profiles,
            )
        return st


# --- WS-Discovery -------------------------------------------------------------------------

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"
 xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<e:Header><w:MessageID>uuid:{mid}</w:MessageID>
<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>
<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>
</e:Header><e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>
</e:Envelope>"""


@dataclass(frozen=True)
class Found:
    address: str  # who answered
    xaddrs: tuple[str, ...]  # ONVIF device service URLs
    scopes: tuple[str, ...]

    @property
    def name(self) -> str:
        for s in self.scopes:
            if "/name/" in s:
                return s.rsplit("/", 1)[1]
        return ""


def discover(
    limit_s: float = 3.0, targets: tuple[tuple[str, int], ...] = (WSD_GROUP,)
) -> list[Found]:
    """Send a WS-Discovery Probe (multicast by default) and collect the ProbeMatch answers.

    Blocking (run it in a thread). ``targets`` can name a unicast address, which also works
    on loopback where multicast does not.
    """
    mid = uuid.uuid4()
    msg = PROBE.format(mid=mid).encode()
    found: dict[tuple[str, ...], Found] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 2)
        sock.bind(("", 0))
        for t in targets:
            sock.sendto(msg, t)
        deadline = time.monotonic() + limit_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                break
            text = data.decode("utf-8", "replace")
            if "ProbeMatch" not in text:  # ProbeMatches per spec; some cameras say ProbeMatch
                continue
            xaddrs = tuple(" ".join(re.findall(r"XAddrs>([^<]+)<", text)).split())
            scopes = tuple(" ".join(re.findall(r"Scopes[^>]*>([^<]+)<", text)).split())
            if xaddrs:
                found[xaddrs] = Found(addr[0], xaddrs, scopes)
    return list(found.values())
