"""Sync health for the doctor: records the cloud refused wait in the quarantine (a warning:
nothing is lost, but they reach the cloud only after `qilu-edge sync resend`)."""

from __future__ import annotations

import asyncio
from typing import Any

from edge.core.config import CoreConfig
from edge.core.i18n import Msg, catalogue
from edge.sync import store as ob

T = catalogue({
    "sync_quarantine.no_db": ("no database yet at {path}", "{path} 还没有数据库"),
    "sync_quarantine.empty": ("no records refused by the cloud", "没有被云端拒收的记录"),
    "sync_quarantine.waiting": (
        "{n} record(s) the cloud refused wait in quarantine, e.g. seq {seq} {kind}: {reason}",
        "{n} 条被云端拒收的记录在隔离区等待，例如 seq {seq} {kind}：{reason}",
    ),
    "sync_quarantine.hint": (
        "the cloud refused these records as bad input (see the reasons: `qilu-edge sync "
        "status`); after the cloud is upgraded or fixed: `qilu-edge sync resend --all`",
        "云端认为这些记录内容有误而拒收（原因见 `qilu-edge sync status`）；"
        "云端升级或修复后运行 `qilu-edge sync resend --all`",
    ),
})  # fmt: skip


async def quarantine_outcome(config: CoreConfig, box: Any = None) -> tuple[str, Msg, Msg | None]:
    """(status, detail, hint): pass when the quarantine is empty, warn when records wait."""
    if box is not None:  # inside the daemon: its own store
        rows = await box.store.run(ob.quarantine_list, box.store.sync, 5)
        n = await box.store.run(ob.quarantine_count, box.store.sync)
    elif not config.db_path.exists():
        return "skip", T("sync_quarantine.no_db", path=config.db_path), None
    else:
        rows, n = await asyncio.to_thread(_read, config)
    if n == 0:
        return "pass", T("sync_quarantine.empty"), None
    first = rows[0]
    detail = T("sync_quarantine.waiting", n=n, seq=first["seq"], kind=first["kind"],
               reason=first["reason"][:160])  # fmt: skip
    return "warn", detail, T("sync_quarantine.hint")


def _read(config: CoreConfig) -> tuple[list[dict], int]:
    from edge.core.store import Store

    store = Store(config.db_path, box_id=config.box.id)
    try:
        return ob.quarantine_list(store, 5), ob.quarantine_count(store)
    finally:
        store.close()
