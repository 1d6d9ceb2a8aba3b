"""A door camera that disappears: an offline device-health event, then (after
offline_ticket_after_s) a repair ticket through box.service("tickets"), closed when the camera
is back. The camera is a real RTSP stream from a GStreamer RTSP server process."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from edge.tickets import store as tickets_db
from tests.conftest import free_port
from tests.drivers.cameras.peers import GstRtspServer, gst_available

AFTER_S = 1.5


def config_extra(url: str) -> str:
    return f"""
[access]
offline_ticket_after_s = {AFTER_S}
health_check_s = 0.1

[[cameras]]
id = "cam-gate"
type = "rtsp"
url = "{url}"
reconnect_min_s = 0.2
reconnect_max_s = 1
read_timeout_ms = 1500
stall_s = 1.0

[[doors]]
id = "door-gate"
type = "sim"
camera = "cam-gate"
"""


async def health_events(box) -> list[dict]:
    evs = await box.store.run(box.store.sync.events_after, 0, 1000)
    return [
        {**e.payload, "t": datetime.fromisoformat(e.ts)}
        for e in evs
        if e.kind == "device_health" and e.device_id == "cam-gate"
    ]


async def camera_tickets(box) -> list[dict]:
    rows = await box.store.run(tickets_db.list_tickets, box.store.sync)
    return [r for r in rows if r["device_id"] == "cam-gate"]


async def until(cond, limit_s: float, what: str):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        got = await cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {limit_s} s waiting for {what}")


async def test_camera_gone_offline_event_ticket_then_closed(make_config, run_box) -> None:
    if not gst_available():
        pytest.fail("GStreamer RTSP server missing (scripts/setup.sh test installs it)")
    port = free_port()
    server = GstRtspServer(port, fps=15).start()
    try:
        box = await run_box(make_config(extra=config_extra(server.url)))
        cam = box.service("devices").get("camera", "cam-gate")

        async def state_is(s: str) -> bool:
            return cam.state == s

        await until(lambda: state_is("online"), 20, "the camera online")
        assert await camera_tickets(box) == []

        # The camera disappears.
        await asyncio.to_thread(server.stop)
        gone = time.monotonic()

        async def offline_event() -> list[dict]:
            return [e for e in await health_events(box) if e["state"] == "offline"]

        off = (await until(offline_event, 10, "an offline device-health event"))[0]
        assert off["previous"] == "online" and "rtsp" in off["reason"]
        assert off["device_kind"] == "camera"
        # No ticket before offline_ticket_after_s has passed ...
        noticed = time.monotonic()
        assert await camera_tickets(box) == []
        # ... then exactly one, high urgency, from device health.
        opened = await until(lambda: camera_tickets(box), 10, "a repair ticket")
        assert time.monotonic() - noticed >= AFTER_S - 0.3
        assert len(opened) == 1
        t = opened[0]
        assert (t["source"], t["device_kind"], t["status"], t["urgency"]) == (
            "device_health", "camera", "open", "high")
        assert box.service("tickets") is not None
        await asyncio.sleep(0.5)  # still offline: no second ticket
        assert len(await camera_tickets(box)) == 1

        # The camera comes back: online event, the ticket is closed by the system.
        server = GstRtspServer(port, fps=15).start()

        async def closed() -> list[dict]:
            rows = await camera_tickets(box)
            return rows if rows and rows[0]["status"] == "confirmed" else []

        rows = await until(closed, 25, "the ticket closed after the camera came back")
        assert len(rows) == 1 and rows[0]["id"] == t["id"]
        states = [e["state"] for e in await health_events(box)]
        assert states[-1] == "online" and "offline" in states
        assert cam.state == "online" and time.monotonic() - gone < 40
        history = await box.store.run(tickets_db.history, box.store.sync, t["id"])
        assert [h["to_status"] for h in history][-2:] == ["resolved", "confirmed"]
    finally:
        server.stop()
