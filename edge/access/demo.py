"""Demo step: face doors end to end, remote open and a one-time visitor pass.

A resident is enrolled from a registry test photo through the API; the demo door's ``file``
camera then plays synthetic frames of that resident turning their head, an empty hallway, and
a stranger who resembles them (the resident's face blended 40 % into another person's); the
``sim`` door opens for the resident and refuses the look-alike. Then a remote open, and a
visitor pass (QR code as a PNG file + PIN) that opens once and is refused the second time.

The camera's folder is a symlink swapped atomically (the file camera looks at its folder
again each loop), so the door idles on an empty hallway outside this step.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import click
import cv2
import numpy as np

from edge.access import store as db
from edge.access import synthetic
from edge.devices import DEVICES
from edge.faces import FACES
from edge.faces.config import FacesConfig

DOOR = "door-face"
CAMERA = "cam-door"
RESIDENT = "r-demo-face"
PHOTOS = Path(__file__).resolve().parents[2] / "tests" / "data" / "faces"
ENROL, KNOWN, STRANGER = "obama2.jpg", "obama.jpg", "biden.jpg"
WAIT_S = 15.0


def camera_link(work_dir: Path) -> Path:
    return work_dir.resolve() / "door-camera"


def show(work_dir: Path, name: str, frames: list[np.ndarray]) -> None:
    """Write frames to a fresh folder and point the camera's symlink at it atomically."""
    base = work_dir.resolve() / "door-camera.d"
    folder = base / f"{name}-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), f)
    link = camera_link(work_dir)
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(folder)
    os.replace(tmp, link)
    for old in base.iterdir():  # the reader already decoded what it plays
        if old != folder and old.is_dir():
            for f in old.iterdir():
                f.unlink()
            old.rmdir()


def demo_access_toml(work_dir: Path) -> str:
    """The camera and face door the demo config carries; the camera starts on an empty
    hallway (edge/demo.py calls this when it writes the config)."""
    show(work_dir, "empty", [synthetic.hallway()])
    return f"""
[[cameras]]
id = "{CAMERA}"
type = "file"
name = "2号楼门口摄像头"
path = "{camera_link(work_dir)}"
fps = 15
reconnect_max_s = 2

[[doors]]
id = "{DOOR}"
type = "sim"
name = "2号楼刷脸门"
building = "2"
camera = "{CAMERA}"
pulse_ms = 300
"""


def say(title: str, detail: str = "") -> None:
    click.secho(f"\n▶ {title}", fg="cyan", bold=True)
    if detail:
        click.echo(detail)


async def _events(d: Any, decision: str | None = None) -> list[dict]:
    store = d.box.store
    return await store.run(db.list_events, store.sync, DOOR, 50, decision)


async def _wait_event(d: Any, since: str, pred, limit_s: float) -> dict | None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for e in await _events(d):
            if e["ts"] > since and pred(e):
                return e
        await asyncio.sleep(0.1)
    return None


def _line(e: dict | None) -> str:
    if e is None:
        return "no event within the time limit"
    v = e["similarity"]  # a match score on the event's score_scale: z-score or cosine
    sim = "-" if v is None else f"z {v:.1f}" if e.get("score_scale") == "znorm" else f"cos {v:.2f}"
    live = "-" if e["liveness"] is None else f"{e['liveness']:.2f}"
    ms = "-" if e["latency_ms"] is None else f"{e['latency_ms']:.0f} ms"
    return (f"{e['decision']} ({e['reason']}) resident={e['resident_id']} match score={sim} "
            f"liveness={live} latency={ms}")


async def step_face_doors(d: Any) -> None:
    say("Face doors (刷脸开门): enrol a resident, a camera sees them and a stranger")
    missing = [n for n in (ENROL, KNOWN, STRANGER) if not (PHOTOS / n).exists()]
    if missing:
        click.echo(f"  skipped: test photos {', '.join(missing)} are missing in {PHOTOS};\n"
                   "  fetch them with: .venv/bin/python tests/data/fetch_faces.py "
                   "(scripts/setup.sh does it)")
        return
    faces = d.box.get(FACES)
    if faces.pipeline is None:
        click.echo("  skipped: face recognition is disabled ([faces] enabled = false)")
        return
    try:
        d.box.get(DEVICES).get("door", DOOR)
    except KeyError:
        click.echo(f"  skipped: the demo config has no door {DOOR}")
        return
    async with aiohttp.ClientSession(headers=d.headers) as s:
        async with s.post(f"{d.api}/api/v1/residents", json={
            "id": RESIDENT, "name": "演示居民", "building": "2"}) as r:
            if r.status not in (201, 409):
                click.echo(f"  could not add the resident: {r.status} {await r.text()}")
                return
        # Door rights are explicit (no rights: no door): this resident may use the face door.
        async with s.put(f"{d.api}/api/v1/residents/{RESIDENT}/access",
                         json={"doors": [DOOR]}) as r:
            if r.status != 200:
                click.echo(f"  could not give the resident door rights: {r.status}"
                           f" {await r.text()}")
                return
        form = aiohttp.FormData()
        form.add_field("photo", (PHOTOS / ENROL).read_bytes(), filename=ENROL,
                       content_type="image/jpeg")
        async with s.post(f"{d.api}/api/v1/residents/{RESIDENT}/photos", data=form) as r:
            out = await r.json()
        acc = out.get("accepted", [])
        click.echo(f"  POST /api/v1/residents/{RESIDENT}/photos ({ENROL}) -> "
                   f"{len(acc)} template(s)" + (f", quality {acc[0]['quality']:.2f}" if acc
                                                 else f", refused: {out.get('rejected')}"))

        # Synthetic door frames (the detector runs on the face pipeline's own thread).
        p = faces.pipeline
        seqs, placed_faces, frames = {}, {}, {}
        for name in (KNOWN, STRANGER):
            img = await asyncio.to_thread(cv2.imread, str(PHOTOS / name))
            found = (await p.analyse(img, max_faces=1)).faces
            frame = synthetic.door_frame(img, found[0].face if found else None)
            placed = (await p.analyse(frame, max_faces=1)).faces
            frames[name], placed_faces[name] = frame, placed[0].face if placed else None
            seqs[name] = synthetic.head_turn(frame, placed[0].face) if placed else [frame]
        if placed_faces[KNOWN] is not None and placed_faces[STRANGER] is not None:
            alike = synthetic.look_alike(frames[STRANGER], placed_faces[STRANGER],
                                         frames[KNOWN], placed_faces[KNOWN], 0.4)
            seqs[STRANGER] = synthetic.head_turn(alike, placed_faces[STRANGER])
        gap = [synthetic.hallway()] * 10
        since = datetime.now(UTC).isoformat()
        await asyncio.to_thread(show, d.work_dir, "people", seqs[KNOWN] + gap + seqs[STRANGER]
                                + gap)
        click.echo(f"  camera {CAMERA} (file, 15 fps) plays: the resident turning their head "
                   f"({KNOWN}), an empty hallway, a stranger who resembles them ({STRANGER} "
                   f"with 40 % of the resident's face blended in)")
        granted = await _wait_event(
            d, since, lambda e: e["decision"] == "granted" and e["method"] == "face", WAIT_S)
        denied = await _wait_event(
            d, since, lambda e: e["decision"] == "denied" and e["reason"] == "unknown_face",
            WAIT_S)
        await asyncio.to_thread(show, d.work_dir, "empty", [synthetic.hallway()])
        click.echo(f"  resident: {_line(granted)}")
        click.echo(f"  look-alike stranger: {_line(denied)}")
        op = p.operating()
        if op is not None:
            fc = d.box.config.section(FacesConfig)
            click.echo(f"  threshold {op.threshold:.3f} from 1/{round(1 / op.target_fpir):,} "
                       f"strangers per visit at {op.residents} residents; "
                       f"{fc.visit_k} of the last {fc.visit_n} frames must agree")
        pulses = getattr(d.box.get(DEVICES).get("door", DOOR), "pulses", None)
        click.echo(f"  sim door {DOOR} relay pulses: {pulses}")

        say("Remote open (一键开门) and a one-time visitor pass")
        async with s.post(f"{d.api}/api/v1/doors/{DOOR}/open") as r:
            o = await r.json()
        back = o.get("relay_changed")
        click.echo(f"  POST /api/v1/doors/{DOOR}/open -> {r.status} granted={o.get('granted')} "
                   + ("(a sim door has no relay read-back)" if back is None
                      else f"relay read back={back}"))
        until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        async with s.post(f"{d.api}/api/v1/passes", json={
            "resident_id": RESIDENT, "doors": [DOOR], "valid_to": until, "uses": 1,
            "visitor": "快递员"}) as r:
            vp = await r.json()
        if r.status != 201:
            click.echo(f"  could not create a pass: {r.status} {vp}")
            return
        png = d.work_dir.resolve() / "visitor-pass.png"
        await asyncio.to_thread(png.write_bytes, base64.b64decode(vp["qr_png_base64"]))
        click.echo(f"  POST /api/v1/passes -> pass {vp['id']}: QR code {png}  PIN {vp['pin']}")
        for attempt in ("first", "second"):
            async with s.post(f"{d.api}/api/v1/doors/{DOOR}/pin", json={"pin": vp["pin"]}) as r:
                res = await r.json()
            click.echo(f"  keypad PIN, {attempt} use -> {r.status} {res.get('reason')}")
    click.echo(f"  every decision is an access event: GET {d.api}/api/v1/access/events"
               f"?door={DOOR}")
