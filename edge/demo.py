"""``qilu-edge demo``: a whole box on this machine with simulated devices, narrated.

Each capability declares its steps (``Feature.demo``, edge/core/demo.py for the kit); a step
gets the running box and prints what a newcomer should look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import socket
from pathlib import Path

import aiohttp
import aiomqtt
import click

from edge.core.demo import Demo, Step, say, stop_children
from edge.core.feature import DemoStep, demo_order, resolve
from edge.core.http import API
from edge.core.standard import SCHEMA_PREFIX, new_id
from edge.daemon import Daemon
from edge.features import FEATURES, load_config

DEMO_TOKEN_NAME = "demo-staff"
STEP_BUDGET_S = 60.0


async def step_status(d: Demo) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{d.api}/healthz") as r:
            say("The box is up", f"GET {d.api}/healthz -> {r.status} {await r.text()}")
        async with s.get(f"{d.api}/api/v1/status") as r:
            st = await r.json()
    click.echo(f"  store {st['store']['path']} schema {st['store']['schema']}")
    click.echo(f"  broker connected: {st['services']['bus']['connected']}")
    for dev, info in st["services"]["devices"].items():
        click.echo(f"  device {dev}: {info['type']} {info['state']} ({info['reason']})")


async def step_mqtt_command(d: Demo) -> None:
    say(
        "A command over MQTT: box ping",
        f"mosquitto_sub -p {d.mqtt_port} -t 'qilu/#' -v shows the whole tree",
    )
    cfg = d.box.config
    base = f"{cfg.mqtt.topic_prefix}/{cfg.box.community}/box/{cfg.box.id}"
    try:
        async with aiomqtt.Client("127.0.0.1", d.mqtt_port, timeout=5) as client:
            await client.subscribe(f"{base}/cmd_result", qos=1)
            cmd = {"schema": SCHEMA_PREFIX + "command", "id": new_id("cmd"), "action": "ping"}
            await client.publish(f"{base}/cmd", json.dumps(cmd), qos=1)
            async with asyncio.timeout(5):
                async for msg in client.messages:
                    click.echo(f"  {msg.topic} {msg.payload.decode()}")
                    break
    except (aiomqtt.MqttError, TimeoutError) as e:
        click.echo(f"  no broker on 127.0.0.1:{d.mqtt_port} ({e}); events are kept in the store")


def steps() -> list[Step]:
    """The box's own two steps, then each capability's (``Feature.demo``) in their order."""
    declared: list[DemoStep] = [s for f in FEATURES for s in f.demo]
    return [step_status, step_mqtt_command, *(resolve(s.step) for s in demo_order(declared))]


def demo_config(work_dir: Path) -> str:
    """The TOML the capabilities add to the demo config (a screen, the door camera, ...)."""
    parts = []
    for f in FEATURES:
        if f.demo_config:
            part = resolve(f.demo_config)
            parts.append(part(work_dir) if callable(part) else part)
    return "".join(parts)


def _run_cli(args: list[str]) -> object:
    from edge.cli import main  # the root command: edge.cli imports this module for `demo`

    return main.main(args, standalone_mode=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_demo_config(work_dir: Path, mqtt_port: int, api_port: int, token: str) -> Path:
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "edge.toml"
    path.write_text(
        f"""{MARK}; edit freely, it is rewritten on each demo run.
[box]
id = "box-demo"
community = "demo-community"
name = "演示社区"
data_dir = "data"

[mqtt]
port = {mqtt_port}
reconnect_max_s = 2.0

[api]
port = {api_port}

[[api.tokens]]
name = "{DEMO_TOKEN_NAME}"
token = "{token}"

[[doors]]
id = "door-1"
type = "sim"
name = "1号楼单元门"
building = "1"
pulse_ms = 500
{demo_config(work_dir)}""",
        encoding="utf-8",
    )
    return path


MARK = "# Written by `qilu-edge demo`"  # first line of the config: the folder is the demo's


def reset(work_dir: Path) -> None:
    """Empty the demo folder so a run starts from nothing (a second run must not trip over the
    first one's residents, codes and sign-ups). Only a folder the demo wrote is emptied."""
    if not work_dir.exists() or not any(work_dir.iterdir()):
        return
    cfg = work_dir / "edge.toml"
    if not cfg.exists() or not cfg.read_text(encoding="utf-8").startswith(MARK):
        raise click.ClickException(
            f"{work_dir} is not a demo folder (no {cfg.name} written by the demo): not emptying"
            " it; pass --dir with a new or demo folder"
        )
    shutil.rmtree(work_dir)


def closing(d: Demo, path: Path) -> str:
    """The one block a newcomer needs at the end: what to open, with which login, what to try."""
    rows = [
        ("手机 Phone", d.links.get("phone", f"{d.api}/r/"),
         "王阿姨 (1号楼): 报事/报修, 我的→开门 (asks first), 访客通行证 + 发给访客; 大字"),
        ("屏幕 Screen", d.links.get("screen", ""),
         f"emergency: qilu-edge screens emergency 燃气检修 --minutes 2 -c {path}"),
        ("物业 Office", d.links.get("office", ""),
         f"property office console; sign in: {d.links.get('office_login', '')}"),
        ("安装 Installer", d.links.get("installer", f"{d.api}/installer/"),
         "wizard + doctor: sign in with the staff API token below"),
        ("云 Cloud ops", d.links.get("cloud", ""), "the city's view of this box"),
    ]
    lines = [f"  {name:<14} {url}\n  {'':<14} {what}" for name, url, what in rows if url]
    return (
        "\n".join(lines)
        + f"\n  staff API token: {d.token}   config: {path}\n"
        "  Ctrl-C stops everything the demo started (box, local cloud; demo.sh: the broker)."
    )


async def run_demo(work_dir: Path, *, seconds: float | None, mqtt_port: int, api_port: int) -> None:
    token = secrets.token_urlsafe(18)
    if api_port == 0:
        api_port = _free_port()
    path = await asyncio.to_thread(write_demo_config, work_dir, mqtt_port, api_port, token)
    config = load_config(path)
    daemon = Daemon(config)
    box = await daemon.start()
    api = f"http://127.0.0.1:{box.get(API).port}"
    demo = Demo(
        box=box, api=api, token=token, mqtt_port=mqtt_port, work_dir=work_dir, cli=_run_cli
    )
    failed: list[str] = []
    # SIGTERM (systemd, kill) and SIGHUP (a closed terminal) would end Python on the spot with
    # no cleanup, leaving the local cloud running: like Ctrl-C they cancel the demo instead,
    # so the `finally` below stops the box and every child (edge.core.demo.spawn).
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    stopped_by: list[str] = []

    def stop(sig: signal.Signals) -> None:
        if not stopped_by and main is not None:  # a second signal must not cut the cleanup
            stopped_by.append(sig.name)
            main.cancel()

    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    for sig in signals:
        loop.add_signal_handler(sig, stop, sig)
    try:
        await asyncio.sleep(0.5)  # let the bus connect
        for step in steps():
            # Each step is bounded: a stuck peer names its step instead of hanging the demo.
            try:
                async with asyncio.timeout(STEP_BUDGET_S):
                    await step(demo)
            except TimeoutError:
                failed.append(step.__name__)
                click.secho(f"  {step.__name__} did not finish in {STEP_BUDGET_S:.0f} s", fg="red")
        if failed:
            raise click.ClickException(f"demo steps that did not finish: {', '.join(failed)}")
        say("Demo box running: open these", closing(demo, path))
        with contextlib.suppress(asyncio.CancelledError):
            if seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        if not stopped_by:
            raise
    finally:
        for task in demo.tasks:
            task.cancel()
        await asyncio.gather(*demo.tasks, return_exceptions=True)
        try:
            await daemon.stop()
        finally:
            await stop_children()
            for sig in signals:
                loop.remove_signal_handler(sig)
    if stopped_by:
        click.echo(f"demo stopped ({stopped_by[0]}): box and local cloud stopped")
