"""Installer capability: install/update, LAN discovery, commissioning (doctor), first-boot
web page. Manual: docs/installer.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.installer.config import InstallerConfig

if TYPE_CHECKING:
    from edge.installer.discovery import Advertiser
    from edge.installer.service import InstallerWeb

INSTALLER: ServiceKey[InstallerWeb] = ServiceKey("installer")
ADVERTISE: ServiceKey[Advertiser] = ServiceKey("advertise")

FEATURE = Feature(
    name="installer",
    services=(
        ServiceSpec(INSTALLER, "edge.installer.service:InstallerWeb"),
        ServiceSpec(ADVERTISE, "edge.installer.discovery:Advertiser"),
    ),
    config=InstallerConfig,
    cli=(
        "edge.installer.cli:discover",
        "edge.installer.cli:modbus",
        "edge.installer.cli:doctor",
        "edge.installer.cli:update",
    ),
    # the commissioning report reads what the reports step left behind
    demo=(DemoStep("installer", "edge.installer.demo:step_installer", after=("face_doors",)),),
)
