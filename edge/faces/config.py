"""The ``[faces]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge.core.config import Section


class FacesConfig(Section):
    """``[faces]`` (formerly ``[face]``): face recognition on the box (docs/faces.md)."""

    enabled: bool = True
    detector: Literal["yunet", "blazeface"] = "yunet"
    blazeface_range: Literal["short", "full"] = "short"  # short: faces within ~2 m
    model_dir: Path | None = None  # None: the checkout's models/; relative: to the config file
    detect_max_side: int = Field(640, ge=160, le=4096)  # larger frames are scaled down first
    detect_score: float = Field(0.7, gt=0, lt=1)
    threshold: float = Field(0.45, gt=-1, lt=1)  # SFace cosine; ~FAR 1e-4 (peers.md)
    margin: float = Field(0.05, ge=0, lt=1)  # best minus second-best identity
    negative_step: float = Field(0.02, ge=0, le=0.2)  # threshold raise per wrong-match report
    negative_cap: float = Field(0.10, ge=0, le=0.5)
    duplicate_warn: float = Field(0.40, gt=-1, lt=1)  # enrol warns above this vs others
    min_eye_px: float = Field(28.0, ge=4)  # inter-eye distance in the frame
    min_sharpness: float = Field(60.0, ge=0)  # variance of Laplacian on the aligned face
    max_yaw: float = Field(0.35, gt=0, le=1)  # nose offset / eye distance
    max_roll_deg: float = Field(25.0, gt=0, le=90)
    min_brightness: float = Field(50.0, ge=0, le=255)
    max_brightness: float = Field(215.0, ge=0, le=255)
    liveness_threshold: float = Field(0.5, ge=0, le=1)
    liveness_frames: int = Field(6, ge=2, le=100)
    keep_thumbnails: bool = False  # attach a face thumbnail to decisions (never synced)
