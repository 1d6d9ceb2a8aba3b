"""The portal API on a real box: logins, sessions as bearer tokens, feed, events, boards, counts."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from edge.core.standard import ContentItem
from edge.portal import store as db
from edge.screens import store as screens_db
from tests.conftest import api_url
from tests.edge.portal.helpers import FAST, STAFF, article, login, staff


async def test_code_login_is_one_time_and_session_revocable(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        code = await staff(
            s, "POST", f"{base}/api/v1/portal/codes", json={"resident_id": "r-101", "building": "3"}
        )
        assert len(code["code"]) == 8 and code["link"].endswith(f"/r/login?code={code['code']}")
        r = await s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]})
        assert r.status == 200
        tok = (await r.json())["token"]
        # one-time: the same code again is refused
        r = await s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]})
        assert r.status == 401 and (await r.json())["field"] == "code"
        h = {"Authorization": f"Bearer {tok}"}
        s.cookie_jar.clear()
        r = await s.get(f"{base}/api/v1/portal/me", headers=h)
        me = await r.json()
        assert (me["resident_id"], me["building"]) == ("r-101", "3")
        # the resident session is a bearer token of role "resident" for every box API
        assert await box.service("portal").authenticate(tok) == ("r-101", "resident")
        # a resident cannot act as staff
        r = await s.post(f"{base}/api/v1/portal/codes", headers=h, json={"resident_id": "x-1"})
        assert r.status == 403
        sessions = await staff(s, "GET", f"{base}/api/v1/portal/sessions?resident_id=r-101")
        assert len(sessions["items"]) == 1
        out = await staff(
            s, "POST", f"{base}/api/v1/portal/sessions/revoke", json={"resident_id": "r-101"}
        )
        assert out["revoked"] == 1
        r = await s.get(f"{base}/api/v1/portal/me", headers=h)
        assert r.status == 401
        assert await box.service("portal").authenticate(tok) is None


async def test_bad_input_names_the_field_and_stores_nothing(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{base}/api/v1/portal/codes", headers=STAFF, json={"resident_id": "r 1"})
        assert r.status == 400 and (await r.json())["field"] == "resident_id"
        start = datetime.now(UTC) + timedelta(days=1)
        bad = {
            "title": "义诊",
            "starts_at": start.isoformat(),
            "ends_at": (start - timedelta(hours=1)).isoformat(),
            "capacity": 5,
        }
        r = await s.post(f"{base}/api/v1/portal/events", headers=STAFF, json=bad)
        assert r.status == 400 and "ends_at" in (await r.json())["error"]
        bad["ends_at"], bad["capacity"] = (start + timedelta(hours=1)).isoformat(), 0
        r = await s.post(f"{base}/api/v1/portal/events", headers=STAFF, json=bad)
        assert r.status == 400 and (await r.json())["field"] == "capacity"
    assert await box.store.run(db.list_events, box.store.sync) == []
    assert await box.store.run(db.list_sessions, box.store.sync) == []


async def test_login_attempts_are_rate_limited(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST + "max_login_failures = 3\n"))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        code = await staff(s, "POST", f"{base}/api/v1/portal/codes", json={"resident_id": "r-1"})
        for _ in range(3):
            r = await s.post(f"{base}/api/v1/portal/login", json={"code": "00000000"})
            assert r.status == 401
        # even the right code is refused while this client is locked out (429, with when)
        r = await s.post(f"{base}/api/v1/portal/login", json={"code": code["code"]})
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0


async def test_event_capacity_holds_under_concurrent_signups(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        start = datetime.now(UTC) + timedelta(days=2)
        ev = await staff(
            s,
            "POST",
            f"{base}/api/v1/portal/events",
            json={
                "id": "ev-clean",
                "title": "小区清洁志愿活动",
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=2)).isoformat(),
                "capacity": 5,
                "volunteer": True,
                "hours": 2,
            },
        )
        assert ev["capacity"] == 5
        residents = [await login(s, base, f"r-{i}") for i in range(20)]

        async def sign(h: dict[str, str]) -> int:
            async with s.post(f"{base}/api/v1/portal/events/ev-clean/signup", headers=h) as r:
                return r.status

        statuses = await asyncio.gather(*(sign(h) for h in residents))
        assert sorted(statuses).count(201) == 5 and statuses.count(409) == 15
        events = await staff(s, "GET", f"{base}/api/v1/portal/events")
        assert events["items"][0]["signed_up"] == 5
        # a cancellation frees exactly one place
        winner = residents[statuses.index(201)]
        r = await s.delete(f"{base}/api/v1/portal/events/ev-clean/signup", headers=winner)
        assert r.status == 200
        again = await asyncio.gather(*(sign(h) for h in residents))
        assert again.count(201) == 1
        # volunteer hours are credited by staff to someone who signed up
        signed = [
            row[0]
            for row in sqlite3.connect(box.config.db_path).execute(
                "SELECT resident_id FROM portal_signups"
            )
        ]
        out = await staff(
            s,
            "POST",
            f"{base}/api/v1/portal/events/ev-clean/attendance",
            json={"resident_id": signed[0]},
        )
        assert out["attended"] == 1 and out["hours_credited"] == 2
        i = int(signed[0].split("-")[1])
        me = await (await s.get(f"{base}/api/v1/portal/me", headers=residents[i])).json()
        assert me["volunteer"] == {"hours": 2.0, "events_attended": 1}


async def test_concurrent_signups_across_processes_respect_capacity(tmp_path) -> None:
    """The capacity check is in the INSERT itself, so even two store connections cannot
    overbook (e.g. the CLI beside the daemon)."""
    from concurrent.futures import ThreadPoolExecutor

    from edge.core.standard import CommunityEvent
    from edge.core.store.core import Store

    path = tmp_path / "q.db"
    first = Store(path)
    start = datetime.now(UTC)
    first.migrate()
    db.put_event(
        first,
        CommunityEvent(
            id="ev", title="t", starts_at=start, ends_at=start + timedelta(hours=1), capacity=3
        ),
        "test",
    )
    stores = [first, *(Store(path) for _ in range(3))]

    def go(i: int) -> bool:
        try:
            db.sign_up(stores[i % len(stores)], "ev", f"r-{i}")
            return True
        except db.PortalError:
            return False

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(go, range(24)))
    assert results.count(True) == 3
    for st in stores:
        st.close()


async def test_moderated_post_is_hidden(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        seller = await login(s, base, "r-1")
        neighbour = await login(s, base, "r-2")
        r = await s.post(
            f"{base}/api/v1/portal/posts",
            headers=seller,
            json={"title": "出售二手婴儿车", "body": "九成新，50元"},
        )
        assert r.status == 201
        good = (await r.json())["id"]
        r = await s.post(
            f"{base}/api/v1/portal/posts",
            headers=seller,
            json={"title": "高价回收煤气罐，上门自提", "body": "加微信"},
        )
        bad = (await r.json())["id"]
        # residents cannot post on the notice board
        r = await s.post(
            f"{base}/api/v1/portal/posts", headers=seller, json={"board": "notice", "title": "x"}
        )
        assert r.status == 403
        # a flag needs a taxonomy code
        r = await s.post(
            f"{base}/api/v1/portal/posts/{bad}/flag", headers=neighbour, json={"category": "nope"}
        )
        assert r.status == 400 and (await r.json())["field"] == "category"
        r = await s.post(
            f"{base}/api/v1/portal/posts/{bad}/flag",
            headers=neighbour,
            json={"category": "safety_hazard", "reason": "煤气罐私下交易危险"},
        )
        assert (await r.json())["status"] == "flagged"
        queue = await staff(s, "GET", f"{base}/api/v1/portal/moderation")
        assert [p["id"] for p in queue["items"]] == [bad]
        assert queue["items"][0]["flag_list"][0]["category"] == "safety_hazard"
        out = await staff(
            s,
            "POST",
            f"{base}/api/v1/portal/posts/{bad}/moderate",
            json={"action": "hide", "category": "safety_hazard", "note": "违规"},
        )
        assert out["status"] == "hidden"
        r = await s.get(f"{base}/api/v1/portal/posts?board=exchange", headers=neighbour)
        ids = [p["id"] for p in (await r.json())["items"]]
        assert ids == [good]
        assert "author" not in (await r.json())["items"][0]
        # staff still see it (and who posted it)
        all_posts = await staff(s, "GET", f"{base}/api/v1/portal/posts?board=exchange")
        assert {p["id"] for p in all_posts["items"]} == {good, bad}
        # the hidden state was journalled for the cloud as a board_post record
        rows = sqlite3.connect(box.config.db_path).execute(
            "SELECT payload FROM outbox WHERE kind = 'board_post' AND record_id = ?", (bad,)
        )
        states = [json.loads(p)["status"] for (p,) in rows]
        assert states == ["visible", "flagged", "hidden"]


async def test_reading_counts_reach_the_outbox_once(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await article(s, base, "a-policy", "垃圾分类新规", ["policy"], must_read=True)
        await article(s, base, "a-health", "冬季养生讲座", ["health"])
        a, b = await login(s, base, "r-1"), await login(s, base, "r-2", building="2")
        for h, cid in ((a, "a-policy"), (a, "a-policy"), (b, "a-policy"), (a, "a-health")):
            r = await s.post(f"{base}/api/v1/portal/reads", headers=h, json={"content_id": cid})
            rid = (await r.json())["read_id"]
            r = await s.post(
                f"{base}/api/v1/portal/reads/{rid}/dwell", headers=h, json={"dwell_ms": 30000}
            )
            assert r.status == 200
        r = await s.post(f"{base}/api/v1/portal/acks", headers=a, json={"content_id": "a-policy"})
        assert (await r.json())["first"] is True
        r = await s.post(f"{base}/api/v1/portal/acks", headers=a, json={"content_id": "a-policy"})
        assert (await r.json())["first"] is False
        assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 2
        assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 0
        # later dwell on an already-counted read adds only the difference
        r = await s.post(f"{base}/api/v1/portal/reads", headers=b, json={"content_id": "a-health"})
        rid = (await r.json())["read_id"]
        await s.post(f"{base}/api/v1/portal/reads/{rid}/dwell", headers=b, json={"dwell_ms": 5000})
        assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 1
        await s.post(f"{base}/api/v1/portal/reads/{rid}/dwell", headers=b, json={"dwell_ms": 8000})
        assert (await staff(s, "POST", f"{base}/api/v1/portal/stats/flush"))["records"] == 1
    rows = sqlite3.connect(box.config.db_path).execute(
        "SELECT payload FROM outbox WHERE kind = 'reading_stats' ORDER BY seq"
    )
    total: dict[str, dict[str, float]] = {}
    for (p,) in rows:
        rec = json.loads(p)
        # counts only: nothing in the record names a resident or a building
        assert set(rec) == {
            "schema",
            "id",
            "content_id",
            "window_start",
            "window_end",
            "reads",
            "new_readers",
            "acks",
            "dwell_s",
        }
        t = total.setdefault(
            rec["content_id"], {"reads": 0, "new_readers": 0, "acks": 0, "dwell_s": 0.0}
        )
        for k in t:
            t[k] += rec[k]
    assert total["a-policy"] == {"reads": 3, "new_readers": 2, "acks": 1, "dwell_s": 90.0}
    assert total["a-health"] == {"reads": 2, "new_readers": 2, "acks": 0, "dwell_s": 38.0}


async def test_feed_pins_unacked_must_read_and_explains(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    base = api_url(box)
    async with aiohttp.ClientSession() as s:
        await article(s, base, "a-old-policy", "燃气安全须知", ["safety"], must_read=True)
        await article(s, base, "a-sport-1", "广场舞比赛报名", ["sport"])
        await article(s, base, "a-sport-2", "乒乓球友谊赛", ["sport"])
        await article(s, base, "a-b3", "3号楼停水通知", ["notice"], buildings=["3"])
        # a screen-only item (no "phone" tag) of the same content model stays off phones
        welcome = ContentItem(id="a-screen", kind="html", title="欢迎", body="x", tags=["welcome"])
        await box.store.run(screens_db.put_content, box.store.sync, welcome)
        h = await login(s, base, "r-1", building="1")
        feed = (await (await s.get(f"{base}/api/v1/portal/feed", headers=h)).json())["items"]
        ids = [f["content_id"] for f in feed]
        assert ids[0] == "a-old-policy" and feed[0]["must_read"]
        assert "a-b3" not in ids  # addressed to building 3 only
        assert "a-screen" not in ids
        await s.post(f"{base}/api/v1/portal/reads", headers=h, json={"content_id": "a-sport-1"})
        feed = (await (await s.get(f"{base}/api/v1/portal/feed", headers=h)).json())["items"]
        by = {f["content_id"]: f for f in feed}
        assert by["a-sport-2"]["reason"] == "因为你读过《广场舞比赛报名》"
        assert by["a-sport-1"]["read"] and feed[-1]["content_id"] == "a-sport-1"
        await s.post(f"{base}/api/v1/portal/acks", headers=h, json={"content_id": "a-old-policy"})
        feed = (await (await s.get(f"{base}/api/v1/portal/feed", headers=h)).json())["items"]
        assert feed[0]["content_id"] == "a-sport-2"
        r = await s.post(f"{base}/api/v1/portal/reads", headers=h, json={"content_id": "a-b3"})
        assert r.status == 404


async def test_portal_disabled_adds_nothing(make_config, run_box) -> None:
    box = await run_box(make_config(extra="[portal]\nenabled = false\n"))
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{api_url(box)}/r/read")
        assert r.status == 404
    assert not isinstance(box.http.router, web.UrlDispatcher) or all(
        "portal" not in res.canonical for res in box.http.router.resources()
    )


async def test_resident_home_page_links_the_portal(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST))
    async with aiohttp.ClientSession() as s:
        r = await s.get(f"{api_url(box)}/r/")
        home = await r.text()
    assert r.status == 200 and 'href="/r/read"' in home and 'href="/r/events"' in home
