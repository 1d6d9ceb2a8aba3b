"""What the capabilities' commands share: the ``-c/--config`` option, loading the box's config
and opening its store beside a running daemon.

The box's config model is assembled by the composition root (edge/features.py), which puts
its loader in the root command's context (``ctx.obj["load_config"]``); a capability's
command reaches it through :func:`load` without importing the composition root.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from edge.core.config import ConfigError
from edge.core.store import Store

DEFAULT_CONFIG = os.environ.get("QILU_EDGE_CONFIG", "/etc/qilu-edge/edge.toml")
LOADER = "load_config"  # key of the config loader in the root command's ctx.obj
config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Box config file (env QILU_EDGE_CONFIG).",
)


def config_loader() -> Callable[[Path], Any]:
    """The box's config loader (raises ConfigError), from the root command's context."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    loader: Callable[[Path], Any] | None = (obj or {}).get(LOADER)
    if loader is None:
        raise click.ClickException("run this command through `qilu-edge` (no config loader)")
    return loader


def load(config_path: Path) -> Any:
    """The box's validated config (typed per section: ``config.section(ItsConfig)``)."""
    loader = config_loader()
    try:
        return loader(config_path)
    except ConfigError as e:
        raise click.ClickException(f"invalid config:\n{e}") from e


@contextmanager
def open_store(config_path: Path) -> Iterator[tuple[Any, Store]]:
    """The box's config and store for a command run beside the daemon (SQLite WAL)."""
    config = load(config_path)
    store = Store(config.db_path, box_id=config.box.id)
    try:
        yield config, store
    finally:
        store.close()
