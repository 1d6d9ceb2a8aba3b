"""The office's demo step: an office login (admin) for the demo community's property office,
shown in the demo's closing block with the /office/ address."""

from __future__ import annotations

import secrets

import click

from common.staffauth import hash_password
from edge.core.demo import say
from edge.office import store as db


async def step_office(d) -> None:  # d: edge.demo.Demo (imported lazily)
    password = secrets.token_urlsafe(9)
    store = d.box.store
    await store.run(db.add_user, store.sync, "wuye", hash_password(password), "admin", None, True)
    d.links["office"] = f"{d.api}/office/"
    d.links["office_login"] = f"wuye / {password}"
    say(
        "Property office console: 物业工作台",
        f"  {d.api}/office/  sign in as wuye / {password} (admin)\n"
        "  tickets, residents + face enrolment, doors, passes, moderation, devices, audit log\n"
        f"  more logins: qilu-edge office user add NAME --role viewer -c {d.work_dir}/edge.toml",
    )
    click.echo("  every staff write (console or token) lands in the audit log: qilu-edge office"
               " audit")
