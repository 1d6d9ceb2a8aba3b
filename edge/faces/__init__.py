"""Face recognition on the box: detect, check quality, align, embed, match, liveness.

Entry point for other capabilities: :class:`edge.faces.pipeline.FacePipeline`, reachable in
the daemon as ``box.get(FACES).pipeline``. Templates and face photos never leave the box.
Manual: docs/faces.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.core.feature import Feature, ServiceKey, ServiceSpec
from edge.faces.config import FacesConfig

if TYPE_CHECKING:
    from edge.faces.service import FacesService

FACES: ServiceKey[FacesService] = ServiceKey("faces")

FEATURE = Feature(
    name="faces",
    services=(
        ServiceSpec(
            FACES, "edge.faces.service:FacesService", routes="edge.faces.routes:add_routes"
        ),
    ),
    config=FacesConfig,
    config_aliases=("face",),  # the section's name before 0.3
    cli=("edge.faces.cli:resident", "edge.faces.cli:models_group"),
)
