"""``qilu-cloudsync``: the central service for a whole city's boxes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import signal
import ssl
from pathlib import Path

import click
from aiohttp import web

from cloudsync.config import ConfigError, load_config
from cloudsync.retention import RetentionConfig
from common import logs
from common.version import __version__

DB_HELP = "SQLite file path (default) or postgresql://user@host:port/db (env QILU_CLOUD_DB)."
db_option = click.option(
    "--db",
    default=lambda: os.environ.get("QILU_CLOUD_DB", "var/cloud/cloud.db"),
    show_default="var/cloud/cloud.db",
    help=DB_HELP,
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=lambda: os.environ.get("QILU_CLOUD_CONFIG") or None,
    help="Cloud config file (TOML: [retention]...; env QILU_CLOUD_CONFIG); defaults without"
    " one (config/cloud.example.toml).",
)
log = logging.getLogger(__name__)


def _config(path: Path | None) -> RetentionConfig:
    try:
        return load_config(path).retention
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qilu-cloudsync")
@click.option("--log-level", default="INFO", show_default=True)
def main(log_level: str) -> None:
    """Qilu cloud sync service: boxes, areas, content, reports and the ops API."""
    logs.setup(log_level)


def _serve(
    db: str,
    blobs: Path,
    host: str,
    port: int,
    reuse_port: bool,
    tls: tuple | None,
    poll_s: float,
    max_record: int = 0,
    read_db: str | None = None,
    retention: RetentionConfig | None = None,
) -> None:
    from cloudsync.app import build

    ssl_ctx = None
    if tls is not None:  # built in each worker: an SSLContext does not cross processes
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(*tls)

    async def factory() -> web.Application:
        extra = {"max_record_chars": max_record} if max_record else {}
        return await build(
            db, blobs, feed_poll_s=poll_s, read_db=read_db, retention=retention, **extra
        )

    web.run_app(
        factory(),
        host=host,
        port=port,
        reuse_port=reuse_port,
        ssl_context=ssl_ctx,
        access_log=None,
        print=None,
        shutdown_timeout=2.0,
    )


@main.command()
@db_option
@click.option(
    "--blobs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/cloud/blobs"),
    show_default=True,
    help="Content blob folder.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes sharing the port (SO_REUSEPORT); use with PostgreSQL.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None)
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--feed-poll",
    default=0.5,
    show_default=True,
    help="Long-poll re-check interval (s) when the database cannot notify (SQLite).",
)
@click.option(
    "--master-key-file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Derive box secrets from this key (>= 32 bytes, mode 0600): the database then holds"
    " no usable secret (env QILU_CLOUD_MASTER_KEY_FILE).",
)
@click.option(
    "--relay-domain",
    default=None,
    help="Serve each box's resident pages at <box id>.<this domain> (wildcard DNS and"
    " certificate): one browser origin per box (env QILU_CLOUD_RELAY_DOMAIN).",
)
@click.option(
    "--relay-same-origin-unsafe",
    is_flag=True,
    help="Without --relay-domain, still relay residents' box pages on the cloud's own origin,"
    " which the ops console shares (a compromised box could reach console sessions): demos"
    " and tests only (env QILU_CLOUD_RELAY_SAME_ORIGIN_UNSAFE=1).",
)
@click.option(
    "--trusted-proxy",
    multiple=True,
    help="Address of a reverse proxy in front of the cloud whose X-Forwarded-For is believed"
    " (per-resident limits on the relayed pages); repeatable.",
)
@click.option(
    "--read-db",
    default=lambda: os.environ.get("QILU_CLOUD_READ_DB") or None,
    help="A PostgreSQL streaming replica (postgresql://...) the ops lists and statistics read"
    " from; writes always go to --db (env QILU_CLOUD_READ_DB).",
)
@click.option(
    "--refuse-signature-v1",
    is_flag=True,
    help="Refuse box requests signed with version 1 (over the inflated body: boxes before"
    " 2026-11) once every box is updated (env QILU_CLOUD_REFUSE_SIG_V1=1).",
)
@click.option(
    "--max-record-kb",
    default=0,
    help="Refuse record payloads above this (KB of characters; 0: the protocol's 1,000).",
)
@config_option
def serve(
    db: str,
    blobs: Path,
    host: str,
    port: int,
    workers: int,
    tls_cert: str | None,
    tls_key: str | None,
    feed_poll: float,
    master_key_file: str | None,
    relay_domain: str | None,
    relay_same_origin_unsafe: bool,
    trusted_proxy: tuple[str, ...],
    refuse_signature_v1: bool,
    max_record_kb: int,
    read_db: str | None,
    config_path: Path | None,
) -> None:
    """Serve the box sync API and the ops API; partitions and retention run on a timer."""
    retention = _config(config_path)
    if refuse_signature_v1:  # read by every worker's app (cloudsync/app.py)
        os.environ["QILU_CLOUD_REFUSE_SIG_V1"] = "1"
    if relay_domain:  # read by every worker's relay (cloudsync/relay.py)
        os.environ["QILU_CLOUD_RELAY_DOMAIN"] = relay_domain
    if relay_same_origin_unsafe:
        os.environ["QILU_CLOUD_RELAY_SAME_ORIGIN_UNSAFE"] = "1"
    if not (relay_domain or os.environ.get("QILU_CLOUD_RELAY_DOMAIN")):
        log.warning(
            "no --relay-domain: residents' box pages (/r/) are %s",
            "served on the console's own origin (--relay-same-origin-unsafe: demos and tests"
            " only)" if os.environ.get("QILU_CLOUD_RELAY_SAME_ORIGIN_UNSAFE") == "1"
            else "not served (they would share the console's origin); start with"
            " --relay-domain <domain> (wildcard DNS and certificate), docs/deploy.md",
        )
    if trusted_proxy:
        os.environ["QILU_CLOUD_TRUSTED_PROXIES"] = ",".join(trusted_proxy)
    if master_key_file:  # read by every worker's app (cloudsync/box_keys.py)
        os.environ["QILU_CLOUD_MASTER_KEY_FILE"] = master_key_file
    tls = (tls_cert, tls_key) if tls_cert else None
    if workers > 1 and not db.startswith(("postgres://", "postgresql://")):
        # Workers meet only in the database (feed wake-ups, the relay bus): PostgreSQL's.
        raise click.ClickException("--workers > 1 needs a PostgreSQL --db")
    # Migrate once before the workers start, so they never race on the schema.
    asyncio.run(_migrate(db))
    log.info(
        "qilu-cloudsync %s on %s:%s, %d worker(s), db %s",
        __version__,
        host,
        port,
        workers,
        db.split("@")[-1],
    )
    if workers <= 1:
        _serve(
            db, blobs, host, port, False, tls, feed_poll, max_record_kb * 1000, read_db, retention
        )
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_serve,
            args=(
                db,
                blobs,
                host,
                port,
                True,
                tls,
                feed_poll,
                max_record_kb * 1000,
                read_db,
                retention,
            ),
        )
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()

    def stop(signum: int, frame: object) -> None:  # pass SIGTERM / Ctrl-C on to the workers
        for proc in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for proc in procs:
        proc.join()


async def _migrate(db: str) -> list[int]:
    from cloudsync.storage import open_storage

    storage = await open_storage(db, migrate=False)
    try:
        return await storage.migrate()
    finally:
        await storage.close()


@main.command()
@db_option
def migrate(db: str) -> None:
    """Apply pending schema migrations."""
    click.echo(f"applied: {asyncio.run(_migrate(db)) or 'nothing (up to date)'}")


@main.command("ops-user")
@db_option
@click.option("--name", required=True)
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
@click.option("--area", default=None, help="Area id the user is scoped to (default: everything).")
@click.option("--rotate", is_flag=True, help="Give an existing user a new token (the old one "
              "stops working) and print it.")  # fmt: skip
@click.option("--remove", is_flag=True, help="Delete an existing user (its token stops working).")
def ops_user(db: str, name: str, role: str, area: str | None, rotate: bool, remove: bool) -> None:
    """Create an ops user and print its bearer token (shown once); or rotate / remove one."""
    from cloudsync.app import token_hash
    from cloudsync.storage import StorageError, open_storage

    if rotate and remove:
        raise click.UsageError("--rotate or --remove, not both")
    token = secrets.token_urlsafe(24)

    async def run() -> None:
        storage = await open_storage(db)
        try:
            if rotate:
                await storage.ops_user_set_token(name, token_hash(token))
            elif remove:
                await storage.ops_user_remove(name)
            else:
                await storage.ops_user_add(name, token_hash(token), role, area)
        finally:
            await storage.close()

    try:
        asyncio.run(run())
    except StorageError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"removed ops user {name}" if remove else token)


@main.command("ops-password")
@db_option
@click.option("--name", required=True, help="The ops user (made with `ops-user`).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (scripts) instead of asking twice.",
)
@click.option(
    "--totp/--no-totp",
    default=False,
    show_default=True,
    help="Also require a one-time code from an authenticator app; prints its secret and URI.",
)
def ops_password(db: str, name: str, password_stdin: bool, totp: bool) -> None:
    """Set an ops user's console password (and optional TOTP); ends their sessions."""
    from cloudsync.console.auth import MIN_PASSWORD, hash_password, new_totp_secret, totp_uri
    from cloudsync.storage import StorageError, open_storage

    if password_stdin:
        password = click.get_text_stream("stdin").readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"password: at least {MIN_PASSWORD} characters")
    secret = new_totp_secret() if totp else None

    async def run() -> None:
        storage = await open_storage(db)
        try:
            await storage.ops_user_set_password(name, hash_password(password), secret)
        finally:
            await storage.close()

    try:
        asyncio.run(run())
    except StorageError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"password set for {name}; sign in at /console/")
    if secret:
        click.echo(f"TOTP secret: {secret}")
        click.echo(f"TOTP URI (scan as a QR code): {totp_uri(secret, name)}")


@main.command("text-model")
@db_option
@click.option(
    "--blobs",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/cloud/blobs"),
    show_default=True,
    help="Content blob folder (the serving cloud's --blobs).",
)
@click.option("--area", default=None, help="Only corrections from this area's boxes (area id);"
              " the artefact goes to its content library (default: everything).")  # fmt: skip
@click.option("--ship-area", multiple=True, help="Queue the new model to this area's boxes.")
@click.option("--ship-box", multiple=True, help="Queue the new model to this box.")
@click.option("--by", default="retrain", show_default=True, help="Name in the content library.")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Train on this folder's labelled CSVs instead of the shipped"
              " corpus (a curated or regional corpus).")  # fmt: skip
def text_model(db: str, blobs: Path, area: str | None, ship_area: tuple[str, ...],
               ship_box: tuple[str, ...], by: str, corpus: Path | None) -> None:
    """Retrain the report text model from every box's staff corrections + the shipped corpus;
    store it (versioned, by SHA-256) and optionally ship it to boxes over the feed (each box
    adopts it only if it is not worse on its test split). Prints one JSON line."""
    from cloudsync import textmodels
    from cloudsync.blobs import BlobStore
    from cloudsync.storage import StorageError, open_storage

    async def run() -> dict:
        storage = await open_storage(db)
        try:
            scope = "/"
            if area:
                paths, _ = await storage.target_paths([area], [])
                if area not in paths:
                    raise click.ClickException(f"--area: no area {area!r}")
                scope = paths[area]
            built = await textmodels.build(storage, BlobStore(blobs), scope, by, corpus)
            if ship_area or ship_box:
                built["shipped_to"] = await textmodels.ship(
                    storage, built, by, list(ship_area), list(ship_box)
                )
            return built
        finally:
            await storage.close()

    try:
        click.echo(textmodels.dumps(asyncio.run(run())))
    except (StorageError, textmodels.BuildError) as e:
        raise click.ClickException(str(e)) from e


@main.group()
def retention() -> None:
    """Record partitions and retention per record class (docs/deploy.md)."""


@retention.command("run")
@db_option
@config_option
@click.option("--dry-run", is_flag=True, help="List what would be created, exported and dropped.")
def retention_run(db: str, config_path: Path | None, dry_run: bool) -> None:
    """Create months ahead, export and drop records past their class's keep_days, once."""
    from cloudsync.retention import RetentionError, maintain
    from cloudsync.storage import open_storage

    cfg = _config(config_path)
    say = click.echo

    async def run() -> list:
        storage = await open_storage(db)
        try:
            return await maintain(storage, cfg, dry_run=dry_run, progress=say)
        finally:
            await storage.close()

    try:
        steps = asyncio.run(run())
    except RetentionError as e:
        raise click.ClickException(str(e)) from e
    rows = sum(s.rows for s in steps if s.action != "create")
    verb = "would go" if dry_run else "exported and removed"
    click.echo(f"{'dry run: ' if dry_run else ''}{len(steps)} step(s); {rows:,} rows {verb}")
