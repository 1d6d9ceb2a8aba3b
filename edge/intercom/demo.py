"""Demo step: a visitor dials a flat on the door screen page, a phone answers and opens.

The door screen and the phone are driven over HTTP here (the same calls their pages make); the
step prints both pages' addresses so they can be opened in a browser while the demo runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import click

from edge.access.demo import DOOR
from edge.core.demo import Demo, say
from edge.devices import DEVICES
from edge.intercom import store as db
from edge.screens import SCREENS
from edge.screens.demo import stand_in_player

SCREEN = "door-face-screen"
RESIDENT, FLAT = "demo-r301", "2-1-301"


def demo_intercom_toml(work_dir: Path) -> str:
    """A screen at the demo's face door (edge/access/demo.py), showing the call panel."""
    return f"""
[[screens]]
id = "{SCREEN}"
type = "sim"
name = "2号楼门口屏"
door = "{DOOR}"
"""


async def _json(r: aiohttp.ClientResponse) -> Any:
    body = await r.json(content_type=None)
    if r.status >= 300:
        raise click.ClickException(f"{r.method} {r.url} -> {r.status} {body}")
    return body


async def step_intercom(d: Demo) -> None:
    say("Visitor intercom (一键呼叫开门)",
        "A visitor dials 2-1-301 on the door screen; the flat's phone rings, sees the door"
        " camera, and opens with one tap")
    try:
        d.box.get(DEVICES).get("door", DOOR)
    except KeyError:
        click.echo(f"  skipped: the demo config has no door {DOOR}")
        return
    key = await d.box.get(SCREENS).new_key(SCREEN, "demo")
    screen = f"{d.api}/screen/{SCREEN}/intercom"
    # As for the publicity screen: a stand-in player holds the door screen's socket, so the
    # demo's own doctor sees it connected as on a site where the kiosk opened its address.
    d.tasks.append(asyncio.create_task(stand_in_player(f"{d.api}/screen/{SCREEN}#key={key}")))
    async with aiohttp.ClientSession(headers=d.headers) as s:
        async with s.post(f"{d.api}/api/v1/residents", json={
                "id": RESIDENT, "name": "刘奶奶", "building": "2", "unit": "1",
                "room": "301"}) as r:
            if r.status not in (201, 409):
                await _json(r)
        # Door rights are explicit: 刘奶奶 may open her building's face door (the call's door).
        async with s.put(f"{d.api}/api/v1/residents/{RESIDENT}/access",
                         json={"doors": [DOOR]}) as r:
            await _json(r)
        async with s.post(f"{d.api}/api/v1/portal/codes", json={
                "resident_id": RESIDENT, "name": "刘奶奶", "building": "2"}) as r:
            code = await _json(r)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{d.api}/api/v1/portal/login", json={"code": code["code"]}) as r:
            phone = {"Cookie": f"qilu_rs={(await _json(r))['token']}"}
        click.echo(f"  door screen page: {d.api}/screen/{SCREEN}#key={key}  (1080x1920 portrait:"
                   " what plays, and the call panel below it)")
        click.echo(f"  phone page:       {d.api}/r/intercom  (log in with code {code['code']})")
        door = {"X-Screen-Key": key}
        async with s.get(f"{screen}/directory", headers=door) as r:
            click.echo(f"  directory at {DOOR}: {(await _json(r))['flats']}")
        async with s.post(f"{screen}/calls", json={"flat": FLAT}, headers=door) as r:
            call = await _json(r)
        click.echo(f"  the visitor dials {FLAT} -> call {call['id']}: {call['state']}")
        async with s.get(f"{d.api}/r/intercom/poll", headers=phone) as r:
            view = await _json(r)
        click.echo(f"  the phone rings: {[(c['door'], c['state']) for c in view['calls']]}")
        async with s.post(f"{d.api}/r/intercom/calls/{call['id']}/answer", headers=phone) as r:
            await _json(r)
        async with s.get(f"{d.api}/r/intercom/calls/{call['id']}/snapshot.jpg",
                         headers=phone) as r:
            jpeg = await r.read()
        pic = d.work_dir.resolve() / "intercom-door.jpg"
        await asyncio.to_thread(pic.write_bytes, jpeg)
        click.echo(f"  answered; the door camera's picture ({len(jpeg)} bytes JPEG): {pic}")
        async with s.post(f"{d.api}/r/intercom/calls/{call['id']}/open", headers=phone) as r:
            await _json(r)
        async with s.get(f"{screen}/calls/{call['id']}", headers=door) as r:
            click.echo(f"  one tap on 开门 -> the door screen says: {(await _json(r))['said']}")
    pulses = getattr(d.box.get(DEVICES).get("door", DOOR), "pulses", None)
    rows = await d.box.store.run(db.list_calls, d.box.store.sync, FLAT, 1)
    r0 = rows[0]
    click.echo(f"  sim door {DOOR} relay pulses: {pulses}; intercom_call {r0['state']},"
               f" answered_by {r0['answered_by']}, access event {r0['access_event_id']}")
