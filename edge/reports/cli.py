"""``qilu-edge report ...`` and ``qilu-edge ticket ...`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("report")
def report() -> None:
    """Residents' reports: text analysis, listing."""


@report.command("classify")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--taxonomy", type=click.Path(dir_okay=False, path_type=Path), default=None)
def classify(text: str, as_json: bool, taxonomy: Path | None) -> None:
    """Analyse TEXT: category, sentiment (−1…1), polarity, urgency."""
    from edge.reports.analyze import Analyzer
    from edge.reports.taxonomy import load_taxonomy

    analyzer = Analyzer(load_taxonomy(taxonomy))
    a = analyzer.analyze(text)
    out = a.as_dict() | {"category_zh": analyzer.taxonomy.get(a.category).zh}
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        click.echo(f"{out['category']} ({out['category_zh']})  sentiment {a.sentiment:+.2f}"
                   f" {a.polarity}  urgency {a.urgency} {' '.join(a.urgency_reasons)}")


@report.command("list")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option("-n", "--limit", default=20, show_default=True)
def report_list(config_path: Path, limit: int) -> None:
    """The latest reports in the box's store."""
    from edge.cli import open_store
    from edge.store import reports as db

    with open_store(config_path) as (_, store):
        for r in db.list_reports(store, limit=limit):
            click.echo(f"{r['ts'][:19]}  {r['id']}  {r['category']:<22} {r['urgency']:<9}"
                       f" {r['sentiment']:+.2f}  {r['status']:<11} {r['text'][:40]}")


@report.command("retrain")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="The box's config: add its staff corrections and adopt the new model there.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Without a config: write the artefact built from the shipped corpus here.")
def retrain(config_path: Path | None, out: Path | None) -> None:
    """Retrain the text model: shipped corpus + staff corrections → a versioned artefact,
    adopted only if it is not worse on the untouched test split (else the old one stays)."""
    if config_path is None:
        from edge.reports.analyze import default_artefact
        from edge.reports.train import main as train_main

        train_main(["--out", str(out or default_artefact())])
        return
    from edge.cli import open_store
    from edge.reports.retrain import ModelRefused
    from edge.reports.retrain import retrain as run

    with open_store(config_path) as (config, store):
        try:
            res = run(store, config.box.data_dir)
        except ModelRefused as e:
            raise click.ClickException(str(e)) from e
    click.echo(json.dumps(res, ensure_ascii=False))
    click.echo("adopted: the daemon loads it at its next start")


@click.group("ticket")
def ticket() -> None:
    """Repair tickets: list, show, and move them through their states."""


@ticket.command("list")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option("--status", default=None)
def ticket_list(config_path: Path, status: str | None) -> None:
    from edge.cli import open_store
    from edge.store import tickets as db

    with open_store(config_path) as (_, store):
        for t in db.list_tickets(store, status=status):
            click.echo(f"{t['id']}  {t['status']:<11} {t['urgency']:<9} due {t['due_at'][:16]}"
                       f"  {t['assignee'] or '-':<10} {t['title']}")


@ticket.command("show")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.argument("ticket_id")
def ticket_show(config_path: Path, ticket_id: str) -> None:
    """One ticket with its full history, as JSON."""
    from edge.cli import open_store
    from edge.store import tickets as db

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
    from edge.cli import open_store
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


def register(main: click.Group) -> None:
    main.add_command(report)
    main.add_command(report, name="reports")  # `qilu-edge reports retrain` reads naturally too
    main.add_command(ticket)
