"""Proof of play cannot be forged or flooded (issue 13, Medium #6): plays come only from the
screen (its device key), in bounded requests, with plausible times, of content the box
scheduled on that screen; and under disk pressure they are dropped after telemetry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import aiohttp

from tests.conftest import STAFF_TOKEN, api_url, db_count
from tests.edge.screens.helpers import screen_key
from tests.edge.screens.test_service import SCREENS, setup_schedule

INDOOR = """
[[screens]]
id = "scr-2"
type = "sim"
tags = ["indoor"]
"""


def play(pid: str, cid: str, ago_s: float = 60, dur_s: float = 2) -> dict:
    start = datetime.now(UTC) - timedelta(seconds=ago_s)
    return {"id": pid, "content_id": cid, "started_at": start.isoformat(),
            "ended_at": (start + timedelta(seconds=dur_s)).isoformat()}


async def test_forged_and_implausible_plays_are_refused(make_config, run_box) -> None:
    box = await run_box(make_config(extra=SCREENS + INDOOR))
    base = api_url(box)
    plays = f"{base}/screen/scr-1/plays"
    async with aiohttp.ClientSession() as s:
        await setup_schedule(s, base)  # img1 and n1 on the "outdoor" screens only
        key = (await screen_key(base, "scr-1"))["key"]
        K = {"X-Screen-Key": key}
        # The probe: 5,000 made-up records without a key ...
        flood = {"records": [play(f"pr-{i}", "img1") for i in range(5000)]}
        async with s.post(plays, json=flood) as r:
            assert r.status == 401
        # ... or with the screen's key, in one request: refused as a whole (too big), and so
        # are more than 500 records however small.
        async with s.post(plays, json=flood, headers=K) as r:
            assert r.status == 413
        async with s.post(plays, json={"records": flood["records"][:501]}, headers=K) as r:
            assert r.status == 413 and (await r.json())["field"] == "records"
        async with s.post(plays, data=b"{" + b" " * 600_000 + b"}",
                          headers={**K, "Content-Type": "application/json"}) as r:
            assert r.status == 413
        # Another screen's key does not report for this one.
        key2 = (await screen_key(base, "scr-2"))["key"]
        async with s.post(plays, json={"records": [play("pr-x", "img1")]},
                          headers={"X-Screen-Key": key2}) as r:
            assert r.status == 401
        assert db_count(box, "SELECT count(*) FROM play_records") == 0

        now = datetime.now(UTC)
        batch = [
            play("pr-ok", "img1"),
            play("pr-future", "img1", ago_s=-3600),  # ends an hour from now
            play("pr-old", "img1", ago_s=40 * 86400),  # beyond plays_max_age_days
            play("pr-backwards", "img1", dur_s=-5),
            play("pr-unscheduled", "nothing-like-it"),
            {"id": "pr-naive", "content_id": "img1", "started_at": now.replace(tzinfo=None)
             .isoformat(), "ended_at": now.replace(tzinfo=None).isoformat()},
        ]
        async with s.post(plays, json={"records": batch}, headers=K) as r:
            out = await r.json()
        assert out["ack"] == ["pr-ok"]
        assert sorted(out["rejected"]) == sorted(p["id"] for p in batch[1:])
        # img1 plays on the outdoor screens only: the indoor one shows the default notice.
        async with s.ws_connect(f"{base}/screen/scr-2/ws?key={key2}") as ws:
            await ws.receive(timeout=5)  # its plan
            await ws.send_str(json.dumps({"type": "plays", "records": [
                play("pr-in-1", "img1"), play("pr-in-2", "default")]}))
            ack = json.loads((await ws.receive(timeout=5)).data)
        assert (ack["ack"], ack["rejected"]) == (["pr-in-2"], ["pr-in-1"])
    assert db_count(box, "SELECT count(*) FROM play_records") == 2
    assert db_count(box, "SELECT count(*) FROM outbox WHERE kind = 'play_record'") == 2


async def test_late_report_of_an_emergency_is_kept(make_config, run_box) -> None:
    """A screen offline for days reports the emergency it showed meanwhile: plays are accepted
    for plays_max_age_days (30), emergencies included, so they are stored, not rejected."""
    box = await run_box(make_config(extra=SCREENS))
    base = api_url(box)
    H = {"Authorization": "Bearer " + STAFF_TOKEN}
    async with aiohttp.ClientSession() as s:
        start = datetime.now(UTC) - timedelta(days=3)
        em = {"id": "em-gas", "title": "燃气泄漏，请绕行", "starts_at": start.isoformat(),
              "expires_at": (start + timedelta(hours=2)).isoformat()}
        async with s.post(f"{base}/api/v1/screens/emergencies", json=em, headers=H) as r:
            assert r.status == 201, await r.text()
        key = (await screen_key(base, "scr-1"))["key"]
        rec = play("pr-em", "em-gas", ago_s=3 * 86400 - 60, dur_s=600)
        async with s.post(f"{base}/screen/scr-1/plays", json={"records": [rec]},
                          headers={"X-Screen-Key": key}) as r:
            assert r.status == 200
            assert await r.json() == {"ack": ["pr-em"], "rejected": []}
    assert db_count(box, "SELECT count(*) FROM play_records WHERE content_id='em-gas'") == 1


async def test_play_cut_short_by_a_new_schedule_is_kept(make_config, run_box) -> None:
    """The screen plays notice a; staff publish a schedule of higher priority, the box pushes
    the new plan and the page ends a's play and reports it. That play was what the box told
    the screen to show, so it is stored, not rejected because the current schedule now says
    b for that time (every publish lost the play then running on each screen)."""
    box = await run_box(make_config(extra=SCREENS))
    base = api_url(box)
    H = {"Authorization": "Bearer " + STAFF_TOKEN}
    async with aiohttp.ClientSession(headers=H) as s:
        for cid in ("a", "b"):
            item = {"id": cid, "kind": "html", "title": cid, "body": cid, "duration_s": 30}
            assert (await s.post(f"{base}/api/v1/screens/content", json=item)).status == 201
            pl = {"id": f"pl-{cid}", "name": cid, "items": [{"content_id": cid}]}
            assert (await s.post(f"{base}/api/v1/screens/playlists", json=pl)).status == 201
        sch = {"id": "s-a", "playlist_id": "pl-a", "tags": ["outdoor"]}
        assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201
        key = (await screen_key(base, "scr-1"))["key"]
        # The page connects and is told its plan: a.
        async with s.ws_connect(f"{base}/screen/scr-1/ws?key={key}") as ws:
            first = json.loads((await ws.receive(timeout=5)).data)
            assert first["type"] == "plan"
            started = datetime.now(UTC)
            sch = {"id": "s-b", "playlist_id": "pl-b", "tags": ["outdoor"], "priority": 5}
            assert (await s.post(f"{base}/api/v1/screens/schedules", json=sch)).status == 201
            pushed = json.loads((await ws.receive(timeout=5)).data)
            assert pushed["type"] == "plan"
            ended = datetime.now(UTC)
            rec = {"id": "pr-a", "content_id": "a", "started_at": started.isoformat(),
                   "ended_at": ended.isoformat()}
            await ws.send_str(json.dumps({"type": "plays", "records": [rec]}))
            ack = json.loads((await ws.receive(timeout=5)).data)
    assert ack == {"type": "ack", "ack": ["pr-a"], "rejected": []}
    assert db_count(box, "SELECT count(*) FROM play_records WHERE content_id='a'") == 1
