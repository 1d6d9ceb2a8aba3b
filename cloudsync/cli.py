"""``qilu-cloudsync``: the central service for a whole city's boxes."""

from __future__ import annotations

import click
from aiohttp import web

from edge import logs
from edge.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qilu-cloudsync")
def main() -> None:
    """Qilu cloud sync service: boxes, areas, content, reports and the ops API."""
    logs.setup("INFO")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the sync and ops API."""
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host=host, port=port)
