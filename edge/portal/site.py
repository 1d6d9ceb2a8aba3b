"""Serves the residents' mobile H5 pages from edge/portal/static at /r/.

Plain HTML, CSS and a small script (no framework): it loads fast on a phone over the
community Wi-Fi. Other resident features (the portal, issue 9) add pages to the same folder.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from edge.core.box import Box
from edge.core.service import Service

STATIC = Path(__file__).resolve().parent / "static"


class ResidentSite(Service):
    name = "resident_site"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        box.http.router.add_get("/r", self.redirect)
        box.http.router.add_get("/r/", self.index)
        box.http.router.add_static("/r/static/", STATIC, append_version=False)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/r/")

    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            STATIC / "index.html", headers={"Cache-Control": "no-cache"}
        )
