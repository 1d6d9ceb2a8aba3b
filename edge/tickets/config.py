"""The ``[tickets]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class TicketsConfig(Section):
    """``[tickets]``: repair tickets (edge/tickets/): due times by urgency, overdue checks."""

    due_hours_immediate: float = Field(1.0, gt=0)
    due_hours_high: float = Field(4.0, gt=0)
    due_hours_normal: float = Field(48.0, gt=0)
    due_hours_low: float = Field(168.0, gt=0)
    overdue_check_s: float = Field(30.0, ge=0.05)
