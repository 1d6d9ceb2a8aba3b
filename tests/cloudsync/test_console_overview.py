"""The console overview's numbers, on both backends: the counts a big network sees per area
(no community listed) equal what the full listing adds up to, and an area's own listing is the
full listing's rows for it. Real signed uploads from the box's own sync client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cloudsync.console.api as console_api
from cloudsync.console.auth import ConsoleSettings
from tests.cloudsync.console_helpers import user_with_password
from tests.cloudsync.helpers import Cloud, start_cloud
from tests.cloudsync.test_console_chromium import sign_in_page
from tests.cloudsync.test_ops_api import rec, upload
from tests.peers.chromium import browser


def crit(seq: int) -> Any:
    return rec(seq, "alert", 0, "2026-01-01T10:00:00", level="critical", type="urgent_report",
               message="燃气", evidence=[])  # fmt: skip


async def overview(cloud: Cloud, query: str = "") -> dict[str, Any]:
    status, out = await cloud.call("GET", "/api/v1/ops/overview" + query)
    assert status == 200, out
    return out


async def kept_counts(cloud: Cloud) -> int:
    """The open critical alerts the counts hold, checked against a straight count over the
    alert records and their acknowledgements (per box and month)."""
    level = cloud.storage.jtext("r.payload", "level")
    async with cloud.storage.tx() as c:
        kept = await c.fetch("SELECT box_id, month, n FROM alert_counts ORDER BY 1, 2")
        raw = await c.fetch(
            "SELECT r.box_id, substr(r.ts, 1, 7) AS month, count(*) AS n FROM records r"
            " LEFT JOIN alert_acks k ON k.box_id = r.box_id AND k.seq = r.seq"
            f" WHERE r.kind = 'alert' AND {level} = 'critical'"
            " AND (k.state IS NULL OR k.state <> 'closed') GROUP BY 1, 2 ORDER BY 1, 2"
        )
    assert [dict(r) for r in kept] == [dict(r) for r in raw]
    return sum(r["n"] for r in raw)


async def test_overview_counts_match_the_full_listing(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # lixia: s1 (c1, c2 boxes; c3 none), s2 (c4 box, revoked); shizhong: s3 (c5 box, silent).
    a = await cloud.new_box("c1", district="lixia", street="s1")
    b = await cloud.new_box("c2", district="lixia", street="s1")
    await cloud.community(community="c3", district="lixia", street="s1")
    d = await cloud.new_box("c4", district="lixia", street="s2")
    await cloud.new_box("c5", district="shizhong", street="s3")
    await upload(a, [crit(1), crit(2), rec(3, "alert", 0, "2026-01-01T10:00:00",
                                         level="warning", type="x", message="m", evidence=[])])
    await upload(b, [crit(1)])
    await upload(d, [crit(1)])
    status, _ = await cloud.call("POST", f"/api/v1/ops/boxes/{d.box_id}/revoke")
    assert status == 200
    status, _ = await cloud.call("POST", f"/api/v1/ops/alerts/{a.box_id}/2/ack",
                                 json={"state": "closed"})  # fmt: skip
    assert status == 200

    full = await overview(cloud)
    assert full["communities_listed"] == "all"
    comm = {x["id"]: x for x in full["areas"] if x["level"] == "community"}
    assert set(comm) == {"c1", "c2", "c3", "c4", "c5"}
    assert {k: v["open_critical"] for k, v in comm.items()} == {
        "c1": 1, "c2": 1, "c3": 0, "c4": 1, "c5": 0}  # fmt: skip
    assert {k: v["health"] for k, v in comm.items()} == {
        "c1": "online", "c2": "online", "c3": "none", "c4": "offline", "c5": "offline"}  # fmt: skip
    # The KPIs the page shows, as it used to add them up from every community's boxes.
    boxes = [bx for c in comm.values() for bx in c["boxes"]]
    online = sum(bx["state"] == "online" for bx in boxes)
    assert full["totals"] == {
        "communities": 5, "boxes": 4, "boxes_online": online, "boxes_offline": 4 - online,
        "open_critical": sum(c["open_critical"] for c in comm.values())}  # fmt: skip
    assert online == 2 and full["totals"]["open_critical"] == 3
    assert await kept_counts(cloud) == 3

    # Reopened, it counts again; closed, it leaves; a warning closed changes nothing; a box
    # with none left keeps no row (postgres 0010, sqlite 0008: the counts the overview reads).
    for seq, state, want in ((2, "assigned", 4), (3, "closed", 4), (1, "closed", 3),
                             (1, "acknowledged", 4), (2, "closed", 3)):  # fmt: skip
        status, _ = await cloud.call("POST", f"/api/v1/ops/alerts/{a.box_id}/{seq}/ack",
                                     json={"state": state, "assignee": "王师傅"})  # fmt: skip
        assert status == 200
        assert await kept_counts(cloud) == want, (seq, state)
    status, _ = await cloud.call("POST", f"/api/v1/ops/alerts/{b.box_id}/1/ack",
                                 json={"state": "closed"})  # fmt: skip
    assert status == 200 and await kept_counts(cloud) == 2
    async with cloud.storage.tx() as c:
        assert not await c.fetch("SELECT * FROM alert_counts WHERE box_id = $1", b.box_id)
    status, _ = await cloud.call("POST", f"/api/v1/ops/alerts/{b.box_id}/1/ack",
                                 json={"state": "acknowledged"})  # fmt: skip
    assert status == 200 and await kept_counts(cloud) == 3
    assert (await overview(cloud))["totals"] == full["totals"]

    # A network too big to list: the same totals, per-area counts, no community rows.
    monkeypatch.setattr(console_api, "LIST_ALL_UP_TO", 2)
    big = await overview(cloud)
    assert big["communities_listed"] == "none" and big["totals"] == full["totals"]
    assert not [x for x in big["areas"] if x["level"] == "community"]
    got = {x["id"]: {k: x[k] for k in ("communities", "boxes", "boxes_online", "open_critical")}
           for x in big["areas"]}  # fmt: skip
    assert got["s1"] == {"communities": 3, "boxes": 2, "boxes_online": 2, "open_critical": 2}
    assert got["s2"] == {"communities": 1, "boxes": 1, "boxes_online": 0, "open_critical": 1}
    assert got["lixia"] == {"communities": 4, "boxes": 3, "boxes_online": 2, "open_critical": 3}
    assert got["shizhong"] == {"communities": 1, "boxes": 1, "boxes_online": 0,
                               "open_critical": 0}  # fmt: skip
    # One street's communities, exactly as the full listing has them (box ages aside).
    s1 = await overview(cloud, "?area=s1")
    assert s1["communities_listed"] == "area"
    listed = {x["id"]: x for x in s1["areas"] if x["level"] == "community"}
    assert set(listed) == {"c1", "c2", "c3"}
    for cid, x in listed.items():
        for key in ("open_critical", "health", "name", "path"):
            assert x[key] == comm[cid][key], (cid, key)
        assert [bx["id"] for bx in x["boxes"]] == [bx["id"] for bx in comm[cid]["boxes"]]
    status, out = await cloud.call("GET", "/api/v1/ops/overview?area=nowhere")
    assert status == 404 and "nowhere" in out["error"]


async def test_overview_page_of_a_big_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page (Chromium, 1366x768) when not every community is listed: KPIs from the totals,
    an area row's counts, and its link opening that area's communities."""
    monkeypatch.setattr(console_api, "LIST_ALL_UP_TO", 1)
    cloud = await start_cloud(str(tmp_path / "cloud.db"), tmp_path, console=ConsoleSettings())
    try:
        a = await cloud.new_box("c1", district="lixia", street="s1")
        await cloud.community(community="c2", district="lixia", street="s1")
        await cloud.new_box("c3", district="shizhong", street="s2")
        await upload(a, [crit(1)])
        await user_with_password(cloud, "root")
        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "root")
            await page.wait_for_selector("tr[data-area=s1]")
            kpis = [int(x) for x in await page.locator("#kpis .value").all_text_contents()]
            assert kpis == [3, 1, 1, 1]  # communities, boxes online, offline, open critical
            assert await page.locator("tr[data-area^=c]").count() == 0  # no community listed
            row = page.locator("tr[data-area=s1]")
            assert "2 " in await row.locator("td").nth(1).text_content()  # two communities
            assert await row.locator("td.num.bad").text_content() == "1"
            await page.screenshot(path=str(tmp_path / "console-overview-big.png"))
            await row.locator("a").click()
            await page.wait_for_selector("tr[data-area=c1][data-health=online]")
            shown = await page.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.area)")
            assert shown == ["jinan", "lixia", "s1", "c1", "c2"]  # s1's branch only
            assert not page.errors  # type: ignore[attr-defined]
    finally:
        await cloud.stop()


async def test_acknowledging_or_closing_keeps_who_the_alert_was_assigned_to(cloud: Cloud) -> None:
    """Probe 12: an ack or a close names no assignee (the console's 确认 / 关闭 buttons send
    none), and it wiped the assignment a colleague had made: the alert showed nobody on it,
    and the assigner's note was gone. Reassigning still names the new person."""
    a = await cloud.new_box("c1", district="lixia", street="s1")
    await upload(a, [crit(1)])
    zhang = await cloud.ops_user("zhang", "admin", "lixia")
    li = await cloud.ops_user("li", "admin", "lixia")

    async def ack(token: str, **body: Any) -> dict[str, Any]:
        status, out = await cloud.call("POST", f"/api/v1/ops/alerts/{a.box_id}/1/ack", token,
                                       json=body)  # fmt: skip
        assert status == 200, out
        _, listed = await cloud.call("GET", "/api/v1/ops/alerts", token)
        assert listed["items"][0]["ack"] == out
        return out

    got = await ack(zhang, state="assigned", assignee="王师傅", note="先关燃气总阀")
    assert (got["state"], got["assignee"], got["note"]) == ("assigned", "王师傅", "先关燃气总阀")
    got = await ack(li, state="acknowledged", assignee=None, note="")  # li saw it too
    assert (got["state"], got["assignee"], got["note"], got["by_user"]) == (
        "assigned", "王师傅", "先关燃气总阀", "li")  # fmt: skip
    got = await ack(li, state="closed", note="已处理")
    assert (got["state"], got["assignee"], got["note"]) == ("closed", "王师傅", "已处理")
    got = await ack(zhang, state="assigned", assignee="赵师傅")
    assert (got["state"], got["assignee"], got["note"]) == ("assigned", "赵师傅", "已处理")
    assert await kept_counts(cloud) == 1
