"""The demo kit: what a capability's demo step gets (:class:`Demo`) and how it narrates
(:func:`say`).

A step is ``async def step_x(d: Demo) -> None``, declared in its feature (``Feature.demo``);
``qilu-edge demo`` (edge/demo.py) runs the steps in the order their ``after`` names give.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from edge.core.box import Box


@dataclass
class Demo:
    box: Box
    api: str  # http://127.0.0.1:PORT
    token: str
    mqtt_port: int
    work_dir: Path
    # Runs a `qilu-edge` command line in this process, e.g. d.cli(["portal", "code", ...]).
    cli: Callable[[list[str]], object] = lambda args: None
    seen: list[str] = field(default_factory=list)  # topics seen on the bus
    # What the closing block tells a newcomer to open ("phone", "screen", ...): steps fill it.
    links: dict[str, str] = field(default_factory=dict)
    # Background work a step leaves running until the demo ends (cancelled by run_demo).
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


Step = Callable[[Demo], Awaitable[None]]


def say(title: str, detail: str = "") -> None:
    click.secho(f"\n▶ {title}", fg="cyan", bold=True)
    if detail:
        click.echo(detail)
