"""Installer commands: ``discover``, ``modbus scan``, ``doctor``, ``update``."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from edge.core.cli import config_loader, config_option


@click.command()
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds to listen.")
@click.option(
    "--interface",
    "interfaces",
    multiple=True,
    help="IPv4 address of an interface to browse on (repeatable; default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array for tools.")
def discover(timeout: float, interfaces: tuple[str, ...], as_json: bool) -> None:
    """List Qilu boxes on the LAN (zeroconf _qilu-edge._tcp)."""
    from edge.installer.discovery import discover as browse

    boxes = asyncio.run(browse(timeout, interfaces or None))
    if as_json:
        click.echo(json.dumps([b.as_dict() for b in boxes], ensure_ascii=False))
        return
    if not boxes:
        click.echo(f"no boxes found in {timeout:g} s")
        return
    click.echo(f"{'BOX':<20} {'COMMUNITY':<22} {'VERSION':<10} URL")
    for b in boxes:
        click.echo(f"{b.box_id:<20} {b.community:<22} {b.version:<10} {b.url()}/installer/")


@click.group()
def modbus() -> None:
    """Modbus buses: find relay boards."""


@modbus.command("scan")
@click.option("--host", help="Modbus TCP device or gateway address.")
@click.option("--port", type=int, default=502, show_default=True)
@click.option("--serial", help="RS-485 serial port, e.g. /dev/ttyUSB0.")
@click.option("--baud", type=int, default=9600, show_default=True)
@click.option("--units", default="1-247", show_default=True, help="Unit ids: 1-247 or 1,3,5-9.")
@click.option("--timeout", type=float, default=0.3, show_default=True, help="Per unit, seconds.")
@click.option("--json", "as_json", is_flag=True)
def modbus_scan(
    host: str | None,
    port: int,
    serial: str | None,
    baud: int,
    units: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Ask every unit id on a bus and print config snippets for those that answer."""
    from dataclasses import asdict

    from edge.installer.modbus_scan import ScanError, scan, snippet

    ids = parse_units(units)
    live = sys.stderr.isatty()
    shown: set[int] = set()

    def progress(n: int, total: int, found: list) -> None:
        # On stderr, so stdout stays a config snippet to paste (or JSON).
        for u in found:
            if u.unit not in shown:
                shown.add(u.unit)
                click.echo(("\r" if live else "") + f"  found unit {u.unit}: {u.detail}", err=True)
        if live:
            click.echo(f"\r  unit {n}/{total} · found {len(found)} so far ", nl=False, err=True)
        elif n % 16 == 0 or n == total:
            click.echo(f"  unit {n}/{total} · found {len(found)} so far", err=True)

    try:
        job = scan(ids, host=host, port=port, serial=serial, baud=baud, per_unit_s=timeout,
                   progress=progress)  # fmt: skip
        found = asyncio.run(job)
        if live:
            click.echo(err=True)
    except ScanError as e:
        raise click.ClickException(str(e)) from e
    if as_json:
        click.echo(json.dumps([asdict(u) for u in found]))
        return
    where = serial or f"{host}:{port}"
    click.echo(f"# {len(found)} unit(s) answered on {where} (asked {len(ids)} ids)")
    for u in found:
        click.echo(f"# unit {u.unit}: {u.detail}")
        click.echo(snippet(u, host=host, port=port, serial=serial, baud=baud) + "\n")


def parse_units(spec: str) -> range | list[int]:
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            elif part:
                out.append(int(part))
        except ValueError as e:
            raise click.BadParameter(
                f"not a unit id or range: {part!r}", param_hint="--units"
            ) from e
    if not out or min(out) < 0 or max(out) > 247:
        raise click.BadParameter("unit ids are 0..247", param_hint="--units")
    return out


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON object.")
@click.option("--click", "click_doors", is_flag=True, help="Pulse each door relay (audible).")
@click.option(
    "--lang",
    type=click.Choice(["zh", "en"]),
    default=None,
    help="Language of details and hints: zh (default) or en; default en when LANG/LC_ALL is en_*.",
)
def doctor(config_path: Path, as_json: bool, click_doors: bool, lang: str | None) -> None:
    """Commissioning checks with pass/warn/fail and fix hints; exit 1 on any fail.

    \b
    Language: details and fix hints in Chinese (中文) by default; English with --lang en or
    when the locale is English (LANG=en_US.UTF-8, LC_ALL=en_*). --json carries both: detail
    and hint in the chosen language, detail_en/detail_zh and hint_en/hint_zh, plus stable
    id, status, detail_key and hint_key for scripts.

    \b
    Checks, in this order (each FAIL or WARN says how to fix it):
      config           the file parses and validates (typed, with line numbers)
      database         the store opens, integrity_check, schema up to date
      disk             free space at the data folder, and that it is not read-only
      broker           the MQTT broker answers at [mqtt] host:port
      door:<id>        each door: driver online; --click pulses its relay
      camera:<id>      each camera: a frame arrives, its size and rate, a face on it
      screen:<id>      each screen: display answers, its player page is connected
      models           face model files present and matching the manifest
      face_doors       the face threshold for the enrolled residents at the stranger target
      face_templates   templates embedded as faces are now ([faces] flip, model file)
      face_load        the running box keeps up with its face doors (installer page)
      provisioned      the box has a cloud identity (qilu-edge provision)
      cloud            the cloud answers a signed request (and signs its answers)
      transport        the cloud link is https with TLS verified (not off the loopback)
      clock            the box clock agrees with the cloud's
      relay            residents' pages reach the box through the cloud
      sync_quarantine  no records refused by the cloud
      sync_tasks       no sync task had to be restarted (installer page)

    \b
    Example:
      qilu-edge doctor -c /etc/qilu-edge/edge.toml
      qilu-edge doctor -c edge.toml --click --json > report.json
      qilu-edge doctor -c edge.toml --lang en
    """
    from edge.core.i18n import lang_from_env
    from edge.installer.doctor import Doctor, format_row, summary

    lang_ = lang_from_env() if lang is None else ("en" if lang == "en" else "zh")
    doc = Doctor(config_path=config_path, click=click_doors, loader=config_loader())
    colour = sys.stdout.isatty()
    on_result = None if as_json else (lambda r: click.echo(format_row(r, colour, lang_)))
    if not as_json:
        click.echo(f"qilu-edge doctor: {config_path}")
    report = asyncio.run(doc.run(on_result))
    if as_json:
        click.echo(json.dumps(report.as_dict(lang_), ensure_ascii=False, indent=2))
    else:
        click.echo(summary(report, lang_))
    sys.exit(0 if report.ok else 1)


@click.group()
def update() -> None:
    """Update this box (new venv, atomic switch, rollback if unhealthy)."""


def _updater(
    root: Path,
    restart_cmd: str,
    health_url: str,
    health_timeout: float,
    settle: float,
    venv_arg: tuple[str, ...],
    pip_arg: tuple[str, ...],
    models_dir: Path | None,
) -> Any:
    from edge.installer.update import Updater

    return Updater(
        root=root,
        restart_cmd=shlex.split(restart_cmd),
        health_url=health_url,
        health_timeout_s=health_timeout,
        settle_s=settle,
        venv_args=list(venv_arg),
        pip_args=list(pip_arg),
        models_dir=None if models_dir is None or str(models_dir) in ("", ".") else models_dir,
        say=lambda m: click.echo(f"  {m}"),
    )


_update_options = [
    click.option(
        "--root",
        type=click.Path(path_type=Path),
        default=Path("/opt/qilu-edge"),
        show_default=True,
        help="Install root holding venvs/ and current.",
    ),
    click.option("--restart-cmd", default="systemctl restart qilu-edge.service", show_default=True),
    click.option("--health-url", default="http://127.0.0.1:8080/api/v1/status", show_default=True),
    click.option("--health-timeout", type=float, default=90.0, show_default=True),
    click.option(
        "--settle",
        type=float,
        default=5.0,
        show_default=True,
        help="Seconds the new daemon must stay healthy.",
    ),
    click.option("--venv-arg", multiple=True, help="Extra `python -m venv` argument."),
    click.option("--pip-arg", multiple=True, help="Extra `pip install` argument."),
    click.option(
        "--models-dir",
        type=click.Path(path_type=Path),
        default=Path("/var/lib/qilu-edge/models"),
        show_default=True,
        help="Face models ([faces] model_dir): the new version's are fetched and verified"
        " here before the switch; '' skips.",
    ),
]


def _with_update_options(fn: Any) -> Any:
    for opt in reversed(_update_options):
        fn = opt(fn)
    return fn


@update.command("apply")
@click.argument("url")
@click.option("--sha256", required=True, help="Expected sha256 of the wheel (64 hex digits).")
@_with_update_options
def update_apply(url: str, sha256: str, **opts: object) -> None:
    """Install the wheel at URL (http(s), file:// or a path) and switch to it if healthy."""
    from edge.installer.update import UpdateError

    up = _updater(**opts)  # type: ignore[arg-type]
    try:
        result = up.update(url, sha256)
    except UpdateError as e:
        raise click.ClickException(f"update refused, nothing changed: {e}") from e
    click.echo(f"{result.outcome}: running {result.version} ({result.detail})")
    sys.exit(0 if result.outcome in ("updated", "unchanged") else 2)


REQUEST_FILE = Path("/var/lib/qilu-edge/update-request.json")


@update.command("request")
@click.argument("version")
@click.option("--request", "request_file", type=click.Path(path_type=Path),
              default=REQUEST_FILE, show_default=True,
              help="Where the root update service (qilu-edge-update.path) looks.")  # fmt: skip
@click.option("--url", envvar="QILU_UPDATE_URL", help="The wheel [env QILU_UPDATE_URL].")
@click.option("--sha256", envvar="QILU_UPDATE_SHA256", help="[env QILU_UPDATE_SHA256]")
def update_request(version: str, request_file: Path, url: str | None, sha256: str | None) -> None:
    """Ask the root update service for VERSION: the box daemon's update hook ([sync]
    update_command, set by install.sh). The daemon runs sandboxed as qilu-edge and can write
    neither /opt/qilu-edge nor restart itself; it only writes the request file, which starts
    qilu-edge-update.service (`qilu-edge update run-request`)."""
    import os
    import re

    if not url or not sha256:
        raise click.ClickException(
            f"update to {version}: the roll-out gave no wheel url and sha256; the root update"
            " service installs only a checked wheel (give both when creating the roll-out)"
        )
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise click.ClickException("sha256 must be 64 hex digits")
    body = json.dumps({"version": version, "url": url, "sha256": sha256.lower()})
    tmp = request_file.with_name(f".{request_file.name}.tmp{os.getpid()}")
    tmp.write_text(body)
    os.replace(tmp, request_file)  # the path unit sees a whole file or none
    click.echo(f"asked the root update service (qilu-edge-update.path) for {version}")


@update.command("run-request")
@click.option("--request", "request_file", type=click.Path(path_type=Path),
              default=REQUEST_FILE, show_default=True)  # fmt: skip
@_with_update_options
def update_run_request(request_file: Path, **opts: object) -> None:
    """Install the version the box daemon asked for (qilu-edge-update.service, as root). The
    request is moved aside first: a failing update is reported once, not retried in a loop."""
    import os

    from edge.installer.update import UpdateError

    taken = request_file.with_name(request_file.name + ".taken")
    try:
        os.replace(request_file, taken)
    except FileNotFoundError:
        click.echo("no update request")
        return
    try:  # written by the unprivileged daemon: never follow a link it may have put there
        fd = os.open(taken, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            req = json.loads(f.read(65536))
        url, sha256, version = str(req["url"]), str(req["sha256"]), str(req["version"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise click.ClickException(f"update request {taken} unreadable: {e}") from e
    click.echo(f"update to {version} requested by the box daemon: {url}")
    try:
        result = _updater(**opts).update(url, sha256)  # type: ignore[arg-type]
    except UpdateError as e:
        raise click.ClickException(f"update refused, nothing changed: {e}") from e
    click.echo(f"{result.outcome}: running {result.version} ({result.detail})")
    sys.exit(0 if result.outcome in ("updated", "unchanged") else 2)


@update.command("rollback")
@_with_update_options
def update_rollback(**opts: object) -> None:
    """Switch back to the previous version."""
    from edge.installer.update import UpdateError

    try:
        result = _updater(**opts).rollback()  # type: ignore[arg-type]
    except UpdateError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{result.outcome}: running {result.version} ({result.detail})")


@update.command("status")
@click.option(
    "--root", type=click.Path(path_type=Path), default=Path("/opt/qilu-edge"), show_default=True
)
def update_status(root: Path) -> None:
    """The running version and the last update's outcome."""
    from edge.installer.update import Updater

    up = Updater(root=root)
    state = root / "update-state.json"
    click.echo(f"current: {up.current_version() or '(not installed)'}")
    if state.exists():
        click.echo(state.read_text())
