"""Residents' reports: Chinese text analysis, the standard taxonomy, early warning, the API.
Manual: docs/reports.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.reports.config import ReportsConfig
from edge.sync import SYNC

if TYPE_CHECKING:
    from edge.reports.service import ReportsService

REPORTS: ServiceKey[ReportsService] = ServiceKey("reports")

FEATURE = Feature(
    name="reports",
    services=(ServiceSpec(REPORTS, "edge.reports.service:ReportsService", before=(SYNC,)),),
    config=ReportsConfig,
    cli=("edge.reports.cli:report", "edge.reports.cli:reports"),
    demo=(DemoStep("reports", "edge.reports.demo:step_reports", after=("screens",)),),
)
