"""Resident requests between workers on any host, over PostgreSQL LISTEN/NOTIFY.

A box's relay socket is held by whichever worker the load balancer gave it; a resident's
request lands on any worker. Each worker listens on its own channel (``qilu_relay_<pid>``, the
pid of its listener connection's backend) and records the boxes whose sockets it holds in
``relay_sockets``. A worker that gets a request for a box held elsewhere looks the holder up
(joined with ``pg_stat_activity``, so a dead worker's rows never match), NOTIFYs it the
request and waits for the answer on its own channel. No affinity, no peer ports: the one
thing every worker can already reach is the database.

NOTIFY payloads are limited to 8000 bytes; a message whose body does not fit goes through the
unlogged ``relay_bodies`` table and the payload carries the row id (one statement: insert and
notify). Killing a worker closes its listener connection, so its rows stop matching at once;
its boxes reconnect through the load balancer to another worker, which takes the rows over.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from cloudsync.batch import Batch
from common.relay import TIMEOUT_S

log = logging.getLogger(__name__)
PAYLOAD_MAX = 7900  # PostgreSQL's NOTIFY limit is 8000 bytes; leave room for the ref suffix
REF_SEP = "\n"  # compact JSON never holds a raw newline: "<json>\n<relay_bodies id>"
SLOW_S = 2.0  # a relayed request slower than this is logged with where its time went

# (head, body) -> (answer head, answer body); raises LookupError when no tunnel is here.
Local = Callable[[str, dict[str, Any], bytes], Awaitable[tuple[dict[str, Any], bytes]]]


class RelayBus:
    """This worker's end of the cross-worker relay (PostgreSQL only)."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, local: Local) -> None:
        self.pool, self.dsn, self.local = pool, dsn, local
        self.conn: asyncpg.Connection | None = None
        self.pid = 0
        self.start: Any = None  # the listener backend's start time (a pid may be reused)
        self.held: set[str] = set()  # boxes whose sockets this worker holds
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[tuple[dict[str, Any], bytes]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        # A dead worker's boxes all reconnect at once: their claims go in together.
        self._claims: Batch[str, bool] = Batch(self._claim_many)

    @property
    def channel(self) -> str:
        return f"qilu_relay_{self.pid}"

    async def open(self) -> None:
        self.conn = await asyncpg.connect(self.dsn)
        self.pid = self.conn.get_server_pid()
        self.start = await self.conn.fetchval(
            "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        )
        await self.conn.add_listener(self.channel, self._on_message)
        self.conn.add_termination_listener(self._on_lost)
        if self.held:  # after a reconnect: claim our sockets again under the new identity
            await self.pool.executemany(
                _CLAIM, [(b, self.pid, self.start) for b in sorted(self.held)]
            )

    def _on_lost(self, conn: asyncpg.Connection) -> None:
        if not self._closed:
            log.warning("relay bus: listener connection lost, reconnecting")
            self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.2
        while not self._closed:
            try:
                await self.open()
                return
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("relay bus: reconnect failed (%s), retry in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        self._closed = True
        for t in list(self._tasks):
            t.cancel()
        if self.conn is not None and not self.conn.is_closed():
            with contextlib.suppress(Exception):
                await self.conn.execute("DELETE FROM relay_sockets WHERE worker_pid = $1", self.pid)
            await self.conn.close()

    # --- the registry ---------------------------------------------------------------------

    async def claim(self, box_id: str) -> None:
        """This worker now holds the box's socket (a reconnect elsewhere takes the row over)."""
        self.held.add(box_id)
        await self._claims.get(box_id)

    async def _claim_many(self, box_ids: list[str]) -> dict[str, bool]:
        held = [b for b in box_ids if b in self.held]  # closed again meanwhile: not claimed
        if held:
            await self.pool.execute(_CLAIM_MANY, held, self.pid, self.start)
        return dict.fromkeys(box_ids, True)

    async def release(self, box_id: str) -> None:
        self.held.discard(box_id)
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            await self.pool.execute(
                "DELETE FROM relay_sockets WHERE box_id = $1 AND worker_pid = $2",
                box_id,
                self.pid,
            )

    async def holders(self, box_ids: list[str]) -> dict[str, int]:
        """The live worker (listener pid) holding each box's socket, for the boxes that have one."""
        rows = await self.pool.fetch(
            "SELECT s.box_id, s.worker_pid FROM relay_sockets s JOIN pg_stat_activity a"
            " ON a.pid = s.worker_pid AND a.backend_start = s.worker_start"
            " WHERE s.box_id = ANY($1::text[])",
            box_ids,
        )
        return {r["box_id"]: r["worker_pid"] for r in rows}

    # --- messages -------------------------------------------------------------------------

    async def call(
        self, box_id: str, head: dict[str, Any], body: bytes
    ) -> tuple[dict[str, Any], bytes] | None:
        """Hand the request to the worker holding the box's socket; None: no worker holds one."""
        t0 = time.monotonic()
        pid = (await self.holders([box_id])).get(box_id)
        if pid is None:
            return None
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[rid] = fut
        t1 = t2 = time.monotonic()
        try:
            await self._send(pid, {"k": "q", "id": rid, "from": self.pid, "box": box_id,
                                   "h": head, "t": time.time()}, body)  # fmt: skip
            t2 = time.monotonic()
            async with asyncio.timeout(TIMEOUT_S):
                return await fut
        finally:
            self._waiting.pop(rid, None)
            if (end := time.monotonic()) - t0 > SLOW_S:  # where a slow request's time went
                log.warning(
                    "relay bus: box %s via worker %s took %.1f s (holder lookup %.2f s,"
                    " notify %.2f s, answer %s)", box_id, pid, end - t0, t1 - t0, t2 - t1,
                    f"{end - t2:.2f} s" if fut.done() else "not received",
                )  # fmt: skip

    async def _send(self, pid: int, msg: dict[str, Any], body: bytes) -> None:
        channel = f"qilu_relay_{pid}"
        text = json.dumps({**msg, "b": base64.b64encode(body).decode()}, separators=(",", ":"))
        if len(text.encode()) <= PAYLOAD_MAX:
            await self.pool.execute(_NOTIFY, channel, text)
            return
        text = json.dumps(msg, separators=(",", ":")) + REF_SEP
        if len(text.encode()) > PAYLOAD_MAX:  # headers alone too big: refuse, don't truncate
            raise ValueError("relay message headers too large")
        # Insert the body and notify its id in one statement (and one transaction: the row
        # is committed before the receiver can see the notification).
        await self.pool.execute(
            "WITH b AS (INSERT INTO relay_bodies (data) VALUES ($3) RETURNING id)"
            " SELECT pg_notify($1, $2 || b.id::text), set_config('synchronous_commit', 'off',"
            " true) FROM b",
            channel,
            text,
            body,
        )
        if msg["id"] % 64 == 0:  # bodies whose receiver died: forget them now and then
            await self.pool.execute(
                "DELETE FROM relay_bodies WHERE created_at < now() - interval '5 minutes'"
            )

    def _on_message(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._spawn(self._handle(payload))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, payload: str) -> None:
        text, _, ref = payload.partition(REF_SEP)
        try:
            msg = json.loads(text)
            if ref:
                body = await self.pool.fetchval(
                    "DELETE FROM relay_bodies WHERE id = $1 RETURNING data", int(ref)
                )
                body = body or b""
            else:
                body = base64.b64decode(msg.get("b", ""))
        except (ValueError, asyncpg.PostgresError, OSError) as e:
            log.warning("relay bus: dropped a bad message: %s", e)
            return
        if msg["k"] == "q":
            await self._serve(msg, body)
        elif (fut := self._waiting.get(msg["id"])) is not None and not fut.done():
            if msg["k"] == "a":
                fut.set_result((msg["h"], body))
            else:  # "e": the holder could not answer
                fut.set_exception(ConnectionError(msg.get("err", "relay failed")))

    async def _serve(self, msg: dict[str, Any], body: bytes) -> None:
        """Another worker's request for a box whose socket is here."""
        reply: dict[str, Any] = {"id": msg["id"]}
        out = b""
        t0 = time.monotonic()
        try:
            head, out = await self.local(msg["box"], msg["h"], body)
            reply.update(k="a", h=head)
        except LookupError:
            reply.update(k="e", err="the box's socket is no longer here")
        except (TimeoutError, ConnectionError, ValueError) as e:
            reply.update(k="e", err=str(e) or type(e).__name__)
        took = time.monotonic() - t0
        if took > SLOW_S or time.time() - msg.get("t", time.time()) > SLOW_S:
            log.warning(
                "relay bus: box %s for worker %s: request reached here %.2f s after it was"
                " sent, the box's socket answered in %.2f s (%s)", msg["box"], msg["from"],
                time.time() - took - msg.get("t", 0), took, reply["k"],
            )  # fmt: skip
        with contextlib.suppress(OSError, asyncpg.PostgresError, ValueError):
            await self._send(msg["from"], reply, out)


# A NOTIFY gives its transaction an id, so with synchronous_commit its commit waits for a
# WAL flush: a disk sync per relayed request and per answer (cheap on this development VM,
# ~0.1 ms; milliseconds on real disks, more when busy). A relayed request lives for 20 s and
# is lost with the database anyway: commit without waiting for the flush, as nonces do (the
# notification is delivered at commit; tests/cloudsync/test_relay_bus.py).
_NOTIFY = "SELECT pg_notify($1, $2), set_config('synchronous_commit', 'off', true)"
_CLAIM_MANY = (
    "INSERT INTO relay_sockets (box_id, worker_pid, worker_start)"
    " SELECT b, $2, $3 FROM unnest($1::text[]) AS u(b)"
    " ON CONFLICT (box_id) DO UPDATE SET worker_pid = excluded.worker_pid,"
    " worker_start = excluded.worker_start, since = now()"
)
_CLAIM = (
    "INSERT INTO relay_sockets (box_id, worker_pid, worker_start) VALUES ($1, $2, $3)"
    " ON CONFLICT (box_id) DO UPDATE SET worker_pid = excluded.worker_pid,"
    " worker_start = excluded.worker_start, since = now()"
)
