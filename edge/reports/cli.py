"""``qilu-edge report ...`` and ``qilu-edge ticket ...`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.core.cli import open_store


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
    from edge.reports import store as db

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
        from common.texttrain import main as train_main
        from edge.reports.analyze import default_artefact

        train_main(["--out", str(out or default_artefact())])
        return
    from edge.reports.retrain import ModelRefused
    from edge.reports.retrain import retrain as run

    with open_store(config_path) as (config, store):
        try:
            res = run(store, config.box.data_dir)
        except ModelRefused as e:
            raise click.ClickException(str(e)) from e
    click.echo(json.dumps(res, ensure_ascii=False))
    click.echo("adopted: the daemon loads it at its next start")


# `qilu-edge reports retrain` reads naturally too: the same commands under the plural name.
reports = click.Group("reports", commands=report.commands, help=report.help, hidden=True)
