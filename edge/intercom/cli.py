"""``qilu-edge intercom calls``: the door calls the box logged (from its store)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.core.cli import config_option, open_store
from edge.intercom import store as db


@click.group("intercom")
def intercom() -> None:
    """Visitor intercom: calls from doors to flats."""


@intercom.command("calls")
@click.option("--flat", default=None, help="Only calls to this flat (楼号-单元-房号).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_option
def calls(flat: str | None, limit: int, as_json: bool, config_path: Path) -> None:
    """The latest calls: when, door, flat, how it ended, who answered."""
    with open_store(config_path) as (_cfg, store):
        rows = db.list_calls(store, flat, limit)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        click.echo(f"{r['ts'][:19]}  {r['door_id']:<10} {r['flat']:<10} {r['state']:<9}"
                   f" {r['source']:<7} {r['answered_by'] or '-'}")
    if not rows:
        click.echo("no calls")
