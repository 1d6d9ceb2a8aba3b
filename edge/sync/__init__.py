"""The box's cloud sync client: outbox upload, download feed, provisioning.
Manual: docs/sync.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.sync.config import SyncConfig

if TYPE_CHECKING:
    from edge.sync.service import SyncService

SYNC: ServiceKey[SyncService] = ServiceKey("sync")

FEATURE = Feature(
    name="sync",
    # The services whose command handlers the cloud feed calls start before it (their
    # ServiceSpec says before=(SYNC,)): a command never reaches a service not yet started.
    services=(ServiceSpec(SYNC, "edge.sync.service:SyncService"),),
    config=SyncConfig,
    cli=("edge.sync.cli:provision_cmd", "edge.sync.cli:sync_group"),
    demo=(DemoStep("cloud_sync", "edge.sync.demo:step_cloud_sync", after=("portal",)),),
)
