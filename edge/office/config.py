"""The ``[office]`` config section: the property office's sign-in (docs/console.md)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class OfficeConfig(Section):
    """``[office]``: staff sign-in on the box's LAN console (``/office/``)."""

    enabled: bool = True
    idle_min: float = Field(30.0, gt=0, le=24 * 60)  # a session ends this long unused ...
    absolute_h: float = Field(12.0, gt=0, le=24 * 7)  # ... and this long after sign-in at most
    # per user and address (or remembered device) in lockout_min, then that address waits;
    # per user from everywhere, further tries slow down (common/staffauth.py slow_down_s)
    max_failed_logins: int = Field(5, ge=1, le=1000)
    lockout_min: float = Field(15.0, gt=0, le=24 * 60)
    slow_base_s: float = Field(1.0, gt=0, le=3600)  # first wait, doubling per failure ...
    slow_max_s: float = Field(60.0, gt=0, le=3600)  # ... up to this
    device_days: float = Field(90.0, gt=0, le=3650)  # a signed-in browser is remembered
    snapshot_width: int = Field(640, ge=160, le=1920)  # the device page's live camera picture
    snapshot_quality: int = Field(75, ge=20, le=95)
    audit_keep_days: int = Field(365, ge=1, le=3650)  # older audit rows are pruned at start
