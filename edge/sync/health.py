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
    "sync_tasks.outside": (
        "the CLI cannot see the daemon's tasks; run the doctor from the installer page",
        "命令行看不到守护进程的任务；请在安装页面运行检查",
    ),
    "sync_tasks.off": (
        "sync is off ([sync] enabled = false)", "同步已关闭（[sync] enabled = false）"
    ),
    "sync_tasks.ok": ("sync tasks running, none restarted", "同步任务运行正常，没有重启过"),
    "sync_tasks.restarted": (
        "sync tasks restarted {n} time(s) after errors; last: {error}",
        "同步任务出错后已自动重启 {n} 次；最近一次：{error}",
    ),
    "sync_tasks.hint": (
        "each was restarted with back-off; if the count keeps growing, read the journal "
        "(`journalctl -u qilu-edge`) for the traceback",
        "每次都已延时自动重启；如果次数一直增加，请查看日志（`journalctl -u qilu-edge`）中的错误",
    ),
})  # fmt: skip


def tasks_outcome(box: Any) -> tuple[str, Msg, Msg | None]:
    """Inside the daemon: warn when a sync loop had to be restarted (edge.core.service)."""
    if box is None:
        return "skip", T("sync_tasks.outside"), None
    svc = box.service("sync") if any(s.name == "sync" for s in box.services) else None
    if svc is None or not svc.cfg.enabled:
        return "skip", T("sync_tasks.off"), None
    st = svc.supervisor.status()
    if st["task_restarts"]:
        return "warn", T("sync_tasks.restarted", n=st["task_restarts"],
                         error=st["task_last_error"][:200]), T("sync_tasks.hint")  # fmt: skip
    return "pass", T("sync_tasks.ok"), None


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
