"""Access control: face doors, visitor passes (QR + PIN), remote open, device-health tickets.

``box.get(ACCESS)`` (:class:`edge.access.service.AccessService`) watches each door's camera,
decides against the policy (edge/access/policy.py) and drives the door drivers.
Manual: docs/access.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.access.config import AccessConfig
from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.devices import DEVICES
from edge.faces import FACES
from edge.sync import SYNC
from edge.tickets import TICKETS

if TYPE_CHECKING:
    from edge.access.service import AccessService

ACCESS: ServiceKey[AccessService] = ServiceKey("access")

FEATURE = Feature(
    name="access",
    services=(
        # faces identifies, devices drive the doors, tickets take device-health tickets
        ServiceSpec(
            ACCESS,
            "edge.access.service:AccessService",
            after=(FACES, DEVICES, TICKETS),
            before=(SYNC,),
            routes="edge.access.routes:add_routes",
        ),
    ),
    config=AccessConfig,
    cli=("edge.access.cli:door", "edge.access.cli:cameras", "edge.access.cli:passes_group"),
    # last: it enrols a face, which the earlier steps' counts do not expect
    demo=(DemoStep("face_doors", "edge.access.demo:step_face_doors", after=("portal_away",)),),
    demo_config="edge.access.demo:demo_access_toml",
)
