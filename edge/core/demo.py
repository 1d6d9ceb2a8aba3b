"""The demo kit: what a capability's demo step gets (:class:`Demo`) and how it narrates
(:func:`say`).

A step is ``async def step_x(d: Demo) -> None``, declared in its feature (``Feature.demo``);
``qilu-edge demo`` (edge/demo.py) runs the steps in the order their ``after`` names give.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
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


# Every process a demo step starts; run_demo stops them on the way out (stop_children).
CHILDREN: list[asyncio.subprocess.Process] = []
_PR_SET_PDEATHSIG = 1
# Looked up before any fork: the child only calls it (no imports, no allocation there).
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent(parent: int) -> None:
    # Runs in the child between fork and exec: the kernel sends it SIGTERM when the demo
    # process dies, even when no Python cleanup can run (SIGKILL, a crash, an OOM kill).
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the demo died before the line above took effect
        os._exit(1)


async def spawn(*args: str, **kwargs: object) -> asyncio.subprocess.Process:
    """Start a child process that stops with the demo, however the demo ends."""
    parent = os.getpid()
    proc = await asyncio.create_subprocess_exec(
        *args, preexec_fn=lambda: _die_with_parent(parent), **kwargs  # type: ignore[arg-type]
    )
    CHILDREN.append(proc)
    return proc


async def stop_children(grace_s: float = 10.0) -> None:
    """SIGTERM every child still running, wait for them (SIGKILL after ``grace_s``)."""
    live = [p for p in CHILDREN if p.returncode is None]
    CHILDREN.clear()
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
    for p in live:
        try:
            async with asyncio.timeout(grace_s):
                await p.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()
