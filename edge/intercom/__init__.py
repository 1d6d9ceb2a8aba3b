"""Visitor intercom (一键呼叫开门): a visitor calls a flat from the door screen, a call button or
an intercom panel; the flat's phones ring with the door picture; one tap opens the door through
the access engine, or "later" issues a one-time pass shown on the door screen.

``box.get(INTERCOM)`` is :class:`edge.intercom.service.IntercomService`. Manual: docs/intercom.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.access import ACCESS
from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.devices import DEVICES
from edge.intercom.config import IntercomConfig
from edge.portal import PORTAL
from edge.screens import SCREENS

if TYPE_CHECKING:
    from edge.intercom.service import IntercomService

INTERCOM: ServiceKey[IntercomService] = ServiceKey("intercom")

FEATURE = Feature(
    name="intercom",
    services=(
        # opens through access, authenticates door screens with screens' keys, phones with
        # the portal's sessions, polls call buttons on the devices' relay boards
        ServiceSpec(
            INTERCOM,
            "edge.intercom.service:IntercomService",
            after=(ACCESS, SCREENS, PORTAL, DEVICES),
            routes="edge.intercom.routes:add_routes",
        ),
    ),
    config=IntercomConfig,
    cli=("edge.intercom.cli:intercom",),
    demo=(DemoStep("intercom", "edge.intercom.demo:step_intercom", after=("portal",)),),
    demo_config="edge.intercom.demo:demo_intercom_toml",
)
