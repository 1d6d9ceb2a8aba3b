"""Qilu Edge: the community box daemon."""

from edge.version import __version__

__all__ = ["__version__"]
