"""``qilu-edge``: run the box daemon and operate it (``qilu-edge --help`` lists everything)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import click

from common import logs
from common.version import __version__
from edge.core.cli import DEFAULT_CONFIG, LOADER, config_option, load
from edge.core.config import CoreConfig
from edge.core.feature import resolve
from edge.core.resources import shipped
from edge.core.standard import json_schemas, markdown_reference, topic
from edge.core.store import Store, check_file, read_events
from edge.features import FEATURES, load_config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qilu-edge")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@click.option("--log-level", default=None, help="Override [logging] level.")
@click.pass_context
def main(ctx: click.Context, log_json: bool, log_level: str | None) -> None:
    """Qilu Edge: the community box (face doors, drivers, screens, reports, sync)."""
    ctx.ensure_object(dict)
    ctx.obj[LOADER] = load_config  # edge.core.cli.load: the capabilities' commands use it
    ctx.obj["log_json"] = log_json
    ctx.obj["log_level"] = log_level
    logs.setup(log_level or "WARNING", log_json)


def setup_logging(ctx: click.Context, config: CoreConfig) -> None:
    logs.setup(
        ctx.obj["log_level"] or config.logging.level, ctx.obj["log_json"] or config.logging.as_json
    )


@main.command()
@config_option
@click.pass_context
def run(ctx: click.Context, config_path: Path) -> None:
    """Run the box daemon in the foreground (systemd: Type=notify)."""
    from edge.daemon import Daemon

    config = load(config_path)
    setup_logging(ctx, config)
    asyncio.run(Daemon(config).run())


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Where to write the config.",
)
@click.option("--community", default="demo-community", show_default=True)
@click.option("--box-id", default="box-dev", show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (default: var/edge beside the config).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config.")
def init(
    config_path: Path, community: str, box_id: str, data_dir: Path | None, force: bool
) -> None:
    """Write a starter config and create its database; print its staff token once."""
    import hashlib
    import secrets

    if config_path.exists() and not force:
        raise click.ClickException(f"{config_path} exists; use --force to overwrite")
    example = shipped("config/edge.example.toml")
    text = example.read_text(encoding="utf-8") if example.exists() else _MINIMAL
    text = text.replace('id = "box-dev"', f'id = "{box_id}"', 1)
    text = text.replace('community = "demo-community"', f'community = "{community}"', 1)
    # Only the token's SHA-256 goes into the file (and any copy or backup of it); the token
    # itself is printed once, like `qilu-edge token new`.
    token = secrets.token_urlsafe(32)
    plain = 'token = "change-me-to-a-long-random-string"'
    has_token = plain in text
    digest = hashlib.sha256(token.encode()).hexdigest()
    text = text.replace(plain, f'token_sha256 = "{digest}"', 1)
    if data_dir is not None:
        text = text.replace('data_dir = "../var/edge"', f'data_dir = "{data_dir.resolve()}"', 1)
    else:
        text = text.replace('data_dir = "../var/edge"', 'data_dir = "var/edge"', 1)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(text, encoding="utf-8")
    config_path.chmod(0o600)  # it holds API tokens
    config = load(config_path)
    Store(config.db_path, box_id=config.box.id).close()
    click.echo(f"wrote {config_path}\ncreated {config.db_path}")
    if has_token:
        click.echo(
            f"staff token (shown once; the config keeps only its SHA-256): {token}\n"
            "the box's own commands (door, screens, doctor ...) read it from QILU_EDGE_TOKEN",
            err=True,
        )


_MINIMAL = '[box]\nid = "box-dev"\ncommunity = "demo-community"\ndata_dir = "../var/edge"\n'


@main.group()
def db() -> None:
    """Database: migrate, check, backup."""


@db.command("migrate")
@config_option
def db_migrate(config_path: Path) -> None:
    """Apply pending schema migrations."""
    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)  # opening migrates
    click.echo(f"{config.db_path}: schema {store.schema_versions()}")
    store.close()


@db.command("check")
@config_option
def db_check(config_path: Path) -> None:
    """Full integrity check; exit 1 if the database is damaged."""
    config = load(config_path)
    result = check_file(config.db_path)
    click.echo(f"{config.db_path}: {result}")
    if result != "ok":
        sys.exit(1)


@db.command("backup")
@config_option
@click.option("--to", "dest", type=click.Path(file_okay=False, path_type=Path), default=None)
def db_backup(config_path: Path, dest: Path | None) -> None:
    """Consistent online copy of the database (safe while the daemon runs)."""
    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)
    out = store.backup(dest or config.backup_path)
    store.close()
    click.echo(str(out))


@main.group()
def events() -> None:
    """The event stream."""


@events.command("tail")
@config_option
@click.option("-n", "--lines", default=20, show_default=True, help="Show the last N events first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events.")
@click.option("--json", "as_json", is_flag=True, help="Print each payload as JSON.")
@click.option("--seconds", type=float, default=None, help="Stop following after this long.")
def events_tail(
    config_path: Path, lines: int, follow: bool, as_json: bool, seconds: float | None
) -> None:
    """Print the latest events from the store (works with the broker down)."""
    config = load(config_path)
    if not config.db_path.exists():
        raise click.ClickException(f"no database at {config.db_path}; run the daemon or `init`")
    deadline = time.monotonic() + seconds if seconds else None
    cursor = -lines
    while True:
        batch = read_events(config.db_path, cursor, 500)
        for ev in batch:
            if as_json:
                click.echo(json.dumps(ev.payload, ensure_ascii=False))
            else:
                t = topic(
                    config.mqtt.topic_prefix,
                    config.box.community,
                    ev.device_kind,
                    ev.device_id,
                    ev.event,
                )
                click.echo(f"{ev.ts}  {t}  {ev.kind} {ev.record_id}")
            cursor = ev.id
        if cursor < 0:
            cursor = 0
        if not follow or (deadline and time.monotonic() > deadline):
            break
        if not batch:
            time.sleep(0.5)


@main.group()
def standard() -> None:
    """The Qilu data standard."""


@standard.command("schema")
def standard_schema() -> None:
    """Print the JSON Schema of every standard record."""
    click.echo(json.dumps(json_schemas(), ensure_ascii=False, indent=2))


@standard.command("doc")
@click.option(
    "--write",
    "doc_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Rewrite the generated part of this file (docs/standard.md).",
)
def standard_doc(doc_path: Path | None) -> None:
    """Print the field reference of docs/standard.md (generated from the models)."""
    reference = markdown_reference()
    if doc_path is None:
        click.echo(reference)
        return
    marker = "do not edit below -->"
    head = doc_path.read_text(encoding="utf-8").split(marker, 1)[0]
    doc_path.write_text(f"{head}{marker}\n\n{reference}", encoding="utf-8")
    click.echo(f"updated {doc_path}")


@main.group()
def token() -> None:
    """Staff API tokens ([[api.tokens]])."""


@token.command("new")
@click.option("--name", default="staff", show_default=True, help="Who uses the token.")
@click.option("--role", type=click.Choice(["staff", "admin", "panel"]), default="staff",
              show_default=True,
              help="panel: a keypad / QR panel at a door; it may only enter PINs and QR codes"
              " at its --door(s).")
@click.option("--door", "doors", multiple=True,
              help="Panel tokens: the door the panel stands at (repeat for several).")
def token_new(name: str, role: str, doors: tuple[str, ...]) -> None:
    """Print a new random token once, and the config entry that keeps only its SHA-256."""
    import hashlib
    import json
    import secrets

    if role == "panel" and not doors:
        raise click.UsageError("--door: a panel token must name the door(s) it stands at")
    if role != "panel" and doors:
        raise click.UsageError("--door: only panel tokens are bound to doors")
    tok = secrets.token_urlsafe(32)
    click.echo(f"token (shown once; give it to {name}): {tok}", err=True)
    bound = f"doors = {json.dumps(list(doors), ensure_ascii=False)}\n" if doors else ""
    click.echo(
        f'[[api.tokens]]\nname = "{name}"\nrole = "{role}"\n{bound}'
        f'token_sha256 = "{hashlib.sha256(tok.encode()).hexdigest()}"'
    )


@main.group()
def mqtt() -> None:
    """MQTT commands to the box ([mqtt])."""


@mqtt.command("sign")
@config_option
@click.argument("topic_")
@click.argument("command")
def mqtt_sign(config_path: Path, topic_: str, command: str) -> None:
    """Print COMMAND (qilu.v1.command JSON) signed for TOPIC with the box's MQTT command key,
    for `mosquitto_pub -t TOPIC -m "$(qilu-edge mqtt sign TOPIC '{...}')"` (valid 5 minutes,
    once). Needs read access to the key (root); [mqtt] accept_door_commands makes the key."""
    from edge.core.bus import command_key, command_key_path, sign_command

    config = load(config_path)
    key = command_key(config)
    if key is None:
        raise click.ClickException(
            f"no MQTT command key at {command_key_path(config)}: set [mqtt]"
            " accept_door_commands = true and restart the box (it makes the key)"
        )
    try:
        data = json.loads(command)
    except ValueError as e:
        raise click.ClickException(f"COMMAND is not JSON: {e}") from e
    click.echo(sign_command(key, topic_, data).decode())


@main.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Validate a config file and exit (non-zero with the bad keys named)."""
    config = load(config_path)
    click.echo(f"{config_path}: ok ({len(config.devices())} devices)")


@main.command()
@click.option(
    "--dir",
    "work_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/demo"),
    show_default=True,
    help="Demo config and data.",
)
@click.option(
    "--reset/--keep",
    default=True,
    show_default=True,
    help="Start from an empty demo folder (the default: every run is a fresh demo).",
)
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: Ctrl-C).")
@click.option("--mqtt-port", type=int, default=1883, show_default=True)
@click.option("--port", type=int, default=8080, show_default=True, help="HTTP API port.")
@click.pass_context
def demo(
    ctx: click.Context,
    work_dir: Path,
    reset: bool,
    seconds: float | None,
    mqtt_port: int,
    port: int,
) -> None:
    """Run a demo box with simulated devices and show it working end to end."""
    # OpenCV's own log (e.g. "setPreferableTarget ... not supported") must not be the first
    # thing a newcomer reads: errors only. Set before cv2 is first imported.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if "cv2" in sys.modules:  # imported already: tell it directly
        cv2 = sys.modules["cv2"]
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    from edge.demo import reset as empty
    from edge.demo import run_demo

    logs.setup(ctx.obj["log_level"] or "WARNING", ctx.obj["log_json"])
    if reset:
        empty(work_dir)
        click.secho(f"Demo in {work_dir}: started afresh on every run (--keep to reuse it).",
                    bold=True)  # fmt: skip
    asyncio.run(run_demo(work_dir, seconds=seconds, mqtt_port=mqtt_port, api_port=port))


def _add_capability_commands() -> None:
    """Each capability declares its commands (``Feature.cli``); they join the group here."""
    for feature in FEATURES:
        for ref in feature.cli:
            main.add_command(resolve(ref))


if __name__ == "__main__":
    _add_capability_commands()
    main()
else:
    _add_capability_commands()
