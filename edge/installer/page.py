"""The installer page: one self-contained HTML file (works with no internet on site)."""

from importlib import resources

PAGE = resources.files("edge.installer").joinpath("static/index.html").read_text(encoding="utf-8")
