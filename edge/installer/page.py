"""The installer page: one HTML file and its script (works with no internet on site)."""

from importlib import resources

_STATIC = resources.files("edge.installer").joinpath("static")
PAGE = _STATIC.joinpath("index.html").read_text(encoding="utf-8")
SCRIPT = _STATIC.joinpath("app.js").read_text(encoding="utf-8")
