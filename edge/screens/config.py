"""The ``[player]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class ScreensConfig(Section):
    """``[player]``: the outdoor-screen player (edge/screens/, docs/screens.md)."""

    cache_dir: str = "content"  # content cache, relative to box.data_dir
    cache_budget_mb: float = Field(2048.0, gt=0)  # LRU eviction beyond this
    protect_days: int = Field(3, ge=0, le=60)  # never evict what is scheduled this far ahead
    plan_hours: int = Field(48, ge=1, le=336)  # how far ahead a player page gets its schedule
    offline_after_s: float = Field(120.0, gt=0)  # a silent player becomes an offline event
    default_title: str = "欢迎光临"  # shown when nothing is scheduled
    default_body: str = ""
    alert_emergency_types: tuple[str, ...] = ()  # alert types that start an emergency broadcast
    alert_emergency_minutes: int = Field(30, ge=1, le=1440)
    display_check_s: float = Field(30.0, ge=1)  # power/brightness schedule and health period
    plays_max_age_days: int = Field(30, ge=1, le=366)  # older proof of play is refused
