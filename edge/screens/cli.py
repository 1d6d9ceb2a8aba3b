"""``qilu-edge screens ...``: manage screens through the running box's staff API (so every
change reaches the player pages at once), using the first staff token of the config."""

from __future__ import annotations

import json
import mimetypes
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from edge.core.cli import DEFAULT_CONFIG, load

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Box config file (default: as for `qilu-edge run`).",
)


def _call(
    config_path: Path | None,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    ctype: str = "application/json",
) -> Any:
    cfg = load(config_path or Path(DEFAULT_CONFIG))
    token = cfg.api.client_token()  # a plain token from the config, else QILU_EDGE_TOKEN
    if not token:
        raise click.ClickException(
            "no staff token: add [[api.tokens]] to the config, or set QILU_EDGE_TOKEN when the"
            " config keeps only token_sha256"
        )
    host = "127.0.0.1" if cfg.api.host in ("0.0.0.0", "") else cfg.api.host
    url = f"http://{host}:{cfg.api.port}{path}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raise click.ClickException(f"{method} {path}: {e.code} {e.read().decode()}") from e
    except urllib.error.URLError as e:
        raise click.ClickException(f"box API at {url} not reachable: {e.reason}") from e


def _echo(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2))


def _csv(v: str | None) -> list[str]:
    return [x for x in (v or "").split(",") if x]


@click.group()
def screens() -> None:
    """Publicity screens: content, playlists, schedules, emergency broadcasts, proof of play."""


@screens.command("list")
@config_option
def list_(config_path: Path | None) -> None:
    """Screens, whether their player reports in, and what each plays now."""
    _echo(_call(config_path, "GET", "/api/v1/screens"))


@screens.command("add-screen")
@config_option
@click.argument("screen_id")
@click.option("--name", default="")
@click.option("--tags", default="", help="Comma-separated.")
def add_screen(config_path: Path | None, screen_id: str, name: str, tags: str) -> None:
    """Add a screen (beside the [[screens]] of the config)."""
    _echo(
        _call(
            config_path,
            "POST",
            "/api/v1/screens",
            {"id": screen_id, "name": name, "tags": _csv(tags)},
        )
    )


@screens.command("key")
@config_option
@click.argument("screen_id")
@click.option(
    "--base",
    default=None,
    help="The box address as the screen reaches it, e.g. http://192.168.1.10:8080"
    " (default: the address this command calls).",
)
@click.option("--revoke", is_flag=True, help="Remove the key: the screen stops playing.")
def key(config_path: Path | None, screen_id: str, base: str | None, revoke: bool) -> None:
    """Provision (or rotate) a screen's device key; prints the player address once.

    Open that address (it carries the key after '#') in the screen's browser once, or set it
    as its kiosk start page. The box keeps only a hash: lost keys are replaced, not shown."""
    sid = urllib.parse.quote(screen_id, safe="")
    if revoke:
        _echo(_call(config_path, "DELETE", f"/api/v1/screens/{sid}/key"))
        return
    q = f"?{urllib.parse.urlencode({'base': base})}" if base else ""
    got = _call(config_path, "POST", f"/api/v1/screens/{sid}/key{q}")
    click.echo(f"screen {screen_id}: player address (shown once, keep it private):")
    click.echo(got["player_url"])
    import io

    import qrcode

    qr = qrcode.QRCode(border=1)
    qr.add_data(got["player_url"])
    out = io.StringIO()
    qr.print_ascii(out=out)
    click.echo(out.getvalue())


@screens.command("content")
@config_option
@click.argument("content_id")
@click.option("--title", required=True)
@click.option("--body", default=None, help="Text of an HTML notice.")
@click.option("--url", default=None, help="A web page to show.")
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An image or video to upload.",
)
@click.option("--duration", type=float, default=10.0, show_default=True, help="Seconds.")
def content(
    config_path: Path | None,
    content_id: str,
    title: str,
    body: str | None,
    url: str | None,
    file_: Path | None,
    duration: float,
) -> None:
    """Add or replace a content item: a notice (--body), a web page (--url) or a file."""
    if file_ is not None:
        mime = mimetypes.guess_type(file_.name)[0] or "application/octet-stream"
        q = urllib.parse.urlencode({"title": title, "duration_s": duration})
        _echo(
            _call(
                config_path,
                "PUT",
                f"/api/v1/screens/content/{content_id}/file?{q}",
                raw=file_.read_bytes(),
                ctype=mime,
            )
        )
        return
    kind = "url" if url else "html"
    _echo(
        _call(
            config_path,
            "POST",
            "/api/v1/screens/content",
            {
                "id": content_id,
                "kind": kind,
                "title": title,
                "body": body,
                "url": url,
                "duration_s": duration,
            },
        )
    )


@screens.command("playlist")
@config_option
@click.argument("playlist_id")
@click.argument("content_ids", nargs=-1, required=True)
@click.option("--name", default="")
def playlist(
    config_path: Path | None, playlist_id: str, content_ids: tuple[str, ...], name: str
) -> None:
    """Add or replace a playlist of content items, played in order."""
    _echo(
        _call(
            config_path,
            "POST",
            "/api/v1/screens/playlists",
            {
                "id": playlist_id,
                "name": name or playlist_id,
                "items": [{"content_id": c} for c in content_ids],
            },
        )
    )


@screens.command("schedule")
@config_option
@click.argument("entry_id")
@click.argument("playlist_id")
@click.option("--screens", "screen_ids", default="", help="Comma-separated screen ids.")
@click.option("--tags", default="", help="Comma-separated screen tags.")
@click.option("--start", default="00:00", show_default=True, help="Local HH:MM.")
@click.option("--end", default="00:00", show_default=True, help="Before start: past midnight.")
@click.option("--weekdays", default="1,2,3,4,5,6,7", show_default=True, help="1 = Monday.")
@click.option("--from", "date_from", default=None, help="YYYY-MM-DD")
@click.option("--to", "date_to", default=None, help="YYYY-MM-DD (inclusive)")
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--layout", type=click.Choice(["full", "standard", "side"]), default=None,
              help="The page layout while this entry plays (default: the screen's).")
def schedule(
    config_path: Path | None,
    entry_id: str,
    playlist_id: str,
    screen_ids: str,
    tags: str,
    start: str,
    end: str,
    weekdays: str,
    date_from: str | None,
    date_to: str | None,
    priority: int,
    layout: str | None,
) -> None:
    """Add or replace a schedule entry (dayparting window for a playlist)."""
    _echo(
        _call(
            config_path,
            "POST",
            "/api/v1/screens/schedules",
            {
                "id": entry_id,
                "playlist_id": playlist_id,
                "screens": _csv(screen_ids),
                "tags": _csv(tags),
                "start": start,
                "end": end,
                "weekdays": [int(d) for d in _csv(weekdays)],
                "date_from": date_from,
                "date_to": date_to,
                "priority": priority,
                "layout": layout,
            },
        )
    )


@screens.command("emergency")
@config_option
@click.argument("title")
@click.option("--body", default="")
@click.option("--minutes", type=float, default=30, show_default=True)
@click.option("--screens", "screen_ids", default="", help="Comma-separated; default: all.")
@click.option("--tags", default="")
@click.option("--level", type=click.Choice(["critical", "warning", "info"]), default="critical")
def emergency(
    config_path: Path | None,
    title: str,
    body: str,
    minutes: float,
    screen_ids: str,
    tags: str,
    level: str,
) -> None:
    """Broadcast an emergency notice now; it takes over the screens until it expires."""
    _echo(
        _call(
            config_path,
            "POST",
            "/api/v1/screens/emergencies",
            {
                "title": title,
                "body": body,
                "minutes": minutes,
                "screens": _csv(screen_ids),
                "tags": _csv(tags),
                "level": level,
            },
        )
    )


@screens.command("cancel")
@config_option
@click.argument("emergency_id")
def cancel(config_path: Path | None, emergency_id: str) -> None:
    """End an emergency broadcast; the schedule resumes."""
    _echo(_call(config_path, "POST", f"/api/v1/screens/emergencies/{emergency_id}/cancel"))


@screens.command("plays")
@config_option
@click.argument("screen_id")
@click.option("-n", "--limit", type=int, default=20, show_default=True)
def plays(config_path: Path | None, screen_id: str, limit: int) -> None:
    """The latest proof-of-play records of a screen."""
    _echo(_call(config_path, "GET", f"/api/v1/screens/{screen_id}/plays?limit={limit}"))
