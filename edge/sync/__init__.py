"""The box's cloud sync client: outbox upload, download feed, provisioning.
Manual: docs/sync.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.access import ACCESS
from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.reports import REPORTS
from edge.screens import SCREENS
from edge.sync.config import SyncConfig
from edge.tickets import TICKETS

if TYPE_CHECKING:
    from edge.sync.service import SyncService

SYNC: ServiceKey[SyncService] = ServiceKey("sync")

FEATURE = Feature(
    name="sync",
    # after the services whose command handlers the cloud feed calls: a command never
    # reaches a service that has not started
    services=(
        ServiceSpec(
            SYNC, "edge.sync.service:SyncService", after=(SCREENS, REPORTS, TICKETS, ACCESS)
        ),
    ),
    config=SyncConfig,
    cli=("edge.sync.cli:provision_cmd", "edge.sync.cli:sync_group"),
    demo=(DemoStep("cloud_sync", "edge.sync.demo:step_cloud_sync", after=("portal",)),),
)
