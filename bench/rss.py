"""Daemon RSS with the face models and 100,000 templates, measured the way systemd runs it.

    .venv/bin/python bench/rss.py [--baseline 0c91158] [--templates 100000]

Each side runs ``python -m edge run --config FILE`` (what the unit's ``ExecStart=qilu-edge run``
runs) with the ``Environment=`` lines of that side's own systemd/qilu-edge.service and a
``NOTIFY_SOCKET`` as systemd gives it; RSS is read from /proc once the daemon says READY=1
(every service started, the port open), then it gets SIGTERM. Before = the code of the
baseline commit (``git archive`` into /tmp, run with this venv: same libraries, same models,
a copy of the same database), after = this checkout, in the same run. The breakdown groups
/proc/PID/smaps by what is mapped (anonymous memory: heaps, the template matrix, model
weights; files: each native library). Then, for each side in a process of its own, what
the lazily loaded parts add once used (a WebRTC call, a pass link, a QR code, the first
report) and what door traffic adds (face regions of every size) - RSS at start is not the
whole story.

Prints readable lines, then one JSON object on the LAST line (bench/face.py includes it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "0c91158"  # main before the RSS work (issue 15's memory target)
READY_TIMEOUT_S = 300.0


def fill(data_dir: Path, templates: int) -> None:
    """A database with ``templates`` random unit templates, two per resident (a child
    process: the bench itself stays free of the daemon's imports)."""
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import numpy as np
from edge.core.standard import Resident
from edge.core.store import Store
from edge.faces import store as sf
st = Store({str(data_dir / "qilu.db")!r})
rng = np.random.default_rng(1)
n, chunk = {templates}, 10000
for start in range(0, n, chunk):
    k = min(chunk, n - start)
    with st.transaction():
        for r in range(start // 2, (start + k + 1) // 2):
            sf.add_resident(st, Resident(id=f"r{{r}}", name="x"))
    v = rng.normal(size=(k, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sf.add_templates_bulk(st, [(f"t{{start + i}}", f"r{{(start + i) // 2}}", v[i])
                               for i in range(k)])
st.close()
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=900)


def unit_env(root: Path) -> dict[str, str]:
    """The ``Environment=`` assignments of that code's qilu-edge.service."""
    env: dict[str, str] = {}
    unit = root / "systemd" / "qilu-edge.service"
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment="):
            for item in shlex.split(line.partition("=")[2]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def config(data_dir: Path) -> Path:
    path = data_dir / "edge.toml"
    path.write_text(
        f'[box]\ndata_dir = "{data_dir}"\n[mqtt]\nenabled = false\n[api]\nport = 0\n'
        f'[faces]\nmodel_dir = "{ROOT / "models"}"\n',
        encoding="utf-8",
    )
    return path


def group(path: str) -> str:
    if not path or path.startswith("["):
        return "anonymous (heaps, matrix, model weights)" if path in ("", "[heap]") else path
    if "/site-packages/" in path:
        pkg = path.split("/site-packages/")[1].split("/")[0]
        pkg = re.sub(r"(\.libs|\.cpython.*|-[0-9].*)$", "", pkg).lstrip("_")
        return {"opencv_python_headless": "cv2", "pillow": "PIL"}.get(pkg, pkg)
    name = path.rsplit("/", 1)[-1]
    return "libpython" if name.startswith("libpython") else name.split(".so")[0]


def breakdown(pid: int, top: int = 14) -> dict[str, float]:
    """RSS (MB) per group of mappings, largest first."""
    sizes: Counter[str] = Counter()
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+$", head[0]):
            name = head[5] if len(head) > 5 else ""
        elif head[0] == "Rss:":
            sizes[group(name)] += int(head[1])
    out = {k: round(v / 1024, 1) for k, v in sizes.most_common(top)}
    out["(rest)"] = round(sum(v for _, v in sizes.most_common()[top:]) / 1024, 1)
    return out


def status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            out[key] = int(value)
    return out


def run_daemon(code: Path, data_dir: Path) -> dict:
    """Start the daemon of ``code`` as systemd would, read its memory at READY=1, stop it."""
    cfg = config(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OPENBLAS_"))}
    env.update(unit_env(code))
    sock_path = data_dir / "notify.sock"
    env.update(QILU_EDGE_CONFIG=str(cfg), NOTIFY_SOCKET=str(sock_path), PYTHONPATH=str(code))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(1.0)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)],
                            cwd=code, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if proc.poll() is not None:
                return {"error": (proc.stderr.read() if proc.stderr else "")[-400:]}
            if time.monotonic() - t0 > READY_TIMEOUT_S:
                return {"error": f"no READY=1 within {READY_TIMEOUT_S:.0f} s"}
            try:
                if b"READY=1" in sock.recv(4096):
                    break
            except TimeoutError:
                continue
        ready_s = round(time.monotonic() - t0, 1)
        time.sleep(2.0)  # a beat for the services' first background rounds
        out = {"rss_mb": status(proc.pid)["VmRSS"], "ready_s": ready_s, **status(proc.pid),
               "breakdown_mb": breakdown(proc.pid),
               "unit_environment": {k: v for k, v in unit_env(code).items()
                                    if k not in ("QILU_EDGE_CONFIG",)}}
        return out
    finally:
        sock.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


LAZY = """
import asyncio, importlib, json, sys
sys.path.insert(0, sys.argv[1])
from edge.features import load_config
from edge.daemon import Daemon

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)

async def main():
    d = Daemon(load_config(sys.argv[2]))
    box = await d.start()
    out = {"at_start_in_process": rss()}
    try:  # what a ringing call loads (WebRTC); main's code had it all in rtc.py
        importlib.import_module("edge.intercom.media")
    except ImportError:
        importlib.import_module("edge.intercom.rtc")
    out["after_first_call"] = rss()
    from edge.core.qr import qr_svg
    from edge.portal import pass_links
    qr_svg("x")
    pass_links.unseal("t", pass_links.seal("t", "123456"))
    import pywebpush  # noqa: F401  (a push to a subscribed phone)
    out["after_call_pass_link_qr_push"] = rss()
    await box.service("reports").analyze("楼道的灯坏了，谢谢")  # the text model
    out["after_first_report"] = rss()
    # Door traffic: a face approaching a 1280x720 door camera, searched in a region around
    # it (FacePipeline.detect_region) of every size it can have (96..640 px in 32 px steps).
    import numpy as np
    p = box.service("faces").pipeline
    frame = np.zeros((720, 1280, 3), np.uint8)
    for w in range(30, 530, 6):
        p.detect_region(frame, (400.0, 100.0, float(w), float(w)))
    out["after_door_regions_of_every_size"] = rss()
    print(json.dumps(out))
    await d.stop()

asyncio.run(main())
"""


def lazy_costs(code: Path, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OPENBLAS_"))}
    env.update(unit_env(code))
    out = subprocess.run([sys.executable, "-c", LAZY, str(code), str(config(data_dir))],
                         capture_output=True, text=True, timeout=600, env=env, cwd=code)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-400:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_tree(ref: str, into: Path) -> Path:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref],
                         capture_output=True, text=True, check=True).stdout.strip()
    tree = into / f"code-{sha}"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    # weights and the report model are not in git: the same files as this checkout
    shutil.rmtree(tree / "models", ignore_errors=True)
    (tree / "models").symlink_to(ROOT / "models")
    return tree


def measure(templates: int = 100_000, baseline: str | None = BASELINE) -> dict:
    work = Path(tempfile.mkdtemp(prefix="qilu-rss-bench-"))
    try:
        seed = work / "seed"
        seed.mkdir()
        fill(seed, templates)
        res: dict = {"templates": templates, "how": "python -m edge run (= qilu-edge run) "
                     "with the unit's Environment=, RSS at sd_notify READY=1 + 2 s"}
        sides = [("after", ROOT)]
        if baseline:
            sides.insert(0, ("before", baseline_tree(baseline, work)))
            res["baseline"] = baseline
        for side, code in sides:
            data = work / f"data-{side}"
            shutil.copytree(seed, data)
            res[side] = run_daemon(code, data)
            data = work / f"data-{side}-lazy"
            shutil.copytree(seed, data)
            res[f"{side}_lazy_loads_mb"] = lazy_costs(code, data)
        if "before" in res and "rss_mb" in res["before"] and "rss_mb" in res["after"]:
            res["saved_mb"] = round(res["before"]["rss_mb"] - res["after"]["rss_mb"], 1)
        if "rss_mb" in res["after"]:
            res["rss_mb"] = res["after"]["rss_mb"]
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--templates", type=int, default=100_000)
    ap.add_argument("--baseline", default=BASELINE, help="commit to compare with ('' = none)")
    args = ap.parse_args()
    res = measure(args.templates, args.baseline or None)
    for side in ("before", "after"):
        if side in res:
            r = res[side]
            print(f"{side}: RSS {r.get('rss_mb')} MB (anon {r.get('RssAnon')}, files "
                  f"{r.get('RssFile')}, {r.get('Threads')} threads) {r.get('error', '')}")
            for k, v in r.get("breakdown_mb", {}).items():
                print(f"    {v:7.1f} MB  {k}")
    for side in ("before", "after"):
        if f"{side}_lazy_loads_mb" in res:
            print(f"{side}, in process, once used: {res[f'{side}_lazy_loads_mb']}")
    res["target_le_250mb"] = (res.get("rss_mb") or 1e9) <= 250
    print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()
