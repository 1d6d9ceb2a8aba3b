"""The ``[portal]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.core.config import Section


class PortalConfig(Section):
    """``[portal]``: the resident portal (edge/portal/, docs/portal.md)."""

    enabled: bool = True
    public_url: str = ""  # base of login links, e.g. "http://192.168.1.10:8080"; "" = request
    code_digits: int = Field(8, ge=6, le=12)  # one-time login codes
    code_ttl_h: float = Field(72.0, gt=0, le=24 * 60)
    session_days: float = Field(90.0, gt=0, le=3650)
    max_login_failures: int = Field(10, ge=1)  # per client address per 10 minutes
    # All clients of one scope together ("lan", "relay") per 10 minutes; then logins in that
    # scope close for login_backoff_s, doubling while guessing goes on (edge/portal/guard.py).
    login_scope_failures: int = Field(30, ge=1)
    login_backoff_s: float = Field(60.0, gt=0, le=3600)
    relay_code_digits: int = Field(12, ge=10, le=16)  # codes that log in through the cloud
    phone_tags: tuple[str, ...] = ("phone",)  # content with one of these goes to phones; () = all
    must_read_tags: tuple[str, ...] = ("must_read", "policy", "emergency")
    must_read_slots: int = Field(2, ge=0, le=10)  # top feed places kept for unacked must-reads
    feed_size: int = Field(20, ge=1, le=200)
    freshness_half_life_h: float = Field(72.0, gt=0)
    stats_interval_s: float = Field(300.0, ge=1)  # how often reading counts go to the outbox
    image_widths: tuple[int, ...] = (320, 480, 720, 1080)  # phone image sizes served
    relay: bool = True  # keep a relay open to the cloud so /r/ works away from home
    # Login code on the screen of a door (``[[screens]] door``) after a face grant:
    # "no_session" = only to residents without a live portal session, "always", "off".
    door_codes: Literal["no_session", "always", "off"] = "no_session"
    door_code_ttl_min: float = Field(10.0, gt=0, le=24 * 60)
    door_code_show_s: float = Field(30.0, ge=1, le=600)  # how long the screen shows it
