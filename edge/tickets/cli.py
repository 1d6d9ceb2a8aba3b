"""``qilu-edge ticket``: repair tickets from the command line (list, show, do)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.core.cli import open_store


@click.group("ticket")
def ticket() -> None:
    """Repair tickets: list, show, and move them through their states."""


@ticket.command("list")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option("--status", default=None)
def ticket_list(config_path: Path, status: str | None) -> None:
    from edge.tickets import store as db

    with open_store(config_path) as (_, store):
        for t in db.list_tickets(store, status=status):
            click.echo(f"{t['id']}  {t['status']:<11} {t['urgency']:<9} due {t['due_at'][:16]}"
                       f"  {t['assignee'] or '-':<10} {t['title']}")


@ticket.command("show")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.argument("ticket_id")
def ticket_show(config_path: Path, ticket_id: str) -> None:
    """One ticket with its full history, as JSON."""
    from edge.tickets import store as db

    with open_store(config_path) as (_, store):
        row = db.get_ticket(store, ticket_id)
        if row is None:
            raise click.ClickException(f"no ticket {ticket_id}")
        row.pop("follow_key")
        row["history"] = db.history(store, ticket_id)
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))


@ticket.command("do")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.argument("ticket_id")
@click.argument("action", type=click.Choice(["assign", "start", "resolve", "confirm", "reopen"]))
@click.option("--assignee", default=None)
@click.option("--note", default="")
@click.option("--actor", default="cli", show_default=True)
def ticket_do(config_path: Path, ticket_id: str, action: str, assignee: str | None, note: str,
              actor: str) -> None:
    """Apply ACTION to a ticket as staff (the event reaches MQTT and the cloud via the store)."""
    from edge.tickets import ops
    from edge.tickets.machine import TransitionError

    with open_store(config_path) as (config, store):
        try:
            rec = ops.transition(store, config.tickets, ticket_id, action, role="staff",
                                 actor=actor, note=note, assignee=assignee)
        except TransitionError as e:
            raise click.ClickException(str(e)) from e
        except LookupError as e:
            raise click.ClickException(f"no ticket {ticket_id}") from e
    click.echo(f"{rec.id} is {rec.status}")
