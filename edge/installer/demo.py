"""The installer's demo step: the commissioning report of the demo box and its web page."""

from __future__ import annotations

import click

from edge.core.demo import say
from edge.installer.doctor import Doctor, format_row, summary


async def step_installer(d) -> None:  # d: edge.demo.Demo (imported lazily)
    say(
        "Commissioning: qilu-edge doctor",
        f"the same checks an installer runs on site: qilu-edge doctor -c {d.work_dir}/edge.toml",
    )
    cfg = d.box.config
    report = await Doctor(config=cfg, config_path=cfg.source, box=d.box).run(
        lambda r: click.echo("  " + format_row(r, lang="en").replace("\n", "\n  "))
    )
    click.echo(f"  {summary(report, 'en')}")
    d.links["installer"] = f"{d.api}/installer/"
    click.echo(
        f"  installer page (wizard + doctor, 中文/English): {d.api}/installer/"
        " (sign in with the staff token)\n"
        "  find boxes on the LAN: qilu-edge discover; relay boards: qilu-edge modbus scan --host IP"
    )
