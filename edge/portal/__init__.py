"""Resident portal at /r/: the H5 site (reports, one-tap repair), reading with personal
recommendations, community services, logins, and the relay that reaches it away from home.
Manual: docs/portal.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.access import ACCESS
from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.portal.config import PortalConfig
from edge.reports import REPORTS
from edge.screens import SCREENS
from edge.sync import SYNC

if TYPE_CHECKING:
    from edge.portal.relay import PortalRelay
    from edge.portal.service import PortalService
    from edge.portal.site import ResidentSite

RESIDENT_SITE: ServiceKey[ResidentSite] = ServiceKey("resident_site")
PORTAL: ServiceKey[PortalService] = ServiceKey("portal")
PORTAL_RELAY: ServiceKey[PortalRelay] = ServiceKey("portal_relay")

FEATURE = Feature(
    name="portal",
    services=(
        ServiceSpec(RESIDENT_SITE, "edge.portal.site:ResidentSite"),
        # door login codes hook into access and show on screens; the taxonomy from reports
        ServiceSpec(
            PORTAL,
            "edge.portal.service:PortalService",
            after=(ACCESS, REPORTS, SCREENS),
            routes="edge.portal.routes:add_routes",
        ),
        ServiceSpec(PORTAL_RELAY, "edge.portal.relay:PortalRelay", after=(PORTAL, SYNC)),
    ),
    config=PortalConfig,
    cli=("edge.portal.cli:portal",),
    demo=(
        DemoStep("portal", "edge.portal.demo:step_portal", after=("reports",)),
        # the away step needs the box provisioned by the cloud-sync step
        DemoStep("portal_away", "edge.portal.demo:step_portal_away", after=("cloud_sync",)),
    ),
)
