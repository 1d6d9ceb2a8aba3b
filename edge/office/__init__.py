"""The property office on the box (物业工作台, ``/office/``): staff sign in on the LAN and work
with the box's own API, offline too: today's alerts and reports, the ticket board, residents
and face enrolment, door rights, visitor passes, blocks, moderation, devices, the access log
and the audit log of every staff write.

``box.get(OFFICE)`` is :class:`edge.office.service.OfficeService` (users, sessions, audit).
The pages share the city console's look and script (common/console.py). Manual:
docs/console.md (property office).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.access import ACCESS
from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.devices import DEVICES
from edge.faces import FACES
from edge.office.config import OfficeConfig
from edge.portal import PORTAL
from edge.tickets import TICKETS

if TYPE_CHECKING:
    from edge.office.service import OfficeService

OFFICE: ServiceKey[OfficeService] = ServiceKey("office")

FEATURE = Feature(
    name="office",
    services=(
        # the pages show what these serve (through the same API) and read their devices
        ServiceSpec(
            OFFICE,
            "edge.office.service:OfficeService",
            after=(ACCESS, TICKETS, FACES, PORTAL, DEVICES),
            routes="edge.office.routes:add_routes",
        ),
    ),
    config=OfficeConfig,
    cli=("edge.office.cli:office",),
    demo=(DemoStep("office", "edge.office.demo:step_office", after=("portal",)),),
)
