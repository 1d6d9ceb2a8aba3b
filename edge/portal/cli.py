"""``qilu-edge portal ...``: login codes, sessions, moderation and reading counts.

These work on the box's store directly (beside a running daemon: SQLite WAL), so staff at the
box can hand out a code or hide a post without an API token.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from edge.core.cli import open_store
from edge.portal.codes import link_base, login_link
from edge.portal.guard import digits_for

CONFIG = click.option(
    "-c", "--config", "config_path", type=click.Path(path_type=Path), required=True
)


@click.group("portal")
def portal() -> None:
    """Resident portal: login codes, sessions, board moderation, reading counts."""


@portal.command("code")
@CONFIG
@click.argument("resident_id")
@click.option("--name", default="", help="Name shown on the portal.")
@click.option("--building", default=None, help="Building number (feed and notices).")
@click.option("--unit", default=None)
@click.option("--channel", type=click.Choice(["staff", "print", "door", "screen"]), default="print")
@click.option("--ttl-h", type=float, default=None, help="Hours the code is valid.")
def code_cmd(
    config_path: Path,
    resident_id: str,
    name: str,
    building: str | None,
    unit: str | None,
    channel: str,
    ttl_h: float | None,
) -> None:
    """Issue a one-time login code for RESIDENT_ID (print it or show it at the door)."""
    from edge.portal.bodies import IssueCode

    body = IssueCode(
        resident_id=resident_id, name=name, building=building, unit=unit, channel=channel,
        ttl_h=ttl_h,
    )  # fmt: skip
    with open_store(config_path) as (config, store):
        got = _issue(config, store, body.resident_id, body.channel, body.ttl_h,
                     name=body.name, building=body.building, unit=body.unit)  # fmt: skip
    click.echo(
        f"code {got['code']}  for {resident_id}  valid until {got['expires_at']:%Y-%m-%d %H:%M} UTC"
    )
    click.echo(f"link {login_link(_base(config), got['code'])}")


def _base(config: Any) -> str:
    """Printed and CLI links: through the cloud once provisioned (cards last for days and
    phones are often on mobile data), else the box's own address."""
    from common.relay import away_url
    from edge.sync.identity import identity_path, load

    away = None
    if config.portal.relay and config.sync.enabled:
        try:
            ident = load(identity_path(config))
        except (OSError, ValueError, TypeError):
            ident = None
        if ident is not None:
            away = away_url(ident.cloud, ident.community_id)
    lan = f"http://{config.api.host}:{config.api.port}"
    return link_base(config.portal.public_url, away, lan)


def _issue(
    config: Any, store: Any, rid: str, channel: str, ttl_h: float | None, **fields: Any
) -> dict[str, Any]:
    from edge.portal import store as db

    cfg = config.portal
    return db.issue_code(
        store, rid, channel=channel, by="cli", ttl=timedelta(hours=ttl_h or cfg.code_ttl_h),
        digits=digits_for(cfg, _base(config)), **fields,
    )  # fmt: skip


@portal.command("sessions")
@CONFIG
@click.option("--resident", "resident_id", default=None)
def sessions_cmd(config_path: Path, resident_id: str | None) -> None:
    """List portal sessions (revoked ones are marked)."""
    from edge.portal import store as db

    with open_store(config_path) as (_, store):
        for s in db.list_sessions(store, resident_id):
            state = f"revoked {s['revoked_at'][:16]}" if s["revoked_at"] else "live"
            click.echo(
                f"{s['id']}  {s['resident_id']:<12} since {s['created_at'][:16]}"
                f"  last {s['last_seen'][:16]}  {state}"
            )


@portal.command("revoke")
@CONFIG
@click.option("--session", "session_id", default=None)
@click.option("--resident", "resident_id", default=None, help="Every session of a resident.")
def revoke_cmd(config_path: Path, session_id: str | None, resident_id: str | None) -> None:
    """Revoke one session or all of a resident's sessions."""
    from edge.portal import store as db

    if (session_id is None) == (resident_id is None):
        raise click.UsageError("give exactly one of --session and --resident")
    with open_store(config_path) as (_, store):
        n = db.revoke_sessions(store, session_id=session_id, resident_id=resident_id)
    click.echo(f"revoked {n} session(s)")


@portal.command("flagged")
@CONFIG
def flagged_cmd(config_path: Path) -> None:
    """Posts residents flagged, waiting for moderation."""
    from edge.portal import store as db

    with open_store(config_path) as (_, store):
        rows = db.flagged_posts(store)
    for p in rows:
        cats = ", ".join(sorted({f["category"] for f in p["flag_list"]}))
        click.echo(f"{p['id']}  [{cats}]  {p['title']}  ({len(p['flag_list'])} flag(s))")
    if not rows:
        click.echo("nothing flagged")


@portal.command("moderate")
@CONFIG
@click.argument("post_id")
@click.argument("action", type=click.Choice(["hide", "restore"]))
@click.option("--category", default=None, help="Taxonomy code (required to hide).")
@click.option("--note", default="")
def moderate_cmd(
    config_path: Path, post_id: str, action: str, category: str | None, note: str
) -> None:
    """Hide a post (with a taxonomy category) or restore it."""
    from edge.portal import store as db
    from edge.reports.taxonomy import load_taxonomy

    if action == "hide":
        codes = load_taxonomy().codes
        if category not in codes:
            raise click.BadParameter(f"expected one of {', '.join(codes)}", param_hint="category")
    with open_store(config_path) as (_, store):
        try:
            rec = db.moderate_post(store, post_id, action, "cli", category, note)
        except db.PortalError as e:
            raise click.ClickException(str(e)) from e
    click.echo(f"{rec.id} is now {rec.status}")


@portal.command("stats")
@CONFIG
@click.option("--json", "as_json", is_flag=True)
def stats_cmd(config_path: Path, as_json: bool) -> None:
    """Reach per content item on this box: reads, readers, acknowledgements, dwell."""
    from edge.portal import store as db

    with open_store(config_path) as (_, store):
        rows = db.local_stats(store)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(
            f"{r['content_id']:<20} reads {r['reads']:>4}  readers {r['readers']:>4}"
            f"  acks {r['acks']:>4}  dwell {r['dwell_s']:>8.0f}s  {r['title'] or ''}"
        )


@portal.command("codes-sheet")
@CONFIG
@click.option("--building", required=True, help="Every registered resident of this building.")
@click.option(
    "--out", "out_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
    help="The printable A4 HTML file to write.",
)  # fmt: skip
@click.option("--ttl-h", type=float, default=None, help="Hours the codes are valid.")
def codes_sheet_cmd(config_path: Path, building: str, out_path: Path, ttl_h: float | None) -> None:
    """Print login cards (QR + code) for every registered resident of a building."""
    from edge.faces import store as faces
    from edge.portal import sheet

    with open_store(config_path) as (config, store):
        residents = [
            r for r in faces.list_residents(store)
            if r.get("building") == building and r.get("status", "active") == "active"
        ]  # fmt: skip
        if not residents:
            raise click.ClickException(f"building: no registered residents in building {building}")
        with store.transaction():  # every card or none
            cards = [
                {**_issue(config, store, r["id"], "print", ttl_h), "room": r.get("room")}
                for r in residents
            ]
        base = _base(config)
    title = config.box.name or config.box.community
    out_path.write_text(
        sheet.render(cards, base=base, title=title, tz=config.box.timezone), encoding="utf-8"
    )
    click.echo(
        f"wrote {len(cards)} login card(s) for building {building} to {out_path}"
        f" (valid until {cards[0]['expires_at']:%Y-%m-%d %H:%M} UTC)"
    )
    if not config.portal.public_url and "/r/at/" not in base:
        click.echo(
            f"note: [portal] public_url is not set; the QR codes point at {base}", err=True
        )
