"""``qilu-edge provision``: exchange a claim code for this box's cloud identity."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from edge.sync.client import CloudError, provision, ssl_context
from edge.sync.identity import identity_path, load, save


@click.command("provision")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Box config file (env QILU_EDGE_CONFIG).",
)
@click.option("--cloud", required=True, help="Cloud base URL, e.g. https://cloud.example.cn")
@click.option("--claim", required=True, help="One-time claim code from the ops console.")
@click.option("--name", default="", help="Name shown in the fleet (default: [box] name).")
@click.option("--force", is_flag=True, help="Replace an existing identity.")
def provision_cmd(config_path: Path | None, cloud: str, claim: str, name: str, force: bool) -> None:
    """Provision this box: store its identity and secret (file mode 0600)."""
    from edge.cli import DEFAULT_CONFIG
    from edge.cli import load as load_cfg

    config = load_cfg(config_path or Path(DEFAULT_CONFIG))
    path = identity_path(config)
    if load(path) is not None and not force:
        raise click.ClickException(f"{path} exists (already provisioned); use --force")
    ctx = ssl_context(config.sync.tls_verify, config.sync.ca_file)
    try:
        ident = asyncio.run(provision(cloud, claim, name or config.box.name, ssl_ctx=ctx))
    except (CloudError, OSError) as e:
        raise click.ClickException(f"provisioning failed: {e}") from e
    save(path, ident)
    click.echo(f"provisioned as {ident.box_id} in {ident.area_path}; identity in {path} (0600)")
