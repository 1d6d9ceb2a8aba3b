"""The ``[reports]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class ReportsConfig(Section):
    """``[reports]``: residents' reports and early warning (edge/reports/, docs/reports.md)."""

    taxonomy: str | None = None  # taxonomy TOML; default config/taxonomy.toml of the package
    max_text_chars: int = Field(500, ge=10, le=2000)
    max_photos: int = Field(4, ge=0, le=20)
    max_photo_mb: float = Field(5.0, gt=0, le=50)
    photo_dir: str = "photos"  # relative to box.data_dir
    # Anonymous reports/repairs through the cloud relay (edge/reports/gate.py): a proof of
    # work of this many zero bits (~2^bits hashes in the page) and at most so many an hour.
    proof_bits: int = Field(14, ge=1, le=24)
    relay_anonymous_per_hour: int = Field(5, ge=1)  # per relayed client address
    relay_anonymous_all_per_hour: int = Field(60, ge=1)  # all relayed clients together
    duplicate_window_min: int = Field(1440, ge=1)  # identical reports within this are grouped
    trend_window_min: int = Field(60, ge=1)  # reports per topic/place counted over this window
    trend_min_count: int = Field(5, ge=2)  # fewer distinct reports never make a trend
    trend_factor: float = Field(3.0, ge=1)  # and at least this many times the usual rate
    baseline_days: int = Field(7, ge=1, le=90)  # the usual rate is measured over these days
    sentiment_window_min: int = Field(1440, ge=1)  # a building's recent mood over this window
    sentiment_min_reports: int = Field(3, ge=1)
    sentiment_drop: float = Field(0.5, gt=0, le=2)  # alert when the mean falls this much
    alert_cooldown_min: int = Field(120, ge=0)  # one trend/sentiment alert per key this often
    # Load jieba's dictionary and pysenti (~130 MB RSS, ~2 s) at start instead of on the
    # first report; off by default so the box's memory goes to what it uses.
    warm_at_start: bool = False
