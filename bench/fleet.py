"""Fleet benchmark: N simulated boxes held connected to a real multi-worker cloud on PostgreSQL.

Each simulated box is what a real box keeps open: its feed long-poll (``GET /api/v1/box/feed
?wait=25``), its relay WebSocket (answering resident requests), a heartbeat and periodic small
uploads (a mix of access events, plays, reports and telemetry), all HMAC-signed like the real
box. The generator is made cheap so that the cloud, not it, is measured: one process per N
boxes, the feed long-polls and the chores on a minimal keep-alive HTTP/1.1 client on asyncio
(no aiohttp client machinery per request; chores share a small pool of connections per
process), aiohttp only for the relay WebSockets (idle but for pings). Its CPU is reported.

The same generator runs twice in one invocation, against the cloud's code before this
branch's speed work (``--baseline-ref``, default 8155a9c, exported with ``git archive`` and
run from a temporary folder) and against the working tree; each gets a fresh database on the
same PostgreSQL. Per phase:
- connections held, and the cloud workers' memory per connected box (RSS delta / boxes);
- broadcast: one emergency to the whole city, arrival at every box: p50 / p99 / max, and the
  share within 5 s / 15 s, with the CPU it cost (cloud, PostgreSQL, generator);
- door.open to one box (a command through the feed): p50 / p95, 30 commands;
- resident requests through the relay, landing on any worker (the bus carries them across);
- ingest: pre-signed upload batches from 40 boxes with the fleet connected, and the same with
  no fleet connected;
- failover: one worker SIGKILLed; time until every box's relay socket is held by a live
  worker again, and that every upload attempted was stored (acked) in the end.

    .venv/bin/python bench/fleet.py [--boxes 10000] [--procs 2] [--workers 4] [--no-baseline]

Boxes and communities are created with SQL (one community per box) rather than through 10,000
claim codes: setting-up is not what is measured. The load average (other jobs share the
machine) is recorded per phase. Prints JSON on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench.sync import batch_body  # noqa: E402
from cloudsync.app import token_hash  # noqa: E402
from common import protocol as p  # noqa: E402
from common.relay import PATH as RELAY_PATH  # noqa: E402
from common.relay import pack, unpack  # noqa: E402
from edge.sync.config import SyncConfig  # noqa: E402

VENV_BIN = Path(sys.executable).parent
GOALS = {
    "boxes": 10_000,
    "ingest_rps": 20_000,
    "kb_per_box": 50,
    "broadcast_99pct_s": 5,
    "broadcast_max_s": 15,
    "door_open_p95_s": 1.0,
}
KINDS = ("access_event", "play", "report", "telemetry")
# The simulated boxes' feed and relay back-off after an error (full jitter, doubling), per
# phase: the box before this branch capped both at 60 s, now at SyncConfig.feed_backoff_max_s.
FEED_BACKOFF_MIN, FEED_BACKOFF_MAX = 0.5, 60.0


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (max(hard, 65536), hard):  # root may raise the hard limit too
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            continue
    return soft


# --- the simulated boxes (child processes) --------------------------------------------------


class Http(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection: one request at a time, answers with
    Content-Length (all the cloud sends a box). Far cheaper per request than aiohttp's client,
    which matters when 10,000 boxes share the machine with the cloud they measure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.port = 0  # the local port: bench maps it to the worker serving it (ss)
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    @classmethod
    async def open(cls, host: str, port: int, source: str) -> Http:
        loop = asyncio.get_running_loop()
        _t, proto = await loop.create_connection(cls, host, port, local_addr=(source, 0))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.port = (transport.get_extra_info("sockname") or ("", 0))[1]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        i = head.find(b"\r\ncontent-length:")
        size = int(head[i + 17 : head.find(b"\r\n", i + 2) if head.find(b"\r\n", i + 2) > 0
                        else len(head)]) if i >= 0 else 0  # fmt: skip
        if len(self.buf) < end + 4 + size:
            return
        body = bytes(self.buf[end + 4 : end + 4 + size])
        del self.buf[: end + 4 + size]
        if b"\r\nconnection: close" in head:
            self.closed = True
        self.waiter.set_result((int(head[9:12]), body))

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
        wait_s: float = 40,
    ) -> tuple[int, bytes]:  # fmt: skip
        if self.closed or self.transport is None:
            raise ConnectionError("closed")
        self.waiter = asyncio.get_running_loop().create_future()
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.transport.write(
            f"{method} {path} HTTP/1.1\r\nHost: cloud\r\nContent-Length: {len(body)}\r\n"
            f"{lines}\r\n".encode()
            + body
        )
        try:
            async with asyncio.timeout(wait_s):
                return await self.waiter
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """A few keep-alive connections shared by one process's boxes for their chores; also
    hands out the source addresses, several per process: a reconnect storm leaves thousands
    of client sockets in TIME_WAIT, and one address has only ~28,000 ephemeral ports."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self.host, self.port = host, port
        self.sources = itertools.cycle([f"{prefix}.{k}" for k in range(1, 9)])
        self.idle: list[Http] = []

    @property
    def source(self) -> str:
        return next(self.sources)

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, bytes]:  # fmt: skip
        conn = self.idle.pop() if self.idle else await Http.open(self.host, self.port, self.source)
        got = await conn.request(method, path, headers, body)
        if not conn.closed and len(self.idle) < 64:
            self.idle.append(conn)
        else:
            conn.close()
        return got


RELAY_PAGE = b"<html><body>\xe7\xa4\xbe\xe5\x8c\xba</body></html>"


class SimBox:
    def __init__(self, box_id: str, secret: str, url: str, s: aiohttp.ClientSession,
                 pool: Pool, q: Any) -> None:  # fmt: skip
        self.id, self.secret, self.url, self.s, self.pool, self.q = box_id, secret, url, s, pool, q
        self.cursor = 0
        self.seq = 0  # last seq sent
        self.acked = 0
        self.feed_conn: Http | None = None
        # What the feed loop is doing, for the broadcast tail's analysis: (state, since,
        # back-off slept, last error); state is poll / backoff / connect.
        self.fstate: tuple[str, float, float, str] = ("connect", time.time(), 0.0, "")
        self.ferrors = 0

    def headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        return p.sign(self.secret, self.id, method, path, body)

    async def relay(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                async with self.s.ws_connect(
                    self.url + RELAY_PATH, headers=self.headers("GET", RELAY_PATH),
                    heartbeat=None, autoping=True,
                ) as ws:  # fmt: skip
                    self.q.put(("ws", self.id, time.time()))
                    delay = 0.5
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            head, _ = unpack(msg.data)
                            await ws.send_bytes(pack({"id": head["id"], "status": 200,
                                                      "headers": [["Content-Type", "text/html"]]},
                                                     RELAY_PAGE))  # fmt: skip
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            if stop.is_set():
                return
            self.q.put(("ws_down", self.id, time.time()))
            await asyncio.sleep(random.uniform(0, delay))  # full jitter, like the real box
            delay = min(delay * 2, FEED_BACKOFF_MAX)  # edge/portal/relay.py: the feed's cap

    async def feed(self, stop: asyncio.Event) -> None:
        delay = FEED_BACKOFF_MIN
        err = ""
        while not stop.is_set():
            path = f"/api/v1/box/feed?after={self.cursor}&wait=25"
            try:
                if self.feed_conn is None or self.feed_conn.closed:
                    self.fstate = ("connect", time.time(), 0.0, err)
                    self.feed_conn = await Http.open(self.pool.host, self.pool.port,
                                                     self.pool.source)  # fmt: skip
                sent = time.time()
                self.fstate = ("poll", sent, 0.0, err)
                status, raw = await self.feed_conn.request("GET", path,
                                                           self.headers("GET", path))  # fmt: skip
                if status != 200:  # back off like the real box, never spin
                    self.q.put(("http", self.id, status, time.time()))
                    raise ConnectionError(status)
                got = time.time()
                page = json.loads(raw)
                for item in page.get("items", []):
                    self.q.put(("feed", self.id, item["action"], got, item["args"].get("t", 0),
                                sent, self.feed_conn.port))  # fmt: skip
                self.cursor = page.get("cursor", self.cursor)
                delay = FEED_BACKOFF_MIN
            except (OSError, TimeoutError, ValueError) as e:
                self.ferrors += 1
                ago = time.strftime("%H:%M:%S")  # when: an old error explains nothing
                err = f"{type(e).__name__}:{e.args[0] if e.args else ''} at {ago}"[:50]
                wait = random.uniform(0, delay)
                self.fstate = ("backoff", time.time(), wait, err)
                await asyncio.sleep(wait)
                delay = min(delay * 2, FEED_BACKOFF_MAX)

    def state(self) -> tuple[Any, ...]:
        conn = self.feed_conn
        port = conn.port if conn is not None and not conn.closed else 0
        return (self.id, *self.fstate, port, self.ferrors)

    async def chores(self, stop: asyncio.Event, every_s: float) -> None:
        """Heartbeat and a small upload every ``every_s`` (first one at a random offset)."""
        await asyncio.sleep(random.uniform(0, every_s))
        while not stop.is_set():
            hb = json.dumps({"software_version": "bench", "devices": [], "outbox_rows": 0,
                             "outbox_bytes": 0, "feed_cursor": self.cursor}).encode()  # fmt: skip
            await self.post("/api/v1/box/heartbeat", hb)
            await self.upload(5)
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass

    async def upload(self, n: int) -> None:
        first = self.seq + 1
        self.seq += n
        recs = [
            {"seq": s, "priority": 1, "kind": KINDS[s % 4], "record_id": f"{self.id}-{s}",
             "ts": "2026-11-24T08:00:00.000000+00:00",
             "payload": json.dumps({"n": s, "kind": KINDS[s % 4], "v": 21.5})}
            for s in range(first, first + n)
        ]  # fmt: skip
        body = json.dumps({"floor": self.acked + 1, "records": recs}).encode()
        for attempt in range(20):  # nothing is lost: retry until acked (a worker may die)
            got = await self.post("/api/v1/box/upload", body)
            if got is not None:
                self.acked = max(self.acked, got["acked_through"])
                if self.acked >= self.seq:
                    return
            await asyncio.sleep(random.uniform(0, 0.5 * 2 ** min(attempt, 5)))

    async def post(self, path: str, body: bytes) -> dict[str, Any] | None:
        h = {**self.headers("POST", path, body), "Content-Type": "application/json"}
        try:
            status, raw = await self.pool.request("POST", path, h, body)
            return json.loads(raw) if status == 200 else None
        except (OSError, TimeoutError, ValueError):
            return None


def loadgen(
    boxes: list[tuple[str, str]],
    url: str,
    source: str,
    q: Any,
    stop_evt: Any,
    every_s: float,
    ramp_per_s: float,
    dump_evt: Any,
    backoff: tuple[float, float],
) -> None:
    global FEED_BACKOFF_MIN, FEED_BACKOFF_MAX
    FEED_BACKOFF_MIN, FEED_BACKOFF_MAX = backoff
    raise_fd_limit()

    async def run() -> None:
        conn = aiohttp.TCPConnector(limit=0, local_addr=(f"{source}.100", 0), force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10)
        host, port = url.removeprefix("http://").split(":")
        pool = Pool(host, int(port), source)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as s:
            stop = asyncio.Event()
            sims = [SimBox(b, sec, url, s, pool, q) for b, sec in boxes]
            tasks = []
            for i, sim in enumerate(sims):  # ramp up: a city's boxes do not all boot at once
                tasks += [asyncio.create_task(sim.relay(stop)),
                          asyncio.create_task(sim.feed(stop)),
                          asyncio.create_task(sim.chores(stop, every_s))]  # fmt: skip
                if i % 10 == 9:  # ramp_per_s boxes a second in this process
                    await asyncio.sleep(10 / ramp_per_s)

            async def dump() -> None:  # each box's feed state at the moment the parent asks
                while not await asyncio.to_thread(dump_evt.wait, 1.0):
                    if stop.is_set():
                        return
                q.put(("states", [x.state() for x in sims]))

            tasks.append(asyncio.create_task(dump()))
            await asyncio.to_thread(stop_evt.wait)  # the parent says when the run is over
            stop.set()
            chores = tasks[2:-1:3]  # let uploads in flight finish (they retry until acked)
            await asyncio.wait(chores, timeout=60)
            q.put(("final", [(x.id, x.seq, x.acked) for x in sims]))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


# --- the cloud ---------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def pg_backends(base: Path) -> list[int]:
    """The PostgreSQL server's processes (postmaster and its children)."""
    master = int((base / "data" / "postmaster.pid").read_text().split()[0])
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, kids)]


def workers_of(pid: int) -> list[int]:
    """The serve process's worker processes (not multiprocessing's resource tracker)."""
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


def cloud_cmd(code: Path) -> tuple[list[str], dict[str, str]]:
    """``qilu-cloudsync`` run from ``code`` (the working tree, or an exported older commit)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    return [sys.executable, "-c", "import sys; from cloudsync.cli import main;"
            " sys.argv[0] = 'qilu-cloudsync'; main()"], env  # fmt: skip


def export(ref: str) -> Path:
    """The cloud's code at ``ref`` (cloudsync/ and common/), in a temporary folder."""
    out = Path(tempfile.mkdtemp(prefix="qilu-fleet-base-"))
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "cloudsync", "common"],
                         check=True, capture_output=True, timeout=60).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(out)], input=tar, check=True, timeout=60)
    return out


async def setup_db(dsn: str, n: int, code: Path) -> tuple[list[tuple[str, str]], str]:
    cmd, env = cloud_cmd(code)
    await asyncio.to_thread(
        subprocess.run, [*cmd, "migrate", "--db", dsn], check=True, capture_output=True,
        timeout=120, env=env,
    )  # fmt: skip
    conn = await asyncpg.connect(dsn)
    token = secrets.token_urlsafe(18)
    boxes = [(f"box-{i:06d}", secrets.token_urlsafe(32)) for i in range(n)]
    now = "2026-11-24T00:00:00+00:00"
    try:
        await conn.execute(
            "INSERT INTO areas VALUES ('jinan', NULL, 'city', 'Jinan', '/jinan/', $1)", now
        )
        await conn.execute(
            "INSERT INTO areas SELECT 'd' || d, 'jinan', 'district', 'D' || d,"
            " '/jinan/d' || d || '/', $1 FROM generate_series(0, 9) d",
            now,
        )
        await conn.execute(
            "INSERT INTO areas SELECT 's' || s, 'd' || (s % 10), 'street', 'S' || s,"
            " '/jinan/d' || (s % 10) || '/s' || s || '/', $1 FROM generate_series(0, 99) s",
            now,
        )
        await conn.execute(
            "INSERT INTO areas SELECT 'c' || c, 's' || (c % 100), 'community', 'C' || c,"
            " '/jinan/d' || (c % 10) || '/s' || (c % 100) || '/c' || c || '/', $1"
            " FROM generate_series(0, $2 - 1) c", now, n,
        )  # fmt: skip
        await conn.executemany(
            "INSERT INTO boxes (id, community_id, name, secret, created_at) VALUES"
            " ($1, $2, 'sim', $3, $4)",
            [(b, f"c{i}", sec, now) for i, (b, sec) in enumerate(boxes)],
        )
        await conn.execute(
            "INSERT INTO ops_users (name, token_hash, role, area_id, created_at)"
            " VALUES ('root', $1, 'admin', NULL, $2)", token_hash(token), now,
        )  # fmt: skip
    finally:
        await conn.close()
    return boxes, token


async def transactions(c: asyncpg.Connection) -> int:
    """Transactions committed or rolled back in this database so far (PostgreSQL's
    statistics, flushed by each backend at most once a second)."""
    return await c.fetchval(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database"
        " WHERE datname = current_database()"
    )


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q))], 3) if xs else -1.0


def worker_of_peer(port: int) -> dict[int, int]:
    """Client port -> the cloud worker's pid, for every connection to the cloud's port (the
    workers share the port with SO_REUSEPORT; the kernel picks one per connection)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    got = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 5 or "pid=" not in line:
            continue
        peer = cols[3].rpartition(":")[2]
        pid = line.split("pid=", 1)[1].split(",", 1)[0]
        if peer.isdigit() and pid.isdigit():
            got[int(peer)] = int(pid)
    return got


def tail(states: list[tuple], arrived: dict[str, float], how: dict[str, tuple],
         by_port: dict[int, int], sent: float, n: int) -> dict[str, Any]:  # fmt: skip
    """Why boxes were late: each box's feed state when the broadcast was sent (waiting in a
    long-poll, backing off after an error, connecting) against its arrival time, and the
    arrival per worker for the boxes that were waiting."""
    st = {x[0]: x for x in states}
    classes: dict[str, dict[str, Any]] = {}
    workers: dict[int, list[float]] = {}
    late_reasons: dict[str, int] = {}
    for box, (_id, state, since, slept, err, fport, _nerr) in st.items():
        t = arrived.get(box)
        if state == "poll" and since < sent:
            kind = "waiting in a long-poll"
            w = by_port.get(fport)
            if t is not None and w is not None:
                workers.setdefault(w, []).append(t)
        elif state == "poll":
            kind = "re-polling (poll sent after the broadcast)"
        elif state == "backoff":
            kind = "backing off after an error"
        else:
            kind = "connecting"
        c = classes.setdefault(kind, {"boxes": 0, "arrived": [], "missing": 0, "late_5s": 0,
                                      "backoff_s": []})  # fmt: skip
        c["boxes"] += 1
        if t is None:
            c["missing"] += 1
        else:
            c["arrived"].append(t)
            c["late_5s"] += t > 5
        if state == "backoff":
            c["backoff_s"].append(since + slept - sent)  # back-off left when it was sent
        if t is None or t > 5:
            why = err or "no error before"
            late_reasons[why] = late_reasons.get(why, 0) + 1
    for c in classes.values():
        xs = c.pop("arrived")
        c["p50_s"], c["p99_s"] = pct(xs, 0.5), pct(xs, 0.99)
        c["max_s"] = round(max(xs), 2) if xs else -1
        b = c.pop("backoff_s")
        if b:
            c["backoff_left_p50_s"], c["backoff_left_max_s"] = pct(b, 0.5), round(max(b), 2)
    late_polls = [how[b] for b, t in arrived.items() if t > 5 and b in how]
    return {
        "states_reported": len(st), "boxes": n, "classes": classes,
        "late_or_missing_last_error": dict(sorted(late_reasons.items(), key=lambda kv: -kv[1])[:8]),
        # late boxes whose answering poll was sent before the broadcast: the server was slow
        "late_answered_by_a_poll_sent_before": sum(1 for e in late_polls if e[5] < sent),
        "waiting_by_worker": {str(w): {"boxes": len(xs), "first_s": round(min(xs), 2),
                                       "p50_s": pct(xs, 0.5),
                                       "p99_s": pct(xs, 0.99), "max_s": round(max(xs), 2)}
                              for w, xs in sorted(workers.items())},
        "feed_sockets_mapped_to_workers": len(by_port),
    }  # fmt: skip


async def ingest(url: str, boxes: list[tuple[str, str]], start_seq: int, batches: int,
                 size: int) -> dict[str, Any]:  # fmt: skip
    """bench/sync.py's ingest: bodies built, gzip'd and signed before the clock starts."""
    path = "/api/v1/box/upload"
    bodies = []
    for i, (box_id, secret) in enumerate(boxes):
        mine = []
        for k in range(batches):
            gz = gzip.compress(batch_body(i, start_seq + k * size + 1, size), 3)
            mine.append(
                (
                    gz,
                    {  # signed over the body as sent (the cloud checks before inflating)
                        **p.sign(secret, box_id, "POST", path, gz, encoding="gzip"),
                        "Content-Encoding": "gzip",
                        "Content-Type": "application/json",
                    },
                )
            )
        bodies.append(mine)  # fmt: skip
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def one(mine: list[tuple[bytes, dict[str, str]]]) -> None:
            for gz, headers in mine:
                async with s.post(url + path, data=gz, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(m) for m in bodies))
        wall = time.perf_counter() - t0
    total = len(boxes) * batches * size
    return {"records": total, "seconds": round(wall, 2), "records_per_s": round(total / wall)}


async def ops(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s,
        s.request(method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status in (200, 201), await r.text()
        return await r.json()


async def phase(name: str, code: Path, pg: Any, args: argparse.Namespace,
                work: Path) -> dict[str, Any]:  # fmt: skip
    """One full run (cloud, fleet, measurements) with the cloud's code from ``code``."""
    backoff = args.feed_backoff if code == ROOT else args.baseline_feed_backoff
    print(f"--- phase {name}: cloud code from {code}, box feed/relay back-off {backoff}",
          file=sys.stderr)  # fmt: skip
    result: dict[str, Any] = {"load_avg_start": [round(x, 2) for x in os.getloadavg()],
                              "box_feed_backoff_s": list(backoff)}  # fmt: skip
    cloud = None
    procs: list[Any] = []
    try:
        conn = await asyncpg.connect(pg.dsn)
        await conn.execute(f"CREATE DATABASE fleet_{name}")
        await conn.close()
        dsn = pg.url(f"fleet_{name}")
        boxes, token = await setup_db(dsn, args.boxes, code)
        port = 18000 + random.randrange(1000)
        cmd, env = cloud_cmd(code)
        cloud = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything is timed)
            [*cmd, "--log-level", "WARNING", "serve", "--db", dsn,
             "--blobs", str(work / "blobs"), "--port", str(port), "--workers",
             str(args.workers)],
            start_new_session=True, stdout=subprocess.DEVNULL, env=env,
            stderr=(work / f"cloud-{name}.log").open("w"),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        workers = workers_of(cloud.pid)
        idle = sum(rss_kb(w) for w in workers)
        # Baseline ingest with no fleet connected (boxes 0..39: real identities).
        ingest_boxes = boxes[:40]
        result["ingest_no_fleet"] = await ingest(url, ingest_boxes, 0, 10, 500)
        rss0 = {w: rss_kb(w) for w in workers}  # warm: after the baseline ingest
        print(f"workers {workers}, idle RSS {sum(rss0.values()) // 1024} MB", file=sys.stderr)

        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        stop_evt = ctx.Event()
        dump_evt = ctx.Event()
        fleet = boxes[40:] if args.boxes > 100 else boxes
        shares = [fleet[i :: args.procs] for i in range(args.procs)]
        procs = [ctx.Process(target=loadgen, args=(shares[i], url, f"127.{i + 1}.1", q,
                                                   stop_evt, args.chores_s, args.ramp / args.procs,
                                                   dump_evt, backoff))
                 for i in range(args.procs)]  # fmt: skip
        for pr in procs:
            pr.start()
        ws_up: set[str] = set()
        events: list[tuple] = []
        finals: list[tuple[str, int, int]] = []
        states: list[tuple] = []
        http_errors: dict[int, int] = {}

        def drain() -> None:
            while True:
                try:
                    ev = q.get_nowait()
                except Exception:
                    return
                if ev[0] == "ws":
                    ws_up.add(ev[1])
                    events.append(ev)
                elif ev[0] == "ws_down":
                    ws_up.discard(ev[1])
                    events.append(ev)
                elif ev[0] == "http":
                    http_errors[ev[2]] = http_errors.get(ev[2], 0) + 1
                elif ev[0] == "final":
                    finals.extend(ev[1])
                elif ev[0] == "states":
                    states.extend(ev[1])
                else:
                    events.append(ev)

        t0 = time.monotonic()
        last = 0.0
        while len(ws_up) < len(fleet) and time.monotonic() - t0 < args.connect_timeout:
            await asyncio.sleep(0.5)
            drain()
            if time.monotonic() - last > 10:
                last = time.monotonic()
                print(f"{len(ws_up)} relay sockets at {last - t0:.0f} s", file=sys.stderr)
        result["connect_s"] = round(time.monotonic() - t0, 1)
        await asyncio.sleep(5)  # feed long-polls settle
        drain()
        # what a connected, idle fleet costs the cloud (heartbeats, uploads, pings, re-polls)
        gens = [pr.pid for pr in procs]
        c = await asyncpg.connect(dsn)
        cpu0, gen0, t_cpu = cpu_s(workers), cpu_s(gens), time.monotonic()
        pgi0, tx0 = cpu_s(pg_backends(pg.base)), await transactions(c)
        await asyncio.sleep(10)
        drain()
        # Database transactions (statements outside a transaction block count one each): a
        # measure of the work per request that the machine's load does not blur.
        result["db_transactions_per_s_fleet_idle"] = round(
            (await transactions(c) - tx0) / (time.monotonic() - t_cpu), 1
        )
        result["postgres_cpu_pct_fleet_idle"] = round(
            100 * (cpu_s(pg_backends(pg.base)) - pgi0) / (time.monotonic() - t_cpu), 1
        )
        result["cloud_cpu_pct_fleet_idle"] = round(
            100 * (cpu_s(workers) - cpu0) / (time.monotonic() - t_cpu), 1
        )
        result["loadgen_cpu_pct_fleet_idle"] = round(
            100 * (cpu_s(gens) - gen0) / (time.monotonic() - t_cpu), 1
        )
        result["connected_relay_sockets"] = len(ws_up)
        result["held_by_live_workers"] = await c.fetchval(
            "SELECT count(*) FROM relay_sockets s JOIN pg_stat_activity a"
            " ON a.pid = s.worker_pid AND a.backend_start = s.worker_start"
        )
        rss1 = {w: rss_kb(w) for w in workers}
        delta = sum(rss1.values()) - sum(rss0.values())
        result["cloud_rss_mb"] = {"fresh": idle // 1024, "after_ingest": sum(rss0.values()) // 1024,
                                  "fleet": sum(rss1.values()) // 1024}  # fmt: skip
        # Per box: against the warm workers, and (upper bound) against the fresh ones, which
        # also counts what the baseline ingest left allocated.
        result["kb_per_box"] = round(delta / max(1, len(ws_up)), 1)
        result["kb_per_box_vs_fresh"] = round((sum(rss1.values()) - idle) / max(1, len(ws_up)), 1)
        print(f"connected {len(ws_up)} in {result['connect_s']} s, cloud {result['kb_per_box']}"
              f" KB per box (warm), load {os.getloadavg()[0]:.1f}", file=sys.stderr)  # fmt: skip

        # door.open to one box at a time
        events.clear()
        lat = []
        ops_errors: list[str] = []
        for _ in range(30):
            box_id = random.choice(fleet)[0]
            sent = time.time()
            try:
                await ops(url, token, "POST", f"/api/v1/ops/boxes/{box_id}/commands",
                          {"target_kind": "door", "target_id": "door-1", "action": "open",
                           "args": {"t": sent}})  # fmt: skip
            except (aiohttp.ClientError, TimeoutError, AssertionError) as exc:
                ops_errors.append(f"door.open: {exc!r}"[:200])  # an overloaded cloud: lost
                lat.append(99.0)
                continue
            deadline = time.monotonic() + 5
            got = None
            while got is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                drain()
                got = next((e for e in events if e[0] == "feed" and e[2] == "open"
                            and e[4] == sent), None)  # fmt: skip
            lat.append(got[3] - sent if got else 5.0)
            await asyncio.sleep(0.1)
        result["ops_errors"] = ops_errors
        result["door_open_s"] = {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "max": max(lat),
                                 "lost": sum(1 for x in lat if x >= 5.0)}  # fmt: skip

        # emergency broadcast to the whole city
        events.clear()
        cpu0, pg0, gen0 = cpu_s(workers), cpu_s(pg_backends(pg.base)), cpu_s(gens)
        await asyncio.sleep(1.2)  # statistics of what came before are flushed
        tx0, t_tx = await transactions(c), time.monotonic()
        dump_evt.set()  # every box's feed state now, and which worker holds each feed socket
        by_port = await asyncio.to_thread(worker_of_peer, port)
        sent = time.time()
        try:
            await ops(url, token, "POST", "/api/v1/ops/emergency",
                      {"message": "暴雨红色预警", "targets": {"areas": ["jinan"]},
                       "duration_s": 600})  # fmt: skip
        except (aiohttp.ClientError, TimeoutError, AssertionError) as exc:
            ops_errors.append(f"emergency: {exc!r}"[:200])
        api_s = time.time() - sent
        deadline = time.monotonic() + 30
        arrived: dict[str, float] = {}
        how: dict[str, tuple] = {}  # box -> its "feed" event (poll sent at, local port)
        while len(arrived) < len(fleet) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            drain()
            for e in events:
                if e[0] == "feed" and e[2] == "emergency" and e[1] not in arrived:
                    arrived[e[1]] = e[3] - sent
                    how[e[1]] = e
        times = sorted(arrived.values())
        await asyncio.sleep(1.2)
        # Beyond what the idle fleet would have made in the same time, per box reached.
        tx_extra = (await transactions(c) - tx0) - result["db_transactions_per_s_fleet_idle"] * (
            time.monotonic() - t_tx
        )
        bcast_cpu = {
            "cloud": round(cpu_s(workers) - cpu0, 2),
            "postgres": round(cpu_s(pg_backends(pg.base)) - pg0, 2),
            "fleet_loadgen": round(cpu_s(gens) - gen0, 1),
            "wall": round(time.time() - sent, 2),
        }
        result["broadcast"] = {
            "boxes": len(fleet), "arrived": len(times), "api_call_s": round(api_s, 2),
            "p50_s": pct(times, 0.5), "p99_s": pct(times, 0.99),
            "max_s": round(times[-1], 3) if times else -1,
            "within_5s": round(sum(1 for t in times if t <= 5) / len(fleet), 4),
            "within_15s": round(sum(1 for t in times if t <= 15) / len(fleet), 4),
            "cpu_s": bcast_cpu,
            "db_transactions_per_box": round(max(0.0, tx_extra) / max(1, len(times)), 2),
            # CPU the broadcast cost beyond the idle fleet's (measured just before), per box
            "cloud_cpu_ms_per_box": round(1000 * max(0.0, bcast_cpu["cloud"] - bcast_cpu["wall"]
                * result["cloud_cpu_pct_fleet_idle"] / 100) / max(1, len(times)), 2),
            "postgres_cpu_ms_per_box": round(1000 * max(0.0, bcast_cpu["postgres"]
                - bcast_cpu["wall"] * result["postgres_cpu_pct_fleet_idle"] / 100)
                / max(1, len(times)), 2),
        }  # fmt: skip
        print(f"broadcast {result['broadcast']}", file=sys.stderr)
        result["broadcast_tail"] = tail(states, arrived, how, by_port, sent, len(fleet))
        print(f"broadcast tail {json.dumps(result['broadcast_tail'])}", file=sys.stderr)

        # resident requests through the relay, landing on any worker
        rl = []
        async with aiohttp.ClientSession() as s:
            for i in range(100):
                box = random.randrange(40, args.boxes) if args.boxes > 100 else i % args.boxes
                t = time.perf_counter()
                async with s.get(f"{url}/r/read", cookies={"qilu_box": f"box-{box:06d}"}) as r:
                    await r.read()
                    ok = r.status == 200
                rl.append(time.perf_counter() - t if ok else 99.0)
        result["relay_request_s"] = {
            "p50": pct(rl, 0.5),
            "p95": pct(rl, 0.95),
            "failed": sum(1 for x in rl if x == 99.0),
            "cross_worker_share": round(1 - 1 / args.workers, 2),
        }

        # ingest with the fleet connected
        # where the CPU goes while ingesting: cloud workers, PostgreSQL, the simulated fleet
        cpu0, pg0, gen0 = cpu_s(workers), cpu_s(pg_backends(pg.base)), cpu_s(gens)
        result["ingest_with_fleet"] = await ingest(url, ingest_boxes, 5000, 10, 500)
        result["ingest_with_fleet"]["cpu_s"] = {
            "cloud": round(cpu_s(workers) - cpu0, 1),
            "postgres": round(cpu_s(pg_backends(pg.base)) - pg0, 1),
            "fleet_loadgen": round(cpu_s(gens) - gen0, 1),
        }
        print(f"ingest {result['ingest_with_fleet']}", file=sys.stderr)

        # failover: SIGKILL one worker
        victim = workers[0]
        events.clear()
        os.kill(victim, signal.SIGKILL)
        t_kill = time.monotonic()
        held = 0
        marks: dict[str, float] = {}  # share of the fleet held again -> seconds after the kill
        while time.monotonic() - t_kill < 120:
            await asyncio.sleep(0.25)
            drain()
            held = await c.fetchval(
                "SELECT count(*) FROM relay_sockets s JOIN pg_stat_activity a"
                " ON a.pid = s.worker_pid AND a.backend_start = s.worker_start"
            )
            for share in (0.9, 0.99, 0.999):
                if held >= share * len(fleet) and str(share) not in marks:
                    marks[str(share)] = round(time.monotonic() - t_kill, 2)
            if held >= len(fleet) and time.monotonic() - t_kill > 1:
                break
        dropped = {e[1] for e in events if e[0] == "ws_down"}
        # Per box of the killed worker: from its socket dropping to its next socket opening,
        # and how many attempts failed in between (each one backed off).
        down: dict[str, float] = {}
        back: list[float] = []
        fails: dict[str, int] = {}
        for e in sorted((e for e in events if e[0] in ("ws", "ws_down")), key=lambda e: e[2]):
            if e[0] == "ws_down":
                fails[e[1]] = fails.get(e[1], -1) + 1
                down.setdefault(e[1], e[2])
            elif e[1] in down:
                back.append(e[2] - down.pop(e[1]))
        result["failover"] = {"killed_worker_boxes": len(dropped),
                              "all_held_again_s": round(time.monotonic() - t_kill, 2),
                              "held": held, "held_share_at_s": marks,
                              "box_reconnect_s": {"p50": pct(back, 0.5), "p99": pct(back, 0.99),
                                                  "max": round(max(back), 2) if back else -1},
                              "boxes_with_failed_attempts": sum(1 for v in fails.values() if v),
                              "failed_attempts": sum(fails.values())}  # fmt: skip
        print(f"failover {result['failover']}", file=sys.stderr)
        await asyncio.sleep(3)
        result["loadgen_cpu_s_total"] = round(cpu_s(gens), 1)
        stop_evt.set()
        t = time.monotonic()
        while len(finals) < len(fleet) and time.monotonic() - t < 60:
            await asyncio.sleep(0.2)
            drain()
        for pr in procs:
            pr.join(30)
        rows = {r["id"]: r["acked_seq"] for r in await c.fetch(
            "SELECT id, acked_seq FROM boxes WHERE id <> ALL($1::text[])",
            [b for b, _ in ingest_boxes])}  # fmt: skip
        n, size = await c.fetchrow(
            "SELECT count(*), (SELECT sum(pg_total_relation_size(relid))::bigint"
            " FROM pg_partition_tree('records')) FROM records"  # partitioned since 0006
        )
        result["records_table"] = {"rows": n, "bytes_per_row_with_indexes": round(size / n)}
        await c.close()
        unacked = sum(1 for b, seq, acked in finals if acked < seq or rows.get(b, 0) < acked)
        result["feed_http_errors"] = http_errors
        result["uploads"] = {"boxes_reporting": len(finals),
                             "records_sent": sum(seq for _, seq, _ in finals),
                             "boxes_with_unacked_records": unacked}  # fmt: skip
    finally:
        for pr in procs:
            if pr.is_alive():
                pr.kill()
        if cloud is not None and cloud.poll() is None:
            os.killpg(cloud.pid, signal.SIGKILL)
            cloud.wait(10)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["cloud_log"] = log_summary(work / f"cloud-{name}.log")
    return result


def log_summary(path: Path) -> dict[str, Any]:
    """What the cloud logged (it runs at WARNING): counts per kind of line, and the slow
    relay requests' own account of where their time went (cloudsync/relay_bus.py)."""
    kinds: dict[str, int] = {}
    slow: list[str] = []
    broadcasts: list[str] = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        if not line or line[0].isspace() or line.startswith("Traceback"):
            continue
        if ("relay" in line and " took " in line) or "answered in" in line:
            slow.append(line[-220:])
        elif "feed: " in line and " took " in line:  # a broadcast slow to insert and notify
            broadcasts.append(line[-160:])
        key = "".join("N" if ch.isdigit() else ch for ch in line[:70])
        kinds[key] = kinds.get(key, 0) + 1
    top = dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:10])
    return {"lines_by_kind": top, "slow_relay": len(slow), "slow_relay_samples": slow[:12],
            "slow_broadcasts": broadcasts[:5]}  # fmt: skip


SIDE = (  # (label, phase result path) for the side-by-side table
    ("relay sockets connected", ("connected_relay_sockets",)),
    ("connect time s", ("connect_s",)),
    ("cloud KB per box (warm)", ("kb_per_box",)),
    ("cloud KB per box (from fresh)", ("kb_per_box_vs_fresh",)),
    ("cloud CPU % idle fleet", ("cloud_cpu_pct_fleet_idle",)),
    ("postgres CPU % idle fleet", ("postgres_cpu_pct_fleet_idle",)),
    ("loadgen CPU % idle fleet", ("loadgen_cpu_pct_fleet_idle",)),
    ("door.open p95 s", ("door_open_s", "p95")),
    ("broadcast arrived", ("broadcast", "arrived")),
    ("broadcast p50 s", ("broadcast", "p50_s")),
    ("broadcast p99 s", ("broadcast", "p99_s")),
    ("broadcast max s", ("broadcast", "max_s")),
    ("broadcast within 5 s", ("broadcast", "within_5s")),
    ("broadcast within 15 s", ("broadcast", "within_15s")),
    ("DB transactions/s, idle fleet", ("db_transactions_per_s_fleet_idle",)),
    ("broadcast DB transactions/box", ("broadcast", "db_transactions_per_box")),
    ("broadcast cloud CPU ms/box", ("broadcast", "cloud_cpu_ms_per_box")),
    ("broadcast postgres CPU ms/box", ("broadcast", "postgres_cpu_ms_per_box")),
    ("broadcast loadgen CPU s", ("broadcast", "cpu_s", "fleet_loadgen")),
    ("relay request p95 s", ("relay_request_s", "p95")),
    ("ingest rec/s, no fleet", ("ingest_no_fleet", "records_per_s")),
    ("ingest rec/s, fleet connected", ("ingest_with_fleet", "records_per_s")),
    ("failover s", ("failover", "all_held_again_s")),
    ("boxes with unacked records", ("uploads", "boxes_with_unacked_records")),
    ("load average at start", ("load_avg_start",)),
)


def dig(d: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        d = d.get(k) if isinstance(d, dict) else None
    return d


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boxes", type=int, default=10_000)
    ap.add_argument("--procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--workers", type=int, default=4, help="cloud worker processes")
    ap.add_argument("--chores-s", type=float, default=60.0, help="heartbeat + upload interval")
    ap.add_argument("--connect-timeout", type=float, default=240.0)
    ap.add_argument(
        "--ramp", type=float, default=200.0, help="boxes connecting per second (all processes)"
    )
    ap.add_argument(
        "--baseline-ref",
        default="0c91158",
        help="commit whose cloud code is the baseline (main before the fleet10k branch)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="measure the working tree only")
    ap.add_argument("--new-first", action="store_true", help="run the working tree's phase first")
    ap.add_argument(
        "--feed-backoff",
        type=float,
        nargs=2,
        default=(SyncConfig().backoff_min_s, SyncConfig().feed_backoff_max_s),
        metavar=("MIN", "MAX"),
        help="the simulated boxes' feed and relay back-off (full jitter), working tree phase",
    )
    ap.add_argument(
        "--baseline-feed-backoff",
        type=float,
        nargs=2,
        default=(0.5, 60.0),
        metavar=("MIN", "MAX"),
        help="the same for the baseline phase (the box before this branch: 0.5 to 60 s)",
    )
    args = ap.parse_args()
    # A timeout's SIGTERM still runs the finally below (cloud, load generators, PostgreSQL).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    limit = raise_fd_limit()
    from tests.cloudsync.helpers import start_pg

    pg = start_pg(fsync=True)
    work = Path(tempfile.mkdtemp(prefix="qilu-fleet-"))
    result: dict[str, Any] = {"boxes": args.boxes, "workers": args.workers,
                              "loadgen_procs": args.procs, "fd_limit": limit,
                              "cores": os.cpu_count()}  # fmt: skip
    phases = [] if args.no_baseline else [("baseline", export(args.baseline_ref))]
    phases.append(("new", ROOT))
    if args.new_first:
        phases.reverse()
    try:
        for name, code in phases:
            result[name] = await phase(name, code, pg, args, work)
            # each phase's figures as soon as it ends: a run stopped later still has them
            print(f"phase {name} {json.dumps(result[name], ensure_ascii=False)}", file=sys.stderr)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
        for _name, code in phases:
            if code != ROOT:
                shutil.rmtree(code, ignore_errors=True)
    if not args.no_baseline:
        result["baseline"]["code"] = args.baseline_ref
        rows = [(label, dig(result["baseline"], path), dig(result["new"], path))
                for label, path in SIDE]  # fmt: skip
        print(f"{'':34} {'baseline':>18} {'new':>18}", file=sys.stderr)
        for label, a, b in rows:
            print(f"{label:34} {a!s:>18} {b!s:>18}", file=sys.stderr)
    result["goals"] = GOALS
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
