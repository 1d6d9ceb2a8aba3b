"""Gzip bombs against a real cloud process: memory, /healthz latency and time to refuse.

Issue 13 #5: twelve ~61 KB gzip bodies (63 MB inflated) with bogus signatures, to
``/api/v1/provision`` and ``/api/v1/box/upload`` (signature versions 2 and 1), sent at once
while /healthz is polled every 100 ms. Run side by side in one go: this tree's cloud, and
(``--baseline-rev``, default the commit before the fix) the same flood against that
revision's cloud, exported with ``git archive`` and run from the same venv.

    .venv/bin/python bench/cloud_bodies.py [--baseline-rev 4341c76] [--rounds 3]

Prints a JSON object on its last line. The machine is shared: latencies are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from common import protocol as p  # noqa: E402
from tests.cloudsync.helpers import start_cloud  # noqa: E402

UPLOAD = "/api/v1/box/upload"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def one_round(s: aiohttp.ClientSession, url: str, pid: int, calls: list, bomb: bytes) -> dict:
    """All calls at once while /healthz is polled; RSS peak, time to refuse, worst latency."""
    before = peak = rss_mb(pid)
    health: list[float] = []
    done = asyncio.Event()

    async def post(path: str, h: dict) -> int:
        async with s.post(url + path, data=bomb, headers=h) as r:
            await r.read()
            return r.status

    async def watch() -> None:
        nonlocal peak
        for _ in range(1200):  # bounded: 2 minutes
            t0 = time.monotonic()
            async with s.get(url + "/healthz") as r:
                await r.read()
            health.append(time.monotonic() - t0)
            peak = max(peak, rss_mb(pid))
            if done.is_set():
                return
            await asyncio.sleep(0.1)

    w = asyncio.create_task(watch())
    t0 = time.monotonic()
    statuses = await asyncio.gather(*(post(*c) for c in calls))
    took = time.monotonic() - t0
    done.set()
    await w
    return {
        "statuses": sorted(set(statuses)),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "refused_all_s": round(took, 2),
        "healthz_ms_max": round(max(health) * 1000, 1),
    }


async def flood(src: Path | None, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="qilu-bench-bodies-"))
    old_path = os.environ.get("PYTHONPATH")
    if src is not None:  # the cloud subprocesses import cloudsync from the exported revision
        os.environ["PYTHONPATH"] = str(src)
    try:
        cloud = await start_cloud(str(tmp / "cloud.db"), tmp, subprocess_=True)
    finally:
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path
    try:
        ident = await cloud.new_box()
        bomb = gzip.compress(b" " * (63 * 1024 * 1024), 9)
        gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        assert cloud.proc is not None
        pid = cloud.proc.pid
        out: dict = {"bomb_bytes": len(bomb), "rounds": []}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
            idle: list[float] = []
            for _ in range(20):  # baseline latency with nothing else going on
                t0 = time.monotonic()
                async with s.get(cloud.url + "/healthz") as r:
                    await r.read()
                idle.append(time.monotonic() - t0)
                await asyncio.sleep(0.05)
            out["idle_healthz_ms_max"] = round(max(idle) * 1000, 1)
            for _ in range(rounds):
                forged = p.sign("wrong", ident.box_id, "POST", UPLOAD, bomb, encoding="gzip")
                # Version 1 (older boxes): no version header; digest taken while inflating.
                v1 = {k: v for k, v in forged.items() if k != p.H_SIG_VERSION}
                calls = (
                    [("/api/v1/provision", gz)] * 4
                    + [(UPLOAD, {**forged, **gz})] * 4
                    + [(UPLOAD, {**v1, **gz})] * 4
                )
                out["rounds"].append(await one_round(s, cloud.url, pid, calls, bomb))
        return out
    finally:
        await cloud.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def run(base_src: Path, rev: str, rounds: int) -> dict:
    return {
        "this_tree": await flood(None, rounds),
        f"baseline_{rev}": await flood(base_src, rounds),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-rev", default="4341c76")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base_src = Path(tempfile.mkdtemp(prefix="qilu-bench-base-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_rev],
                                 check=True, capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive, check=True)
        result = asyncio.run(run(base_src, args.baseline_rev, args.rounds))
    finally:
        shutil.rmtree(base_src, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
