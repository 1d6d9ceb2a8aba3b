"""The cloud gathers every box's staff corrections as training rows for central retraining
(cloudsync/textmodels.py): the latest correction of a report wins, scoped by area."""

from __future__ import annotations

from cloudsync import textmodels
from tests.cloudsync.helpers import Cloud
from tests.cloudsync.test_ops_api import rec, two_districts, upload


def corr(seq: int, ts: str, report_id: str, text: str, urgency: str) -> object:
    return rec(seq, "report_correction", 2, ts, report_id=report_id, text=text,
               category="safety_hazard", polarity="negative", urgency=urgency,
               was_category="other", was_polarity="neutral", was_urgency="low", actor="staff")


async def test_latest_correction_per_report_and_box_scoped_by_area(cloud: Cloud) -> None:
    a, b = await two_districts(cloud)
    await upload(a, [
        corr(1, "2026-01-01T10:00:00+00:00", "rp-1", "井盖翻了", "normal"),
        corr(2, "2026-01-01T11:00:00+00:00", "rp-1", "井盖翻了", "high"),  # the later one wins
        corr(3, "2026-01-01T12:00:00+00:00", "rp-2", "楼道冒烟了", "immediate"),
        rec(4, "report", 2, "2026-01-01T12:00:00+00:00", category="other", text="不是纠正"),
    ])  # fmt: skip
    # The same report id on another box is another report.
    await upload(b, [corr(1, "2026-01-01T09:00:00+00:00", "rp-1", "电梯困人", "immediate")])
    rows = await textmodels.corrections(cloud.storage)
    got = sorted((r["text"], r["urgency"]) for r in rows)
    assert got == [("井盖翻了", "high"), ("楼道冒烟了", "immediate"), ("电梯困人", "immediate")]
    lixia = await textmodels.corrections(cloud.storage, "/jinan/lixia/")
    assert sorted(r["text"] for r in lixia) == ["井盖翻了", "楼道冒烟了"]
    args = textmodels.ship_args("a" * 64, 123, "text model v20260101000000")
    assert args == {"sha256": "a" * 64, "size_bytes": 123, "url": f"/api/v1/blobs/{'a' * 64}",
                    "version": "v20260101000000"}
