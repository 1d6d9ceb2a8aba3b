"""Qilu Edge: the community box daemon."""

from common.version import __version__

__all__ = ["__version__"]
