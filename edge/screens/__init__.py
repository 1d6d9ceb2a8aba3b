"""Outdoor publicity-screen player: content cache, schedules, emergencies, proof of play.

The screens themselves are devices (``[[screens]]``, drivers/screens/); this capability's own
section is ``[player]`` because TOML cannot hold a ``[screens]`` table beside that list.
Manual: docs/screens.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import DemoStep, Feature, ServiceKey, ServiceSpec
from edge.devices import DEVICES
from edge.screens.config import ScreensConfig
from edge.sync import SYNC

if TYPE_CHECKING:
    from edge.screens.service import ScreensService

SCREENS: ServiceKey[ScreensService] = ServiceKey("screens")

FEATURE = Feature(
    name="screens",
    services=(
        ServiceSpec(
            SCREENS,
            "edge.screens.service:ScreensService",
            after=(DEVICES,),
            before=(SYNC,),
            routes="edge.screens.routes:add_routes",
        ),
    ),
    config=ScreensConfig,
    config_section="player",
    cli=("edge.screens.cli:screens",),
    demo=(DemoStep("screens", "edge.screens.demo:step_screens"),),
    demo_config="edge.screens.demo:DEMO_SCREEN_TOML",
)
