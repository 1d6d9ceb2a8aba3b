"""``qilu-edge office ...``: the property office's accounts and audit log, on the box's store
(beside a running daemon: SQLite WAL)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from common.staffauth import MIN_PASSWORD, hash_password, new_totp_secret, totp_uri
from edge.core.cli import config_option, open_store
from edge.office import store as db


@click.group("office")
def office() -> None:
    """Property office console (/office/): staff accounts and the audit log."""


@office.group("user")
def user() -> None:
    """Office staff accounts (admin: may change things; viewer: reads only)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(db.ROLES), default="admin", show_default=True)
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (scripts) instead of asking twice.")
@click.option("--totp/--no-totp", default=False, show_default=True,
              help="Also require a one-time code from an authenticator app; prints its secret.")
@click.option("--replace", is_flag=True,
              help="Set a new password/role for an existing user (ends their sessions).")
@config_option
def user_add(name: str, role: str, password_stdin: bool, totp: bool, replace: bool,
             config_path: Path) -> None:
    """Create an office user NAME who signs in at http://<box>/office/."""
    if not name.strip() or len(name) > 64:
        raise click.ClickException("name: 1 to 64 characters")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"password: at least {MIN_PASSWORD} characters")
    secret = new_totp_secret() if totp else None
    with open_store(config_path) as (config, store):
        try:
            db.add_user(store, name, hash_password(password), role, secret, replace)
        except db.OfficeError as e:
            raise click.ClickException(str(e)) from e
        db.audit_add(store, name, "cli", "user_add" if not replace else "user_replace", name,
                     role, 200)
    click.echo(f"office user {name} ({role}) ready; sign in at http://<box>:{config.api.port}"
               "/office/")
    if secret:
        click.echo(f"TOTP secret: {secret}")
        click.echo(f"TOTP URI (scan as a QR code): {totp_uri(secret, name, '物业工作台')}")


@user.command("list")
@config_option
def user_list(config_path: Path) -> None:
    """The office users, their roles and whether they use a one-time code."""
    with open_store(config_path) as (_cfg, store):
        rows = db.list_users(store)
    for r in rows:
        state = f"disabled {r['disabled_at'][:19]}" if r["disabled_at"] else "active"
        click.echo(f"{r['name']:<20} {r['role']:<7} totp={'yes' if r['totp'] else 'no ':<4}"
                   f" {state}")
    if not rows:
        click.echo("no office users (add one: qilu-edge office user add NAME)")


@user.command("disable")
@click.argument("name")
@config_option
def user_disable(name: str, config_path: Path) -> None:
    """Stop NAME from signing in (their sessions end at once)."""
    with open_store(config_path) as (_cfg, store):
        try:
            db.disable_user(store, name)
        except db.OfficeError as e:
            raise click.ClickException(str(e)) from e
        db.audit_add(store, name, "cli", "user_disable", name, "", 200)
    click.echo(f"office user {name} disabled")


@office.command("audit")
@click.option("--actor", default=None, help="Only this user's (or token's) writes.")
@click.option("--limit", default=30, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@config_option
def audit(actor: str | None, limit: int, as_json: bool, config_path: Path) -> None:
    """The latest staff writes: who opened which door, who changed which ticket, sign-ins."""
    with open_store(config_path) as (_cfg, store):
        rows = db.audit_page(store, limit, None, actor)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for r in rows:
        click.echo(f"{r['ts'][:19]}  {r['actor']:<14} {r['via']:<7} {r['status']}  {r['action']}"
                   f" {r['target']}")
    if not rows:
        click.echo("no audit rows")
