"""The ``[player]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.core.config import Section


class LayoutTime(Section):
    """``[[player.layout_times]]``: another layout during a daily window (local time), e.g.
    posters edge to edge at night: ``start = "22:00"``, ``end = "06:00"``, ``layout = "full"``."""

    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # end <= start: past midnight
    layout: Literal["full", "standard", "side"]
    screens: tuple[str, ...] = ()  # () = every screen


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
    # Zones of the player page (edge/screens/layouts.py), per screen with [[screens]] layout:
    # "full" (content only), "standard" (header with name, clock, date; content; a ticker of
    # notices), "side" (standard plus a side zone with a QR code and the weather).
    layout: Literal["full", "standard", "side"] = "standard"
    layout_times: tuple[LayoutTime, ...] = ()  # by the clock: the page switches by itself
    side_qr_url: str = ""  # the side zone's QR code, e.g. "http://192.168.1.10:8080/r/"
    side_qr_caption: str = "扫码反映问题、报修"
    # The weather in the side zone: a JSON file {"text": "多云", "temp": "12℃", ...} kept
    # up to date by a local weather source (relative to box.data_dir); "" = no weather.
    weather_file: str = ""
    emergency_office: str = ""  # who issues local emergencies; "" = "<box name>物业服务中心"
