"""CLI for installers: ``qilu-edge door open DOOR``, ``qilu-edge cameras discover``,
``qilu-edge passes list``. Door commands go through the running daemon's API (it owns the
relay hardware), with the config's first staff token."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import click

from edge.core.cli import config_option, load


def _api(config_path: Path) -> tuple[str, dict[str, str]]:
    cfg = load(config_path)
    token = cfg.api.client_token()
    if not token:
        raise click.ClickException(
            "no staff token: add [[api.tokens]] to the config, or set QILU_EDGE_TOKEN when the"
            " config keeps only token_sha256"
        )
    host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "") else cfg.api.host
    return f"http://{host}:{cfg.api.port}", {"Authorization": f"Bearer {token}"}


async def _call(method: str, url: str, headers: dict[str, str]) -> tuple[int, object]:
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as s:
        async with s.request(method, url) as r:
            return r.status, await r.json(content_type=None)


@click.group("door")
def door() -> None:
    """Doors: open one (through the running daemon)."""


@door.command("open")
@click.argument("door_id")
@config_option
def door_open(door_id: str, config_path: Path) -> None:
    """Pulse DOOR_ID's relay now; prints whether the relay read back as switched."""
    base, headers = _api(config_path)
    try:
        status, body = asyncio.run(_call("POST", f"{base}/api/v1/doors/{door_id}/open", headers))
    except aiohttp.ClientError as e:
        raise click.ClickException(f"daemon API not reachable at {base}: {e}") from e
    click.echo(json.dumps(body, ensure_ascii=False))
    if status != 200:
        raise SystemExit(1)


@click.group("cameras")
def cameras() -> None:
    """Cameras: find ONVIF cameras on the LAN."""


@cameras.command("discover")
@click.option("--seconds", default=3.0, show_default=True, help="How long to listen.")
@click.option("--address", multiple=True, help="Probe this host (unicast) instead of multicast.")
def cameras_discover(seconds: float, address: tuple[str, ...]) -> None:
    """WS-Discovery probe for ONVIF cameras; prints their device service URLs."""
    from drivers.cameras.onvif import WSD_GROUP, discover

    targets = tuple((a, 3702) for a in address) or (WSD_GROUP,)
    found = discover(seconds, targets)
    for f in found:
        click.echo(f"{f.address}\t{' '.join(f.xaddrs)}\t{f.name}")
    if not found:
        click.echo("no ONVIF camera answered", err=True)


@click.group("passes")
def passes_group() -> None:
    """Visitor passes (through the running daemon)."""


@passes_group.command("list")
@click.option("--resident", default=None)
@config_option
def passes_list(resident: str | None, config_path: Path) -> None:
    base, headers = _api(config_path)
    q = f"?resident_id={resident}" if resident else ""
    _status, body = asyncio.run(_call("GET", f"{base}/api/v1/passes{q}", headers))
    click.echo(json.dumps(body, ensure_ascii=False, indent=2))
