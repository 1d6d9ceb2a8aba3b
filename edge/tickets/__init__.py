"""Repair tickets: the state machine, assignment, due times, overdue alerts, history.
Manual: docs/reports.md (tickets section)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import Feature, ServiceKey, ServiceSpec
from edge.reports import REPORTS
from edge.sync import SYNC
from edge.tickets.config import TicketsConfig

if TYPE_CHECKING:
    from edge.tickets.service import TicketsService

TICKETS: ServiceKey[TicketsService] = ServiceKey("tickets")

FEATURE = Feature(
    name="tickets",
    # after reports: a ticket without an urgency is analysed by the reports service
    services=(
        ServiceSpec(
            TICKETS, "edge.tickets.service:TicketsService", after=(REPORTS,), before=(SYNC,)
        ),
    ),
    config=TicketsConfig,
    cli=("edge.tickets.cli:ticket",),
)
