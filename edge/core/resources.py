"""Files that ship beside the code (common/resources.py: the cloud's retraining reads them too)."""

from __future__ import annotations

from common.resources import CHECKOUT, SHARE, shipped

__all__ = ["CHECKOUT", "SHARE", "shipped"]
