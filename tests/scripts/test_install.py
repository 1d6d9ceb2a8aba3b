"""scripts/install.sh and uninstall.sh in a throw-away root (--prefix), and
`systemd-analyze verify` on the units as installed there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from common.version import __version__
from edge.features import parse_config
from edge.sync.config import SyncConfig

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--disable-pip-version-check", str(REPO), "-w", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (w,) = out.glob("qilu-*.whl")  # the all-in-one distribution a checkout builds
    return w


# The box's venv sees this test venv's packages (dependencies), so nothing is downloaded.
SITE = next(p for p in sys.path if p.endswith("site-packages"))
ENV = os.environ | {"PYTHONPATH": SITE}


def install(root: Path, wheel: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / "scripts/install.sh"), "--prefix", str(root), "--wheel", str(wheel),
         "--venv-arg", "--without-pip", "--pip-arg", "--no-deps", "--pip-arg", "--no-index",
         *extra],
        capture_output=True, text=True, timeout=120, env=ENV,
    )  # fmt: skip


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "venvs" not in p.parts}


@pytest.mark.timeout(900)  # the first report trains the text model (see below)
def test_install_into_a_prefix_is_complete_and_idempotent(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    r = install(root, wheel, "--community", "lixia-c1", "--box-id", "box-007")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "skipping apt" in r.stdout  # no apt, user or systemctl in a throw-away root

    conf = root / "etc/qilu-edge/edge.toml"
    cfg = parse_config(conf.read_text(), source=conf)
    assert (cfg.box.id, cfg.box.community) == ("box-007", "lixia-c1")
    assert str(cfg.box.data_dir) == "/var/lib/qilu-edge"
    assert cfg.installer.advertise and cfg.api.host == "0.0.0.0"
    # The config keeps only the hash; the token is in a root-only file the CLI reads.
    entry = cfg.api.tokens[0]
    assert entry.token is None and entry.token_file == Path("/etc/qilu-edge/staff-token")
    token_file = root / "etc/qilu-edge/staff-token"
    token = token_file.read_text().strip()
    assert len(token) >= 24 and token in r.stdout and token not in conf.read_text()
    assert entry.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    opt = root / "opt/qilu-edge"
    assert os.readlink(opt / "current") == f"venvs/{__version__}"
    exe = opt / "current/bin/qilu-edge"
    out = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, timeout=60, env=ENV
    )
    assert __version__ in out.stdout, out.stderr
    # Files outside the packages (taxonomy, training corpus, model manifest) come with the
    # wheel: the installed box classifies a report without the checkout. Its text model is
    # built from the shipped corpus on first use here (install.sh builds it on a real box),
    # which takes 10-60 s on a busy 2-core machine, hence the long timeout.
    out = subprocess.run(
        [str(exe), "report", "classify", "电梯困人了，快来救命", "--json"],
        capture_output=True, text=True, timeout=600, env=ENV, cwd=root,
    )
    assert json.loads(out.stdout)["urgency"] == "immediate", out.stderr
    assert list((opt / "current/share/qilu-edge/models").glob("manifest.toml"))

    mosq = (root / "etc/mosquitto/conf.d/qilu-edge.conf").read_text()
    assert "listener 1883 127.0.0.1" in mosq
    units = root / "etc/systemd/system"
    assert (units / "qilu-edge.service").exists() and (units / "qilu-cloudsync.service").exists()
    wants = units / "multi-user.target.wants"
    assert os.readlink(wants / "qilu-edge.service") == "/etc/systemd/system/qilu-edge.service"
    assert not (wants / "qilu-cloudsync.service").exists()  # only with --cloud
    assert (root / "var/lib/qilu-edge").is_dir()

    before = tree(root)
    conf_before = conf.read_text()
    r = install(root, wheel)  # again, without the identity options
    assert r.returncode == 0, r.stderr
    assert "already installed" in r.stdout and "keeping /etc/qilu-edge/edge.toml" in r.stdout
    assert conf.read_text() == conf_before  # same identity, same token
    assert tree(root) == before


def test_systemd_analyze_verifies_the_installed_units(tmp_path: Path, wheel: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing (scripts/setup.sh test installs systemd)")
    root = tmp_path / "root"
    assert install(root, wheel, "--cloud").returncode == 0
    for unit in ("qilu-edge.service", "qilu-cloudsync.service"):
        r = subprocess.run(
            ["systemd-analyze", "verify", "--recursive-errors=no", f"--root={root}",
             f"/etc/systemd/system/{unit}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert r.stderr.strip() == "", r.stderr  # no unknown keys or other warnings
    text = (root / "etc/systemd/system/qilu-edge.service").read_text()
    for key in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "ReadWritePaths=",
    ):
        assert key in text


def test_an_installed_box_takes_cloud_roll_outs_through_the_root_update_unit(
    tmp_path: Path, wheel: Path
) -> None:
    """The daemon's unit (user qilu-edge, ProtectSystem=strict, NoNewPrivileges) can neither
    write /opt/qilu-edge nor restart itself, and install.sh set no update hook: every cloud
    roll-out paused at an installed box. Now its hook asks a root oneshot service through a
    path unit (tests/edge/installer/test_update.py runs that path with the real updater)."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing (scripts/setup.sh test installs systemd)")
    root = tmp_path / "root"
    r = install(root, wheel)
    assert r.returncode == 0, r.stderr + r.stdout
    conf = root / "etc/qilu-edge/edge.toml"
    cfg = parse_config(conf.read_text(), source=conf)
    hook = cfg.section(SyncConfig).update_command
    assert hook == "/opt/qilu-edge/current/bin/qilu-edge update request"
    units = root / "etc/systemd/system"
    for unit in ("qilu-edge-update.path", "qilu-edge-update.service"):
        v = subprocess.run(
            ["systemd-analyze", "verify", "--recursive-errors=no", f"--root={root}",
             f"/etc/systemd/system/{unit}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert v.returncode == 0, v.stderr
        assert v.stderr.strip() == "", v.stderr
    path_unit = (units / "qilu-edge-update.path").read_text()
    svc = (units / "qilu-edge-update.service").read_text()
    data = str(cfg.box.data_dir)
    assert f"PathExists={data}/update-request.json" in path_unit  # inside ReadWritePaths
    assert f"--request {data}/update-request.json" in svc and "User=root" in svc
    assert "update run-request" in svc
    wants = units / "multi-user.target.wants"
    link = os.readlink(wants / "qilu-edge-update.path")
    assert link == "/etc/systemd/system/qilu-edge-update.path"
    edge_unit = (units / "qilu-edge.service").read_text()
    assert f"ReadWritePaths={data}" in edge_unit


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """One plain install (no identity options, no --cloud), made once for the tests below that
    change what they get: each works on its own copy (``installed_copy``)."""
    root = tmp_path_factory.mktemp("installed") / "root"
    r = install(root, wheel)
    assert r.returncode == 0, r.stderr + r.stdout
    return root


@pytest.fixture
def installed_copy(installed: Path, tmp_path: Path) -> Path:
    # symlinks=True: opt/qilu-edge/current and the units' wants/ links stay links
    return shutil.copytree(installed, tmp_path / "root", symlinks=True)


def test_systemd_analyze_catches_a_broken_unit(installed_copy: Path) -> None:
    root = installed_copy
    unit = root / "etc/systemd/system/qilu-edge.service"
    unit.write_text(unit.read_text().replace("ExecStart=", "ExecStart=/nonexistent/bin/x\n#"))
    r = subprocess.run(
        ["systemd-analyze", "verify", "--recursive-errors=no", f"--root={root}",
         "/etc/systemd/system/qilu-edge.service"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode != 0 and "nonexistent" in r.stderr


def test_an_identity_the_daemon_would_refuse_is_refused_before_anything_is_written(
    tmp_path: Path, wheel: Path
) -> None:
    """`--community "Lixia C1"` (capitals, a space: what an installer types) was written into
    edge.toml as is and install.sh said "installed"; the daemon then refused the config at
    every start, and a second run with the right value kept the bad file ("written once")."""
    root = tmp_path / "root"
    r = install(root, wheel, "--community", "Lixia C1", "--box-id", "box-001")
    assert r.returncode != 0, r.stdout
    assert "box.community" in r.stderr and "Lixia C1" in r.stderr, r.stderr
    assert not (root / "etc/qilu-edge/edge.toml").exists()
    assert not (root / "etc/qilu-edge/staff-token").exists()  # no token for a config not written
    r = install(root, wheel, "--community", "lixia-c1", "--box-id", "box-001")
    assert r.returncode == 0, r.stderr + r.stdout
    conf = root / "etc/qilu-edge/edge.toml"
    assert parse_config(conf.read_text(), source=conf).box.community == "lixia-c1"


def test_a_second_run_does_not_silently_take_an_updated_box_back(
    installed_copy: Path, wheel: Path, tmp_path: Path
) -> None:
    """After `qilu-edge update apply` (or a cloud roll-out) moved the box to a newer version,
    an installer who ran install.sh again from the original stick "to repair" (as its header
    invites) switched `current` back to the older version and restarted it on a database the
    newer one had migrated, saying only "already installed"."""
    from tests.edge.installer.test_update import build_wheel  # (it imports this module)

    root, opt = installed_copy, installed_copy / "opt/qilu-edge"
    newer = build_wheel(tmp_path, "99.0.0")  # what `qilu-edge update apply` installed
    venv = opt / "venvs/99.0.0"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
         "--no-deps", "--no-index", "--disable-pip-version-check", str(newer)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (opt / "current").unlink()
    (opt / "current").symlink_to("venvs/99.0.0")  # as the updater switches it
    r = install(root, wheel)  # the stick's older version
    assert r.returncode != 0, r.stdout
    assert "99.0.0" in r.stderr and "--downgrade" in r.stderr, r.stderr
    assert os.readlink(opt / "current") == "venvs/99.0.0"
    r = install(root, wheel, "--downgrade")  # on purpose
    assert r.returncode == 0, r.stderr + r.stdout
    assert os.readlink(opt / "current") == f"venvs/{__version__}"


def test_uninstall_keeps_data_unless_purged(installed_copy: Path) -> None:
    root = installed_copy
    (root / "var/lib/qilu-edge/qilu.db").write_text("data")
    for _ in range(2):  # idempotent
        r = subprocess.run(
            ["bash", str(REPO / "scripts/uninstall.sh"), "--prefix", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
    assert not (root / "opt/qilu-edge").exists()
    assert not (root / "etc/systemd/system/qilu-edge.service").exists()
    assert not (root / "etc/mosquitto/conf.d/qilu-edge.conf").exists()
    assert (root / "etc/qilu-edge/edge.toml").exists()
    assert (root / "var/lib/qilu-edge/qilu.db").read_text() == "data"
    r = subprocess.run(
        ["bash", str(REPO / "scripts/uninstall.sh"), "--prefix", str(root), "--purge"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert not (root / "etc/qilu-edge").exists() and not (root / "var/lib/qilu-edge").exists()


@pytest.fixture(scope="module")
def common_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """qilu-common, built once for both the box and the cloud install below."""
    return build("common", tmp_path_factory.mktemp("common"))


def build(dist: str, out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--disable-pip-version-check", str(REPO), "-w", str(out)],
        check=True, capture_output=True, timeout=180, env=os.environ | {"QILU_DIST": dist},
    )  # fmt: skip
    (w,) = out.glob(f"qilu_{dist}-*.whl")
    return w


@pytest.mark.parametrize(
    ("dist", "runs", "absent", "not_required"),
    [
        ("edge", "import edge.daemon, edge.cli, drivers.registry", "cloudsync", ("asyncpg",)),
        (
            "cloudsync",
            "import cloudsync.app, cloudsync.cli",
            "edge",
            ("opencv-python-headless", "ai-edge-litert", "jieba", "numpy", "pysenti"),
        ),
    ],
)
def test_box_and_cloud_install_alone_with_only_their_own_dependencies(
    tmp_path: Path, common_wheel: Path, dist: str, runs: str, absent: str,
    not_required: tuple[str, ...],
) -> None:
    wheels = [common_wheel, build(dist, tmp_path / dist)]
    requires = subprocess.run(
        ["unzip", "-p", str(wheels[1]), "*.dist-info/METADATA"], capture_output=True, text=True
    ).stdout
    assert f"Requires-Dist: qilu-common=={__version__}" in requires
    # an optional extra (qilu-cloudsync[retrain] trains the text model) may name them
    required = "\n".join(x for x in requires.splitlines() if "extra ==" not in x)
    for name in not_required:
        assert f"Requires-Dist: {name}" not in required, name
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
         "--no-deps", "--no-index", "--disable-pip-version-check", *map(str, wheels)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    py = [str(venv / "bin/python"), "-c"]
    cwd = tmp_path  # not the checkout, whose folders would be importable from the cwd
    ok = subprocess.run([*py, runs], capture_output=True, text=True, env=ENV, cwd=cwd)
    assert ok.returncode == 0, ok.stderr
    gone = subprocess.run([*py, f"import {absent}"], capture_output=True, text=True, env=ENV,
                          cwd=cwd)
    assert gone.returncode != 0 and "No module named" in gone.stderr

