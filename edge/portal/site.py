"""Serves the residents' report page (/r/, edge/portal/static) and what every /r/ page shares:
the look (edge/portal/look.py: header, tab bar, community time zone) and the large-text switch.

Plain HTML, CSS and a small script (no framework): it loads fast on a phone over the
community Wi-Fi. The portal pages (edge/portal/pages.py) use the same frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web

from edge.core.box import Box
from edge.core.http import form_post
from edge.core.service import Service
from edge.portal import PORTAL
from edge.portal.look import (
    FACTOR_JS,
    LOOK,
    SESSION_COOKIE,
    Look,
    esc,
    header,
    html_tag,
    set_big,
    tabbar,
)

STATIC = Path(__file__).resolve().parent / "static"


class ResidentSite(Service):
    name = "resident_site"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        cfg = box.config.box
        box.http[LOOK] = Look(community=cfg.name or cfg.community, tz=ZoneInfo(cfg.timezone))
        self._index = (STATIC / "index.html").read_text(encoding="utf-8")
        box.http.router.add_get("/r", self.redirect)
        box.http.router.add_get("/r/", self.index)
        box.http.router.add_post("/r/prefs", self.prefs)
        box.http.router.add_static("/r/static/", STATIC, append_version=False)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/r/")

    async def index(self, request: web.Request) -> web.Response:
        look = request.app[LOOK]
        text = (
            self._index.replace("<html lang=zh-CN>", html_tag(request), 1)
            .replace("<!--HEADER-->", header(request, "报事"), 1)
            .replace("<!--TABBAR-->", tabbar("/r/"), 1)
            .replace("__TZ__", esc(json.dumps(str(look.tz))), 1)
        )
        if request.cookies.get(SESSION_COOKIE):  # a door may be waiting for this resident
            text = text.replace("</head>", f"<script src={FACTOR_JS} defer></script></head>", 1)
        return web.Response(
            text=text, content_type="text/html", charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )  # fmt: skip

    async def prefs(self, request: web.Request) -> web.StreamResponse:
        """The large-text switch: a cookie for this phone, and the resident's preference when
        logged in (so their next phone starts in large text too)."""
        form = await form_post(request)
        big = str(form.get("big", "0")) == "1"
        back = str(form.get("back", "/r/"))
        if not back.startswith("/r") or back.startswith("//"):
            back = "/r/"  # only back into the resident app, never to another site
        portal = self.box.get(PORTAL, None)
        if portal is not None:
            res = await portal.resident(request)
            if res is not None:
                from edge.portal import store as db

                await portal.db(db.set_big_text, res["resident_id"], big)
        resp = web.HTTPSeeOther(back)
        set_big(resp, big)
        raise resp
