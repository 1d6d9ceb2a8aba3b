"""The /r/ page in Chromium, reached through the real cloud relay, solves the proof of work
for an anonymous report by itself (the resident sees only the usual confirmation)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import db_count
from tests.edge.portal.test_relay import FAST, cloud, relayed  # noqa: F401 (fixture)
from tests.peers.chromium import browser


async def test_anonymous_report_through_the_cloud_passes_the_proof(
    make_config, run_box, cloud, tmp_path: Path  # noqa: F811
) -> None:
    box, _ = await relayed(cloud, make_config(extra=FAST), run_box)
    async with browser() as b:
        ctx = await b.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = await ctx.new_page()
        proofs: list[str] = []
        page.on("request", lambda r: proofs.append(r.headers.get("x-qilu-proof", ""))
                if r.url.endswith("/api/v1/reports") and r.method == "POST" else None)
        await page.goto(f"{cloud.url}/r/at/c1?next=/r/")
        await page.wait_for_function("() => document.body.dataset.ready === '1'", timeout=15000)
        await page.fill("#report-text", "2号楼门口的路灯坏了，晚上很黑")
        await page.click("#report-form button[type=submit]")
        await page.wait_for_selector("#report-result:not([hidden])", timeout=20000)
        assert "已提交" in await page.text_content("#report-result")
        await page.screenshot(path=str(tmp_path / "relay-report-390.png"))
    assert proofs[0] == "" and proofs[-1].count(":") == 1  # refused (428), then with proof
    assert db_count(box, "SELECT count(*) FROM reports WHERE resident_id IS NULL") == 1
