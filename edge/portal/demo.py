"""Demo step: a resident logs in with a one-time code, reads, acknowledges, signs up."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import click

from edge.core.demo import Demo, say
from edge.portal import PORTAL_RELAY


async def _call(s: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with s.request(method, url, **kw) as r:
        body = await r.json()
        if r.status >= 300:
            raise click.ClickException(f"{method} {url} -> {r.status} {body}")
        return body


def _show(feed: list[dict]) -> None:
    for f in feed[:5]:
        mark = "已读" if f["read"] else "  "
        click.echo(f"    {mark} {f['title']:<16} — {f['reason']}")


async def step_portal(d: Demo) -> None:
    api = d.api + "/api/v1/portal"
    async with aiohttp.ClientSession(headers=d.headers) as s:
        say(
            "Resident portal: publicity reading with a personal feed",
            "Staff publish articles in the screens' content model (tag 'phone' = to phones)",
        )
        for aid, title, tags, must in (
            ("demo-flood", "防汛安全须知", ["safety"], True),
            ("demo-opera", "社区戏曲晚会周六开演", ["culture"], False),
            ("demo-dance", "广场舞比赛报名", ["culture"], False),
            ("demo-tax", "个税专项附加扣除指南", ["finance"], False),
        ):
            body = {"id": aid, "title": title, "body": f"{title}。详情请见社区公告。",
                    "tags": tags, "must_read": must}  # fmt: skip
            await _call(s, "POST", f"{api}/articles", json=body)
        code = await _call(
            s, "POST", f"{api}/codes",
            json={"resident_id": "demo-r101", "name": "王阿姨", "building": "1"},
        )  # fmt: skip
        click.echo(f"  one-time login code for demo-r101: {code['code']} ({code['link']})")
    async with aiohttp.ClientSession() as s:
        login = await _call(s, "POST", f"{api}/login", json={"code": code["code"]})
    h = {"Authorization": f"Bearer {login['token']}"}
    async with aiohttp.ClientSession(headers=h) as s:
        feed = (await _call(s, "GET", f"{api}/feed"))["items"]
        click.echo("  feed before reading (must-read pinned on top):")
        _show(feed)
        for cid in ("demo-flood", "demo-dance"):
            await _call(s, "POST", f"{api}/reads", json={"content_id": cid})
        await _call(s, "POST", f"{api}/acks", json={"content_id": "demo-flood"})
        feed = (await _call(s, "GET", f"{api}/feed"))["items"]
        click.echo("  after reading the notice (acknowledged) and the dance article:")
        _show(feed)
    say("Community services: an event with 2 places")
    start = datetime.now(UTC) + timedelta(days=1)
    async with aiohttp.ClientSession(headers=d.headers) as s:
        await _call(s, "POST", f"{api}/events", json={
            "id": "demo-clean", "title": "小区清洁志愿活动", "place": "东门广场",
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(),
            "capacity": 2, "volunteer": True, "hours": 2,
        })  # fmt: skip
    async with aiohttp.ClientSession(headers=h) as s:
        ev = await _call(s, "POST", f"{api}/events/demo-clean/signup")
        click.echo(f"  demo-r101 signed up: {ev['signed_up']}/{ev['capacity']} places taken")
    async with aiohttp.ClientSession(headers=d.headers) as s:
        n = (await _call(s, "POST", f"{api}/stats/flush"))["records"]
        click.echo(
            f"  reading counts flushed to the outbox as {n} reading_stats record(s)"
            " (counts only; ops see them at GET /api/v1/ops/stats/reading)"
        )
        # The login offered at the end can do everything the demo shows: 王阿姨 is in the
        # door registry with a right to her building's door (remote open, visitor passes);
        # building 2's face door is not hers (rights are explicit: docs/access.md).
        await _call(s, "POST", f"{d.api}/api/v1/residents", json={
            "id": "demo-r101", "name": "王阿姨", "building": "1", "unit": "2", "room": "301"})
        await _call(s, "PUT", f"{d.api}/api/v1/residents/demo-r101/access",
                    json={"doors": ["door-1"]})  # fmt: skip
        fresh = await _call(
            s, "POST", f"{api}/codes",
            json={"resident_id": "demo-r101", "name": "王阿姨", "building": "1", "unit": "2"},
        )
        d.links["phone"] = f"{d.api}/r/login?code={fresh['code']}"
        for rid, name, room in (("demo-r111", "刘大爷", "101"), ("demo-r112", "陈女士", "102")):
            body = {"id": rid, "name": name, "building": "1", "unit": "1单元", "room": room}
            await _call(s, "POST", f"{d.api}/api/v1/residents", json=body)
    click.echo(
        f"  try it on a phone-sized browser window: {d.api}/r/login?code={fresh['code']}\n"
        f"  staff at the box: qilu-edge portal code -c {d.work_dir / 'edge.toml'} <resident-id>"
    )
    # Printed login cards for building 1's registered residents (the same CLI staff use).
    cfg, out = d.work_dir / "edge.toml", d.work_dir / "login-cards.html"
    args = ["portal", "codes-sheet", "-c", str(cfg), "--building", "1", "--out", str(out)]
    await asyncio.to_thread(d.cli, args)
    click.echo(f"  (qilu-edge portal codes-sheet -c {cfg} --building 1 --out {out}: print it)")


async def step_portal_away(d: Demo) -> None:
    """After the cloud step: the same pages, reached through the cloud's relay."""
    relay = d.box.get(PORTAL_RELAY)
    for _ in range(150):  # the relay dials the cloud once the box is provisioned
        if relay.connected:
            break
        await asyncio.sleep(0.1)
    away = relay.away_url()
    if not relay.connected or away is None:
        raise click.ClickException(f"the portal relay did not connect: {relay.last_error}")
    say(
        "Resident portal away from home: the box's pages through the cloud relay",
        f"a resident opens {away} (sets the community, then the same /r/ pages)",
    )
    async with aiohttp.ClientSession(headers=d.headers) as s:
        code = await _call(s, "POST", f"{d.api}/api/v1/portal/codes",
                           json={"resident_id": "demo-r101"})  # fmt: skip
    jar = aiohttp.CookieJar(unsafe=True)  # the demo cloud is on a bare IP
    async with aiohttp.ClientSession(cookie_jar=jar) as phone:
        async with phone.get(away) as r:
            await r.read()
        async with phone.post(away.split("/r/at/")[0] + "/r/login",
                              data={"code": code["code"]}) as r:  # fmt: skip
            text = await r.text()
    titles = re.findall(r"<a href='/r/read/[^']+'>([^<]+)</a>", text)
    click.echo(f"  logged in through the cloud ({r.status}); feed: {', '.join(titles[:3])}")
    click.echo(f"  try it: {away}?next=/r/login  (a fresh code: qilu-edge portal code ...)")
