"""Shared steps of the intercom tests and bench/intercom.py: a box with a Modbus door (a real
pymodbus board), a `file` door camera, a door screen bound to the door, residents of two flats
logged in to the portal, and the door screen's device key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np

from edge.access import store as access_db
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as store_faces
from tests.edge.portal.helpers import staff

# flat 1-1-101: two residents (two phones); 1-1-102: a neighbour; 2-1-101: another building
RESIDENTS = {"r-a": "1-1-101", "r-b": "1-1-101", "r-n": "1-1-102", "r-x": "2-1-101"}


def camera_frames(folder: Path, n: int = 12) -> Path:
    """Frames that differ from each other (a moving bar), so a picture can be seen to change."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((480, 640, 3), (40, 90, 30), np.uint8)
        x = 40 + i * 45
        cv2.rectangle(img, (x, 100), (x + 60, 380), (30, 30, 230), -1)
        cv2.putText(img, f"DOOR {i:02d}", (200, 450), cv2.FONT_HERSHEY_SIMPLEX, 1.5,
                    (255, 255, 255), 3)
        cv2.imwrite(str(folder / f"{i:04d}.png"), img)
    return folder


# No TURN server and relay-only ICE: WebRTC cannot connect, so the pages show the snapshot
# fallback (and nothing leaves loopback); tests/edge/intercom/test_rtc.py gives a real TURN.
NO_RTC_PATH = "rtc_relay_only = true"


def intercom_toml(board_port: int, frames: Path, extra: str = "", ring_s: float = 4,
                  rtc: str = NO_RTC_PATH) -> str:
    return f"""
[access]
enabled = false

[portal]
stats_interval_s = 3600

[intercom]
ring_s = {ring_s}
{rtc}
{extra}

[[cameras]]
id = "cam-gate"
type = "file"
path = "{frames}"
fps = 10

[[doors]]
id = "d-gate"
type = "modbus"
name = "1号楼大门"
building = "1"
camera = "cam-gate"
port = {board_port}
coil = 2
pulse_ms = 300

[[screens]]
id = "scr-gate"
type = "sim"
door = "d-gate"

[[screens]]
id = "scr-lobby"
type = "sim"
"""


def seed(config: Any) -> None:
    """The residents (faces' table: building, unit, room), before the box starts."""
    store = Store(config.db_path, box_id=config.box.id)
    try:
        for rid, flat in RESIDENTS.items():
            b, u, r = flat.split("-")
            store_faces.add_resident(store, Resident(id=rid, name=rid, building=b, unit=u, room=r))
            access_db.set_rights(store, rid, [], [], [], "test", all_doors=True)  # explicit
    finally:
        store.close()


async def tokens(s: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """A portal session token for every resident."""
    out = {}
    for rid, flat in RESIDENTS.items():
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes",
                           json={"resident_id": rid, "building": flat.split("-")[0], "name": rid})
        async with s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]}) as r:
            assert r.status == 200, await r.text()
            out[rid] = (await r.json())["token"]
    s.cookie_jar.clear()
    return out


def as_resident(token: str) -> dict[str, str]:
    return {"Cookie": f"qilu_rs={token}"}


async def screen_key(box: Any, screen_id: str = "scr-gate") -> str:
    return await box.service("screens").new_key(screen_id, "test")
