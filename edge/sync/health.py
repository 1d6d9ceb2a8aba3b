"""Sync health for the doctor: records the cloud refused wait in the quarantine (a warning:
nothing is lost, but they reach the cloud only after `qilu-edge sync resend`)."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.core.config import CoreConfig
from edge.sync import store as ob

HINT = (
    "the cloud refused these records as bad input (see the reasons: `qilu-edge sync status`);"
    " after the cloud is upgraded or fixed: `qilu-edge sync resend --all`"
)


async def quarantine_outcome(config: CoreConfig, box: Any = None) -> tuple[str, str, str]:
    """(status, detail, hint): pass when the quarantine is empty, warn when records wait."""
    if box is not None:  # inside the daemon: its own store
        rows = await box.store.run(ob.quarantine_list, box.store.sync, 5)
        n = await box.store.run(ob.quarantine_count, box.store.sync)
    elif not config.db_path.exists():
        return "skip", f"no database yet at {config.db_path}", ""
    else:
        rows, n = await asyncio.to_thread(_read, config)
    if n == 0:
        return "pass", "no records refused by the cloud", ""
    first = rows[0]
    detail = (
        f"{n} record(s) the cloud refused wait in quarantine, e.g. seq {first['seq']}"
        f" {first['kind']}: {first['reason'][:160]}"
    )
    return "warn", detail, HINT


def _read(config: CoreConfig) -> tuple[list[dict], int]:
    from edge.core.store import Store

    store = Store(config.db_path, box_id=config.box.id)
    try:
        return ob.quarantine_list(store, 5), ob.quarantine_count(store)
    finally:
        store.close()
