"""The ``sync`` service: drains the outbox to the cloud and applies the cloud's download feed.

Upload: batches of one priority class at a time (alerts first, telemetry last), in seq order,
gzip'd; a batch's rows are deleted only after the cloud answered that it stored them (in one
transaction), so a crash anywhere resends at most one batch, which the cloud deduplicates on
(box, seq). Failures back off exponentially with full jitter.

Download: long-polls the feed from the cursor kept in the store and dispatches each item as a
standard Command (``box.commands.dispatch``); the item's id is logged with the cursor in one
transaction, so a re-delivered item is not applied twice.

Poison records: a record the cloud refuses as bad input (400 naming it) is moved to the
sync quarantine (edge/sync/store.py, migration 0502) instead of being retried forever in
front of its class; it is kept, shown in status and doctor, alerted, and resent on demand.

Disk budget (declared policy): the outbox may hold ``outbox_budget_mb``; at ``budget_warn``
a warning Alert is recorded; over the budget telemetry, then proof of play, is dropped
oldest-first. Alerts, access events, reports and tickets are never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import shlex
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from common import protocol as p
from common.version import __version__
from edge.core.box import Box
from edge.core.commands import CommandError
from edge.core.http import json_error, require_staff
from edge.core.service import Service, Supervisor
from edge.core.standard import Alert, Command, new_id
from edge.core.store import StoreError
from edge.sync import store as outbox
from edge.sync.client import (
    CloudClient,
    CloudError,
    Revoked,
    UnsignedReply,
    cloud_ssl,
    encode_batch,
    refused_record,
)
from edge.sync.config import SyncConfig
from edge.sync.identity import Identity, identity_path, load, save

log = logging.getLogger(__name__)
RETRYABLE = (aiohttp.ClientError, TimeoutError, CloudError, OSError)
MIN_BATCH, INITIAL_BATCH = 20, 500
FAST_BATCH_S = 2.0  # a batch acked faster than this may double
QUARANTINE_ALERT_S = 600.0  # at most one quarantine alert this often (a burst: one alert)
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_~-]{0,63}")  # as the cloud's roll-outs check


class SyncService(Service):
    name = "sync"

    def __init__(self, box: Box) -> None:
        super().__init__(box)
        self.cfg = box.config.section(SyncConfig)
        self.path = identity_path(box.config)
        self.client: CloudClient | None = None
        # Background loops, restarted after an error they did not expect (logged, backed off).
        self.supervisor = Supervisor("sync", self.cfg.backoff_min_s, self.cfg.backoff_max_s)
        self.uploaded = self.batches = self.duplicates = self.applied = 0
        self.dropped_rows = self.dropped_bytes = 0
        self.acked_through = 0
        self.last_error = ""
        self.last_upload_at: float | None = None
        self.revoked = False
        self.quarantined = 0  # records waiting in the sync quarantine (refreshed every 2 s)
        self._quarantine_alert_at: float | None = None
        self._unsigned_alert_at: float | None = None
        self._floor_due = False  # a quarantine lifted the floor: tell the cloud when idle
        self._warned = False
        # Batches are sized to the link: doubled while batches go through quickly, halved
        # when the link fails, between MIN_BATCH and [sync] batch_max_records.
        self.batch_limit = min(INITIAL_BATCH, self.cfg.batch_max_records)
        self._wake = asyncio.Event()
        self._acking: asyncio.Future | None = None  # the delete of the last acked batch
        self._identity_written = asyncio.Event()  # set by identity_changed(); else poll 5 s
        self._rotating = False  # rotate() is writing the identity file
        loop = asyncio.get_running_loop()
        box.store.sync.on_commit(lambda: loop.call_soon_threadsafe(self._wake.set))
        box.http.router.add_get("/api/v1/sync/status", self._http_status)
        box.http.router.add_post("/api/v1/sync/rotate", self._http_rotate)
        box.commands.register("box", "update", self._cmd_update)

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if not self.cfg.enabled:
            return
        self._spawn(self._budget_loop, "sync-budget")
        self._spawn(self._main, "sync")

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self._acking is not None:  # let a started delete of acked rows finish
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._acking
        if self.client is not None:
            await self.client.close()

    def _spawn(self, fn: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self.supervisor.spawn(fn, name)

    @property
    def tasks(self) -> list[asyncio.Task]:
        return self.supervisor.tasks

    async def _main(self) -> None:
        # Wait for an identity: `qilu-edge provision` may write it while the daemon runs.
        if self.client is not None:  # restarted by the supervisor: only the upload loop
            await self._upload_loop()
            return
        while (ident := await asyncio.to_thread(load, self.path)) is None:
            self._identity_written.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._identity_written.wait()
        self.client = self._client(ident)
        log.info("sync: box %s -> %s", ident.box_id, ident.cloud)
        self._spawn(self._feed_loop, "sync-feed")
        self._spawn(self._heartbeat_loop, "sync-heartbeat")
        self._spawn(self._identity_loop, "sync-identity")
        await self._upload_loop()

    def _client(self, ident: Identity) -> CloudClient:
        return CloudClient(
            ident, timeout_s=self.cfg.request_timeout_s, ssl_ctx=cloud_ssl(self.box.config)
        )

    async def _identity_loop(self) -> None:
        """Provisioned again while running (`qilu-edge provision --force` after a revoke, the
        installer page): the new identity is used from then on, without a restart."""
        while True:
            self._identity_written.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._identity_written.wait()
            try:
                ident = await asyncio.to_thread(load, self.path)
            except (OSError, ValueError, TypeError) as e:
                self._failed(e)
                continue
            if self._rotating or ident is None or self.client is None:
                continue
            if ident == self.client.ident:
                continue  # unchanged, or a rotation this service wrote itself
            old, self.client = self.client, self._client(ident)
            self.revoked = False
            log.warning("sync: identity changed: box %s -> %s (was %s)", ident.box_id,
                        ident.cloud, old.ident.box_id)  # fmt: skip
            self._wake.set()
            await old.close()

    def status(self) -> dict[str, Any]:
        return {
            "enabled": self.cfg.enabled,
            "provisioned": self.client is not None,
            "box_id": self.client.ident.box_id if self.client else None,
            "cloud": self.client.ident.cloud if self.client else None,
            "uploaded": self.uploaded,
            "batches": self.batches,
            "batch_limit": self.batch_limit,
            "duplicates": self.duplicates,
            "acked_through": self.acked_through,
            "feed_applied": self.applied,
            "dropped_telemetry_rows": self.dropped_rows,
            "clock_offset_s": round(self.client.offset_s, 1) if self.client else 0,
            "revoked": self.revoked,
            "quarantined": self.quarantined,
            "last_error": self.last_error,
            **self.supervisor.status(),
        }

    def identity_changed(self) -> None:
        """Provisioning wrote the identity file while the daemon runs: pick it up now."""
        self._identity_written.set()

    def auth_headers(self, method: str, url: str) -> dict[str, str]:
        """Headers that authenticate a request of another service to the cloud (blobs)."""
        if self.client is None:
            raise RuntimeError("box is not provisioned (qilu-edge provision)")
        return self.client.auth_headers(method, url)

    @property
    def cloud_url(self) -> str | None:
        return self.client.ident.cloud if self.client else None

    # --- upload -----------------------------------------------------------------------------

    def _limits(self) -> tuple[int, int]:
        return self.batch_limit, self.cfg.batch_max_kb * 1024

    async def _encode(self, rows: list[outbox.OutboxRow]) -> tuple[bytes, bytes]:
        st = self.box.store
        floor = await st.run(outbox.outbox_floor, st.sync)
        return await asyncio.to_thread(encode_batch, rows, floor)

    async def _upload_loop(self) -> None:
        """Send one batch while the next one of the same class is read and encoded (read
        ahead); a more urgent row that appears meanwhile goes first. Rows are deleted only
        after the cloud has stored them; that delete runs while the next batch is in flight
        (a fresh read of the outbox waits for it, so it never re-reads acked rows)."""
        st = self.box.store
        delay = self.cfg.backoff_min_s
        ahead: tuple[list[outbox.OutboxRow], asyncio.Future] | None = None
        while True:
            if ahead is not None and not await st.run(
                outbox.outbox_more_urgent, st.sync, ahead[0][0].priority
            ):
                rows, encoding = ahead
            else:
                if self._acking is not None and not await self._ack_done():
                    await asyncio.sleep(random.uniform(0, delay))  # e.g. the disk is full
                    delay = min(delay * 2, self.cfg.backoff_max_s)
                    continue
                rows = await st.run(outbox.outbox_batch, st.sync, *self._limits())
                if not rows and self._floor_due:
                    await self._send_floor()
                if not rows:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await self._wake.wait()
                    continue
                encoding = asyncio.ensure_future(self._encode(rows))
            ahead = None
            started = time.monotonic()
            try:
                raw, gz = await encoding
                assert self.client is not None
                sending = asyncio.ensure_future(self.client.send_batch(raw, gz))
                nxt = await st.run(
                    outbox.outbox_batch_after,
                    st.sync,
                    rows[0].priority,
                    rows[-1].seq,
                    *self._limits(),
                )
                if nxt:
                    ahead = (nxt, asyncio.ensure_future(self._encode(nxt)))
                res = await sending
            except RETRYABLE as e:
                ahead = None
                bad = refused_record(e, len(rows))
                if bad is None and isinstance(e, CloudError) and e.status == 413 and rows:
                    # Too large for the cloud or a proxy in front of it (nginx's body limit):
                    # halve the batch at once, down to one record, which is then set aside.
                    if len(rows) == 1:
                        bad = 0
                    else:
                        self.batch_limit = len(rows) // 2
                        continue
                if bad is not None:  # one poison record: set it aside, the class goes on
                    await self._quarantine(rows[bad], e)
                    continue
                if not isinstance(e, CloudError):  # the link failed: smaller batches
                    self.batch_limit = max(MIN_BATCH, self.batch_limit // 2)
                self._failed(e)
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
                delay = min(delay * 2, self.cfg.backoff_max_s)
                continue
            if time.monotonic() - started < FAST_BATCH_S and len(rows) >= self.batch_limit:
                self.batch_limit = min(self.cfg.batch_max_records, self.batch_limit * 2)
            delay = self.cfg.backoff_min_s
            self.revoked = False
            if self._acking is not None:
                await self._ack_done()  # one delete at a time, in order
            self._acking = asyncio.ensure_future(self._acked(rows, res))

    async def _ack_done(self) -> bool:
        """Wait for the delete of the last acked batch. False when it failed (a full disk):
        its rows stay in the outbox and go again, and the cloud counts them as duplicates."""
        acking, self._acking = self._acking, None
        if acking is None:
            return True
        try:
            await acking
        except StoreError as e:
            self._failed(e)
            return False
        return True

    async def _acked(self, rows: list[outbox.OutboxRow], res: p.UploadResult) -> None:
        """The cloud stored this batch: delete its rows (in one transaction), then count it."""
        st = self.box.store
        await st.run(outbox.outbox_ack, st.sync, [r.seq for r in rows])
        self.batches += 1
        self.uploaded += res.stored
        self.duplicates += res.duplicates
        self.acked_through = res.acked_through
        self.last_upload_at = time.time()

    async def _send_floor(self) -> None:
        """An empty batch that only carries the floor. After a quarantine the floor passes
        the quarantined seq, but it travels with uploads: without this, the cloud's watermark
        would wait below that seq until the box next has a record to send."""
        try:
            assert self.client is not None
            res = await self.client.send_batch(*await self._encode([]))
        except RETRYABLE as e:
            self._failed(e)
            return
        self._floor_due = False
        self.acked_through = res.acked_through

    async def _quarantine(self, row: outbox.OutboxRow, e: BaseException) -> None:
        """The cloud refused this record as bad input (400 naming it): retrying cannot help
        and would block its whole class. Move it to the quarantine (kept, never dropped,
        resent by `qilu-edge sync resend`) and tell ops with a warning alert (at most one per
        QUARANTINE_ALERT_S, counting what waits), which the cloud receives like any alert."""
        st = self.box.store
        reason = str((e.body if isinstance(e, CloudError) else {}).get("error") or e)
        await st.run(outbox.outbox_quarantine, st.sync, row.seq, reason)
        self._floor_due = True
        self.quarantined = await st.run(outbox.quarantine_count, st.sync)
        self.last_error = f"seq {row.seq} ({row.kind} {row.record_id}) quarantined: {reason}"
        log.warning("sync: cloud refused record %s: %s", row.seq, self.last_error)
        now = time.monotonic()
        if self._quarantine_alert_at is None or now - self._quarantine_alert_at > (
            QUARANTINE_ALERT_S
        ):
            self._quarantine_alert_at = now
            await st.record(
                Alert(
                    id=new_id("al"),
                    level="warning",
                    type="sync_quarantine",
                    message=f"the cloud refused record seq {row.seq} ({row.kind}"
                    f" {row.record_id}): {reason}. {self.quarantined} record(s) wait in the"
                    " box's sync quarantine; the rest is sent. After a cloud upgrade:"
                    " `qilu-edge sync resend --all`",
                    evidence=[row.record_id],
                )
            )

    def _failed(self, e: BaseException) -> None:
        self.revoked = isinstance(e, Revoked)
        msg = f"{type(e).__name__}: {e}"
        if msg != self.last_error:
            log.warning("sync: %s (retrying with back-off)", msg)
        self.last_error = msg

    # --- download feed ------------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        st = self.box.store
        ident: Identity | None = None
        cursor = 0
        delay = self.cfg.backoff_min_s
        while True:
            assert self.client is not None
            if self.client.ident is not ident:  # first, or provisioned again
                ident = self.client.ident
                cursor = await st.run(outbox.feed_start, st.sync, ident.cloud, ident.box_id)
            try:
                page = await self.client.feed(cursor, self.cfg.feed_wait_s)
            except UnsignedReply as e:
                await self._unsigned(e)
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.cfg.feed_backoff_max_s, self.cfg.backoff_max_s)
                continue
            except RETRYABLE as e:
                self._failed(e)
                await asyncio.sleep(random.uniform(0, delay))  # full jitter
                delay = min(delay * 2, self.cfg.feed_backoff_max_s, self.cfg.backoff_max_s)
                continue
            delay = self.cfg.backoff_min_s
            for raw in page["items"]:
                try:
                    item = p.FeedItem.model_validate(raw)
                except ValueError as e:  # a cloud bug, or a cloud newer than this box
                    fid = raw.get("id") if isinstance(raw, dict) else None
                    if isinstance(fid, int):  # logged as failed, never applied
                        k, t, a = (str(raw.get(x, "?"))[:128] for x in
                                   ("target_kind", "target_id", "action"))
                        await self._mark(fid, k, t, a, False, f"bad feed item: {e}")
                        cursor = max(cursor, fid)
                    continue
                await self._apply(item)
                cursor = item.id
            if isinstance(page.get("cursor"), int):  # also past items without a usable id
                cursor = max(cursor, page["cursor"])

    async def _unsigned(self, e: UnsignedReply) -> None:
        """A feed answer without the cloud's valid signature: nothing in it is applied (the
        cursor stays), logged, and stored as an alert at most every QUARANTINE_ALERT_S."""
        self._failed(e)
        log.error("sync: refused the cloud's feed answer: %s", e)
        await self.unsigned_alert(f"refused commands from the cloud: {e}. Nothing was"
                                  " applied; the box asks again.")

    async def unsigned_alert(self, what: str) -> None:
        """The critical ``cloud_unsigned_command`` alert, at most every QUARANTINE_ALERT_S
        (the feed's answers and the relay's frames, edge/portal/relay.py, share it)."""
        now = time.monotonic()
        last = self._unsigned_alert_at
        if last is not None and now - last < QUARANTINE_ALERT_S:
            return
        self._unsigned_alert_at = now
        await self.box.store.record(Alert(
            id=new_id("al"), level="critical", type="cloud_unsigned_command",
            message=f"{what} Upgrade the cloud, or check the network path to it (TLS)."))

    async def _apply(self, item: p.FeedItem) -> None:
        st = self.box.store
        if await st.run(outbox.feed_applied, st.sync, item.id):
            return
        target = self.box.config.box.id if item.target_kind == "box" else item.target_id
        if item.expired:
            ok, detail = False, "expired before it reached the box"
        else:
            args = dict(item.args)
            actor = args.pop("actor", None)
            try:
                cmd = Command(
                    id=f"cloud-{item.id}",
                    action=item.action,
                    args=args,
                    actor=f"cloud:{actor}" if actor else "cloud",
                )
                res = await self.box.commands.dispatch(item.target_kind, target, cmd)
                ok, detail = res.ok, res.detail
            except ValueError as e:  # a malformed item must not stop the feed
                ok, detail = False, f"bad feed item: {e}"
        if not ok:
            log.warning(
                "sync: feed item %s %s.%s: %s", item.id, item.target_kind, item.action, detail
            )
        await self._mark(item.id, item.target_kind, target, item.action, ok, detail)
        self.applied += 1

    async def _mark(
        self, fid: int, target_kind: str, target: str, action: str, ok: bool, detail: str
    ) -> None:
        st = self.box.store
        try:
            await st.run(outbox.feed_mark, st.sync, fid, target_kind, target, action, ok, detail)
        except StoreError as e:
            # e.g. a full disk: the item was applied, so the feed moves past it in memory (not
            # applied again while this process runs); after a restart it comes again, and an
            # expired door command is then skipped.
            self._failed(e)
            log.error("sync: feed item %s applied but not logged: %s", fid, e)

    async def _cmd_update(self, target: str, cmd: Command) -> str:
        """The cloud's ``update`` command (a roll-out wave): run the configured update hook
        with the version. The hook installs it and restarts the daemon; the heartbeat then
        reports the new version, which is what moves the roll-out on. Re-sent to a box that
        already runs the version (e.g. after its restart), it only says so."""
        version = str(cmd.args.get("version", ""))
        if not VERSION.fullmatch(version):
            raise CommandError(f"update: version {version[:70]!r} missing or malformed")
        if version == __version__:
            return f"already running {version}"
        if not self.cfg.update_command:
            raise CommandError(
                f"update to {version}: this box has no update hook ([sync] update_command);"
                f" it keeps running {__version__}"
            )
        env = {**os.environ, "QILU_UPDATE_VERSION": version}
        for key in ("url", "sha256"):
            if isinstance(cmd.args.get(key), str):
                env[f"QILU_UPDATE_{key.upper()}"] = cmd.args[key]
        argv = [*shlex.split(self.cfg.update_command), version]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
        except OSError as e:
            raise CommandError(f"update hook {argv[0]!r} did not start: {e}") from e
        try:
            async with asyncio.timeout(self.cfg.update_timeout_s):
                out, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CommandError(
                f"update hook ran longer than {self.cfg.update_timeout_s:g} s; killed"
            ) from None
        tail = out.decode(errors="replace").strip()[-300:]
        if proc.returncode:
            raise CommandError(f"update hook exited {proc.returncode}: {tail}")
        log.info("sync: update hook ran for %s: %s", version, tail)
        return f"update hook ran for {version} (running {__version__} until restarted): {tail}"

    # --- heartbeat, budget, rotation -------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        st = self.box.store
        while True:
            try:
                stats = await st.outbox_stats()
                devices = [
                    {k: d[k] for k in ("kind", "id", "type", "state", "reason", "since")}
                    for d in await st.device_states()
                ]
                hb = p.Heartbeat(
                    software_version=__version__,
                    devices=devices,
                    outbox_rows=stats["rows"],
                    outbox_bytes=stats["bytes"],
                    feed_cursor=await st.run(outbox.feed_cursor, st.sync),
                )
                assert self.client is not None
                await self.client.heartbeat(hb)
            except RETRYABLE as e:
                self._failed(e)
            await asyncio.sleep(self.cfg.heartbeat_s)

    async def _budget_loop(self) -> None:
        while True:
            try:
                await self.check_budget()
            except Exception:
                log.exception("sync: disk budget check failed")
            await asyncio.sleep(2.0)

    async def check_budget(self) -> None:
        st = self.box.store
        # (also refreshes the quarantine count: `qilu-edge sync resend` may run meanwhile)
        self.quarantined = await st.run(outbox.quarantine_count, st.sync)
        budget = int(self.cfg.outbox_budget_mb * 1024 * 1024)
        used = (await st.outbox_stats())["bytes"]
        if used >= self.cfg.budget_warn * budget and not self._warned:
            self._warned = True
            await st.record(
                Alert(
                    id=new_id("al"),
                    level="warning",
                    type="disk",
                    message=f"sync outbox at {used / budget:.0%} of its"
                    f" {self.cfg.outbox_budget_mb:g} MB budget; beyond 100 % telemetry, then"
                    " proof of play, is dropped oldest-first",
                )
            )
        elif used < 0.9 * self.cfg.budget_warn * budget:
            self._warned = False  # hysteresis: warn again only after it drained
        if used > budget:
            rows, size = await st.run(outbox.drop_for_budget, st.sync, budget)
            if rows:
                self.dropped_rows += rows
                self.dropped_bytes += size
                log.warning(
                    "sync: outbox over budget: dropped %d telemetry and play records (%d bytes)",
                    rows,
                    size,
                )

    async def rotate(self) -> None:
        """New secret from the cloud, saved atomically before it is used."""
        assert self.client is not None
        client = self.client
        secret = await client.rotate()
        old = client.ident
        ident = Identity(old.cloud, old.box_id, secret, old.community_id, old.area_path)
        self._rotating = True  # the identity watch leaves this file to us
        try:
            await asyncio.to_thread(save, self.path, ident)
            client.ident = ident
        finally:
            self._rotating = False

    async def _http_status(self, request: web.Request) -> web.Response:
        require_staff(request)
        st = self.box.store
        by_class = await st.run(outbox.outbox_by_class, st.sync)
        return web.json_response(
            {
                **self.status(),
                "outbox_by_priority": {
                    str(k): {"rows": v[0], "bytes": v[1]} for k, v in by_class.items()
                },
                "feed_log": await st.run(outbox.feed_log, st.sync, 20),
                "quarantine": await st.run(outbox.quarantine_list, st.sync, 20),
            }
        )

    async def _http_rotate(self, request: web.Request) -> web.Response:
        require_staff(request)
        if self.client is None:
            return json_error(409, "box is not provisioned")
        try:
            await self.rotate()
        except RETRYABLE as e:
            return json_error(502, f"rotation failed, old secret still valid: {e}")
        return web.json_response({"rotated": True})
