"""``qilu-edge provision`` (claim code -> cloud identity) and ``qilu-edge sync status|resend``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from edge.core.cli import config_option, open_store
from edge.core.cli import load as load_cfg
from edge.sync import store as ob
from edge.sync.client import CloudError, cloud_ssl, provision
from edge.sync.identity import identity_path, load, save


@click.command("provision")
@config_option
@click.option("--cloud", required=True, help="Cloud base URL, e.g. https://cloud.example.cn")
@click.option("--claim", required=True, help="One-time claim code from the ops console.")
@click.option("--name", default="", help="Name shown in the fleet (default: [box] name).")
@click.option("--force", is_flag=True, help="Replace an existing identity.")
def provision_cmd(config_path: Path, cloud: str, claim: str, name: str, force: bool) -> None:
    """Provision this box: store its identity and secret (file mode 0600)."""
    config = load_cfg(config_path)
    path = identity_path(config)
    if load(path) is not None and not force:
        raise click.ClickException(f"{path} exists (already provisioned); use --force")
    ctx = cloud_ssl(config)
    try:
        ident = asyncio.run(provision(cloud, claim, name or config.box.name, ssl_ctx=ctx))
    except (CloudError, OSError) as e:
        raise click.ClickException(f"provisioning failed: {e}") from e
    save(path, ident)
    click.echo(f"provisioned as {ident.box_id} in {ident.area_path}; identity in {path} (0600)")


@click.group("sync")
def sync_group() -> None:
    """Cloud sync: outbox backlog and the quarantine of records the cloud refused."""


@sync_group.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync_status(config_path: Path, as_json: bool) -> None:
    """Outbox backlog per priority class and the records waiting in quarantine."""
    with open_store(config_path) as (_, store):
        by_class = ob.outbox_by_class(store)
        quarantine = ob.quarantine_list(store, 1000)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "outbox_by_priority": {str(k): {"rows": n, "bytes": b} for k, (n, b) in
                                           by_class.items()},
                    "quarantine": quarantine,
                },
                ensure_ascii=False,
            )
        )  # fmt: skip
        return
    click.echo("outbox: " + (", ".join(f"class {k}: {n} rows" for k, (n, _) in sorted(
        by_class.items())) or "empty"))  # fmt: skip
    click.echo(f"quarantine: {len(quarantine)} record(s) the cloud refused")
    for q in quarantine:
        click.echo(f"  seq {q['seq']} {q['kind']} {q['record_id']} {q['quarantined_at']}")
        click.echo(f"    {q['reason']}")
    if quarantine:
        click.echo("resend after the cloud is fixed: qilu-edge sync resend --all")


@sync_group.command("resend")
@config_option
@click.option("--seq", "seqs", type=int, multiple=True, help="A quarantined seq (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Every quarantined record.")
def sync_resend(config_path: Path, seqs: tuple[int, ...], everything: bool) -> None:
    """Put quarantined records back into the outbox; the daemon sends them with their class
    under their own seq (a record the cloud still refuses comes back to the quarantine)."""
    if not seqs and not everything:
        raise click.UsageError("give --seq N (repeatable) or --all")
    with open_store(config_path) as (_, store):
        n = ob.quarantine_resend(store, None if everything else list(seqs))
    click.echo(f"{n} record(s) back in the outbox")
