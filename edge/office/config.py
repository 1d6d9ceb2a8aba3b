"""The ``[office]`` config section: the property office's sign-in (docs/console.md)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class OfficeConfig(Section):
    """``[office]``: staff sign-in on the box's LAN console (``/office/``)."""

    enabled: bool = True
    idle_min: float = Field(30.0, gt=0, le=24 * 60)  # a session ends this long unused ...
    absolute_h: float = Field(12.0, gt=0, le=24 * 7)  # ... and this long after sign-in at most
    max_failed_logins: int = Field(5, ge=1, le=1000)  # per user in lockout_min, then it waits
    lockout_min: float = Field(15.0, gt=0, le=24 * 60)
    snapshot_width: int = Field(640, ge=160, le=1920)  # the device page's live camera picture
    snapshot_quality: int = Field(75, ge=20, le=95)
    audit_keep_days: int = Field(365, ge=1, le=3650)  # older audit rows are pruned at start
