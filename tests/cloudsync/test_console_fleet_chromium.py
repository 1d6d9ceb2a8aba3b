"""The city console's roll-out, statistics and library pages in headless Chromium at 1366x768,
on both backends: a real box daemon (provisioned with the CLI, its update hook configured) is
the roll-out's first wave; the second wave waits until that box reports the new version;
district admins see only their own roll-outs, statistics and library.

Screenshots land in the test's tmp dir (console-rollout*.png, console-stats.png,
console-library.png).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloudsync.console.auth import ConsoleSettings
from common import protocol as p
from edge.daemon import Daemon
from edge.sync.client import CloudClient
from edge.sync.identity import Identity, identity_path, load
from tests.cloudsync.console_helpers import user_with_password
from tests.cloudsync.helpers import FAST_SYNC, cli_provision, start_cloud, wait_for
from tests.cloudsync.test_console_chromium import sign_in_page
from tests.cloudsync.test_ops_api import rec, upload
from tests.edge.screens.test_service import png
from tests.peers.chromium import browser


async def beat(ident: Identity, version: str) -> None:
    client = CloudClient(ident)
    try:
        await client.heartbeat(p.Heartbeat(software_version=version, devices=[]))
    finally:
        await client.close()


def recent(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")


async def test_rollout_stats_and_library_pages(db_url: str, make_config, tmp_path: Path) -> None:
    cloud = await start_cloud(db_url, tmp_path, console=ConsoleSettings(rollout_poll_s=0.2))
    daemon = None
    try:
        await cloud.community("jinan", "lixia", "s1", "c1")
        await cloud.community("jinan", "lixia", "s1", "c3")
        await cloud.community("jinan", "shizhong", "s2", "c2")
        # The real box in c1 with an update hook that records what it was asked to install.
        hook_log = tmp_path / "hook.log"
        hook = tmp_path / "update-hook"
        hook.write_text(
            f'#!/bin/sh\necho "$1 $QILU_UPDATE_VERSION" >> {hook_log}\necho installed\n'
        )
        hook.chmod(0o755)
        config = make_config(extra=FAST_SYNC + f'update_command = "{hook}"\n')
        await cli_provision(config.source, cloud.url, await cloud.claim("c1"))
        daemon = Daemon(config)
        await daemon.start()
        real = load(identity_path(config))
        assert real is not None
        # A second lixia box and a shizhong box speak the real API from here.
        second = await cloud.new_box("c3", district="lixia", street="s1")
        other = await cloud.new_box("c2", district="shizhong", street="s2")
        await beat(second, "1.0.0")
        await beat(other, "1.0.0")
        plays = [rec(i, "play_record", 3, recent(i), content_id=f"c-poster{i % 3}",
                     duration_ms=15000) for i in range(1, 40)]  # fmt: skip
        reading = [rec(50 + i, "reading_stats", 3, recent(i), content_id=f"n-notice{i % 2}",
                       reads=3 * i, new_readers=i, acks=i // 2) for i in range(1, 6)]  # fmt: skip
        await upload(second, plays + reading)
        await upload(other, [rec(1, "play_record", 3, recent(1), content_id="c-shizhong-only",
                                 duration_ms=9000)])  # fmt: skip
        await user_with_password(cloud, "root")
        await user_with_password(cloud, "lixia-admin", "admin", "lixia")
        await user_with_password(cloud, "sz-admin", "admin", "shizhong")

        async def heard_from_real_box() -> bool:
            b = await cloud.storage.box_get(real.box_id)
            return bool(b and b["last_seen_at"])

        await wait_for(heard_from_real_box, 15)
        await beat(second, "1.0.0")  # both heard; the daemon beats every 0.5 s: the canary

        async with browser() as b:
            page = await sign_in_page(b, cloud.url, "lixia-admin")
            await page.click("nav a[href='/console/fleet']")
            await page.wait_for_selector("#rollouts p.muted")  # none yet
            await page.fill("#rollout input[name=version]", "9.9.9")
            await page.fill("#rollout input[name=areas]", "lixia")
            await page.fill("#rollout input[name=waves]", "1, 100%")
            await page.fill("#rollout input[name=timeout]", "30")
            await page.click("#rollout button[type=submit]")
            await page.wait_for_selector("#ro-confirm:not([hidden])")
            assert "9.9.9" in await page.text_content("#ro-summary")
            await page.click("#ro-go")
            row = page.locator("#rollouts tr[data-rollout]").first
            await row.wait_for(timeout=10000)
            rid = await row.get_attribute("data-rollout")
            # Wave 1 reached the real box: its feed ran the update hook with the version.

            async def hook_ran() -> str:
                return hook_log.read_text() if hook_log.exists() else ""

            assert (await wait_for(hook_ran, 15)).split() == ["9.9.9", "9.9.9"]
            # The box still runs its version: wave 2 does not go out, however long we look.
            for _ in range(6):
                await page.wait_for_timeout(500)
                assert (await row.locator("td.num").text_content()).strip() == "1 / 2"
            client = CloudClient(second)
            try:
                assert [
                    i for i in (await client.feed(0, 0))["items"] if i["action"] == "update"
                ] == []
            finally:
                await client.close()
            await page.screenshot(path=str(tmp_path / "console-rollout-wave1.png"))

            # The box restarts on the new version (its heartbeat, with its own identity).
            await daemon.stop()
            daemon = None
            await beat(real, "9.9.9")
            await page.wait_for_selector(
                f"tr[data-rollout='{rid}'] td.num:text('2 / 2')", timeout=10000
            )
            # The box list (open since it was started): c3's box now waits for its report.
            await page.wait_for_selector("#rollouts tr.detail .badge.warning", timeout=10000)
            assert await page.locator("#rollouts tr.detail .badge.online").count() == 1
            await page.screenshot(path=str(tmp_path / "console-rollout-wave2.png"))
            await beat(second, "9.9.9")
            await page.wait_for_selector(
                f"tr[data-rollout='{rid}'][data-state=done]", timeout=10000
            )
            await page.screenshot(path=str(tmp_path / "console-rollout-done.png"))
            await page.goto(f"{cloud.url}/console/fleet?lang=en")
            await page.wait_for_selector(f"tr[data-rollout='{rid}'][data-state=done]")
            assert "Done" in await page.text_content(f"tr[data-rollout='{rid}']")
            await page.screenshot(path=str(tmp_path / "console-rollout-en.png"))

            # Statistics: per item and per community, lixia only.
            await page.goto(f"{cloud.url}/console/stats?lang=zh")
            await page.wait_for_selector("#plays-items ul.bars li")
            names = await page.locator("#plays-items .name").all_text_contents()
            assert sorted(names) == ["c-poster0", "c-poster1", "c-poster2"]
            assert await page.locator("#reads-items ul.bars li").count() == 2
            assert await page.locator("#areas tbody tr").count() == 1
            assert "C3" in await page.text_content("#areas tbody tr")
            # the window's start is shown: 00:00 UTC of the day 30 days ago
            since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
            assert f"自 {since} 0 点" in await page.text_content("#st-since")
            await page.screenshot(path=str(tmp_path / "console-stats.png"), full_page=True)

            # Library: an image and a notice, then both reused in one playlist for c1.
            await page.click("nav a[href='/console/library']")
            await page.wait_for_selector("#library p.muted, #library table")
            image = tmp_path / "poster.png"
            image.write_bytes(png((200, 30, 30)))
            await page.fill("#upload input[name=title]", "消防宣传海报")
            await page.set_input_files("#upload input[name=file]", str(image))
            await page.click("#upload button[type=submit]")
            await page.wait_for_selector("#upload-result[data-sha]")
            await page.fill("#upload input[name=title]", "停水通知")
            await page.fill("#upload textarea[name=notice]", "12月2日9:00-12:00 三号楼停水检修")
            await page.click("#upload button[type=submit]")
            await page.wait_for_selector("#library tbody tr:nth-child(2)")
            await page.wait_for_selector("#library img.thumb")
            for box in await page.locator("#library tbody input[type=checkbox]").all():
                await box.check()
            await page.fill("#reuse input[name=title]", "十二月宣传")
            await page.fill("#reuse input[name=areas]", "c1")
            await page.click("#reuse button[type=submit]")
            await page.wait_for_selector("#reuse-result[data-playlist]", timeout=10000)
            await page.screenshot(path=str(tmp_path / "console-library.png"), full_page=True)
            published = await cloud.storage.feed_published(real.box_id)
            playlist = [a for act, _, a in published if act == "playlist"][-1]
            items = {a["id"]: a for act, _, a in published if act == "content"}
            kinds = sorted(items[i["content_id"]]["kind"] for i in playlist["items"])
            assert kinds == ["html", "image"]
            notice = next(a for a in items.values() if a["kind"] == "html")
            assert notice["body"] == "12月2日9:00-12:00 三号楼停水检修"
            assert page.errors == []  # type: ignore[attr-defined]

            # Another district: no roll-out, no lixia statistics, not lixia's library.
            sz = await sign_in_page(b, cloud.url, "sz-admin")
            await sz.goto(f"{cloud.url}/console/fleet")
            await sz.wait_for_selector("#rollouts p.muted")
            assert rid not in await sz.content()
            await sz.goto(f"{cloud.url}/console/stats")
            await sz.wait_for_selector("#plays-items ul.bars li")
            assert await sz.locator("#plays-items .name").all_text_contents() == ["c-shizhong-only"]
            assert await sz.locator("#reads-items p.muted").count() == 1
            await sz.goto(f"{cloud.url}/console/library")
            await sz.wait_for_selector("#library p.muted")
            assert "消防宣传海报" not in await sz.content()
            await sz.screenshot(path=str(tmp_path / "console-library-other-district.png"))
            assert sz.errors == []  # type: ignore[attr-defined]
        audit = json.dumps(await cloud.storage.audit_list("/", None, 0, 200), ensure_ascii=False)
        assert "rollout wave 2" in audit and "POST /api/v1/ops/rollouts" in audit
    finally:
        if daemon is not None:
            await daemon.stop()
        await cloud.stop()
