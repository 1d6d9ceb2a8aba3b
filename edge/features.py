"""The composition root's one list of capabilities: the daemon starts their services, the CLI
adds their commands, the demo runs their steps, the config validates their sections.

Adding a capability = a folder edge/<name>/ declaring ``FEATURE`` (CONTRIBUTING.md) and one line
here. The order below only breaks ties: services start after what they declare ``after``.
Features never import this module (tests/test_layers.py checks it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge import (
    access,
    devices,
    faces,
    installer,
    intercom,
    office,
    portal,
    reports,
    screens,
    sync,
    tickets,
)
from edge.core.config import CoreConfig, build_model, load_with, parse_with
from edge.core.feature import Feature

FEATURES: list[Feature] = [
    devices.FEATURE,
    faces.FEATURE,
    installer.FEATURE,
    screens.FEATURE,
    reports.FEATURE,
    tickets.FEATURE,
    access.FEATURE,
    portal.FEATURE,
    intercom.FEATURE,
    office.FEATURE,
    sync.FEATURE,
]

SECTIONS = {f.section: f.config for f in FEATURES if f.config is not None}
ALIASES = {old: f.section for f in FEATURES for old in f.config_aliases}
# The box's whole config: the core sections plus each capability's. Typed as CoreConfig for
# the checker; a capability reads its own section with config.section(ItsConfig).
Config: type[CoreConfig] = build_model(SECTIONS, ALIASES)


def parse_config(text: str, source: Path | None = None) -> Any:
    return parse_with(Config, text, source=source)


def load_config(path: str | Path) -> Any:
    return load_with(Config, path)
