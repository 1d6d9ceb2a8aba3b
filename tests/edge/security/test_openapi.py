"""The box's OpenAPI document covers every route, and schemathesis fuzzes a real box with it:
no answer is a 5xx (issue 13, property-based fuzzing)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from edge import openapi
from tests.conftest import STAFF_TOKEN, api_url
from tests.edge.portal.helpers import FAST

ST = Path(sys.executable).parent / "schemathesis"
SCREENS = '[[screens]]\nid = "s1"\ntype = "sim"\n'


async def test_every_route_is_in_the_document(make_config, run_box) -> None:
    box = await run_box(make_config(extra=FAST + SCREENS))
    assert openapi.missing(box.http) == []  # a new route needs its line in openapi.BODIES
    stale = set(openapi.BODIES) - {f"{m} {p}" for m, p, _ in openapi.routes(box.http)}
    assert stale <= {"GET /api/v1/openapi.json"} or not stale, stale
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{api_url(box)}/api/v1/openapi.json") as r:
            doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert "post" in doc["paths"]["/api/v1/reports"]
    assert doc["paths"]["/api/v1/portal/login"]["post"]["requestBody"]


def test_a_new_route_is_reported_missing() -> None:
    from aiohttp import web

    app = web.Application()

    async def h(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/healthz", h)
    app.router.add_post("/api/v1/brand-new", h)
    assert openapi.missing(app) == ["POST /api/v1/brand-new"]


async def test_schemathesis_finds_no_server_error(make_config, run_box, tmp_path) -> None:
    box = await run_box(make_config(extra=FAST + SCREENS))
    url = api_url(box)
    excluded = "|".join(p.replace("{", r"\{").replace("}", r"\}") for p in openapi.NOT_FUZZED)
    proc = await asyncio.create_subprocess_exec(
        str(ST), "run", f"{url}/api/v1/openapi.json",
        "--checks", "not_a_server_error",
        "--max-examples", "10",
        "--phases", "examples,coverage,fuzzing",
        "--seed", "7",
        "--request-timeout", "10",
        "--workers", "2",
        "--exclude-path-regex", f"^({excluded})$",
        "-H", f"Authorization: Bearer {STAFF_TOKEN}",
        "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    async with asyncio.timeout(150):
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    assert "Server error" not in text
