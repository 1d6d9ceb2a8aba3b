"""Updates that can never brick a box: new wheel -> new venv -> atomic switch -> health -> keep
or roll back.

Layout under the install root (``/opt/qilu-edge``)::

    venvs/<version>/      one virtualenv per installed version
    current -> venvs/...  what systemd runs (ExecStart=/opt/qilu-edge/current/bin/qilu-edge)
    previous -> venvs/... the version before, for rollback
    downloads/            fetched wheels, checked by sha256 before anything else happens
    update-state.json     the last update's outcome (shown by ``qilu-edge update status``)

The running venv is never modified: the new version is installed beside it, ``current`` is
switched with one ``rename`` (atomic on POSIX), the daemon restarted, and only a daemon that
reports healthy *with the new version* for the settle time keeps it; anything else switches
``current`` back and restarts the old one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)
WHEEL_NAME = re.compile(
    r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$"
)


class UpdateError(RuntimeError):
    """The update did not happen; the box runs what it ran before."""


@dataclass
class UpdateResult:
    outcome: str  # "updated", "rolled_back", "unchanged"
    version: str  # the version running now
    attempted: str
    detail: str
    steps: list[str] = field(default_factory=list)


@dataclass
class Updater:
    root: Path = Path("/opt/qilu-edge")
    restart_cmd: list[str] = field(
        default_factory=lambda: ["systemctl", "restart", "qilu-edge.service"]
    )
    health_url: str = "http://127.0.0.1:8080/api/v1/status"
    health_timeout_s: float = 90.0
    settle_s: float = 5.0  # healthy for this long after the first good answer
    python: str = sys.executable  # builds the new venv
    venv_args: list[str] = field(default_factory=list)
    pip_args: list[str] = field(default_factory=list)  # e.g. --no-index --find-links DIR
    say: Callable[[str], None] = log.info
    # Face models of the new version ([faces] model_dir, where install.sh fetched them): its
    # manifest may name other files, and a daemon missing one refuses to start. None: skip.
    models_dir: Path | None = None

    @property
    def current(self) -> Path:
        return self.root / "current"

    def current_version(self) -> str | None:
        target = self._target(self.current)
        return target.name.split("+", 1)[0] if target else None

    # -- the whole path ------------------------------------------------------------------
    def update(self, url: str, sha256: str) -> UpdateResult:
        steps: list[str] = []

        def step(msg: str) -> None:
            steps.append(msg)
            self.say(msg)

        with self._lock():
            wheel = self.fetch(url, sha256)
            step(f"fetched {wheel.name}, sha256 verified")
            version = wheel_version(wheel)
            if version == self.current_version():
                return UpdateResult("unchanged", version, version, "already running", steps)
            old = self._target(self.current)
            venv = self.build_venv(wheel, version)
            step(f"installed into {venv}")
            self._smoke(venv, version)
            step(f"{venv.name}/bin/qilu-edge --version reports {version}")
            if self._text_model(venv):
                step("built the report text model")
            if self._models(venv):
                step(f"face models of {version} fetched and verified in {self.models_dir}")
            self.switch(venv)
            step(f"switched current -> {venv.relative_to(self.root)}")
            self._restart()
            ok, why = self.wait_healthy(version)
            if ok:
                if old is not None:
                    self._link(self.root / "previous", old)
                self._prune(keep={venv, old})
                step(f"daemon healthy on {version}: {why}")
                result = UpdateResult("updated", version, version, why, steps)
            else:
                step(f"daemon NOT healthy on {version}: {why}; rolling back")
                result = self._roll_back(old, version, why, steps)
                shutil.rmtree(venv, ignore_errors=True)
            self._save_state(result)
            return result

    def rollback(self) -> UpdateResult:
        """Switch back to ``previous`` by hand (e.g. a problem noticed days later)."""
        with self._lock():
            prev = self._target(self.root / "previous")
            if prev is None or not prev.exists():
                raise UpdateError("no previous version to roll back to")
            now = self._target(self.current)
            self.switch(prev)
            self._restart()
            ok, why = self.wait_healthy(prev.name.split("+", 1)[0])
            if now is not None:
                self._link(self.root / "previous", now)
            outcome = "rolled_back" if ok else "rolled_back_unhealthy"
            result = UpdateResult(outcome, prev.name, prev.name, why, [f"switched to {prev.name}"])
            self._save_state(result)
            return result

    # -- steps --------------------------------------------------------------------------
    def fetch(self, url: str, sha256: str) -> Path:
        sha256 = sha256.lower().strip()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise UpdateError("sha256 must be 64 hex digits")
        name = Path(urllib.request.url2pathname(url.split("?", 1)[0].rsplit("/", 1)[-1])).name
        if not WHEEL_NAME.match(name):
            raise UpdateError(f"{name!r} is not a wheel file name (name-version-...-.whl)")
        dest_dir = self.root / "downloads"
        dest_dir.mkdir(parents=True, exist_ok=True)
        part = dest_dir / (name + ".part")
        digest = hashlib.sha256()
        src = url if "://" in url else Path(url).resolve().as_uri()
        try:
            with urllib.request.urlopen(src, timeout=60) as r, part.open("wb") as out:
                while chunk := r.read(1 << 16):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise UpdateError(f"cannot fetch {url}: {e}") from e
        if digest.hexdigest() != sha256:
            part.unlink(missing_ok=True)
            raise UpdateError(
                f"sha256 mismatch for {name}: got {digest.hexdigest()}, expected {sha256}"
            )
        final = dest_dir / name
        os.replace(part, final)
        return final

    def build_venv(self, wheel: Path, version: str) -> Path:
        venvs = self.root / "venvs"
        venvs.mkdir(parents=True, exist_ok=True)
        venv = venvs / version
        if venv.exists():  # same version reinstalled: never touch a venv that may be running
            venv = venvs / f"{version}+{datetime.now(UTC):%Y%m%d%H%M%S}"
        self._run([self.python, "-m", "venv", *self.venv_args, str(venv)], "create venv")
        py = venv / "bin" / "python"
        has_pip = (venv / "bin" / "pip").exists()
        # A venv made --without-pip is filled by the builder's pip aimed at it.
        pip = [str(py), "-m", "pip"] if has_pip else [self.python, "-m", "pip", "--python", str(py)]
        try:
            self._run(
                [*pip, "install", "--disable-pip-version-check", "-q", *self.pip_args, str(wheel)],
                "pip install",
            )
        except UpdateError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        return venv

    def _smoke(self, venv: Path, version: str) -> None:
        exe = venv / "bin" / "qilu-edge"
        try:
            out = subprocess.run(
                [str(exe), "--version"], capture_output=True, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(venv, ignore_errors=True)
            raise UpdateError(f"new version does not start: {e}") from e
        if out.returncode != 0 or version not in out.stdout:
            shutil.rmtree(venv, ignore_errors=True)
            raise UpdateError(
                f"new version's `qilu-edge --version` failed: {(out.stdout + out.stderr).strip()}"
            )

    def _text_model(self, venv: Path) -> bool:
        """The report text model, built into the new venv as install.sh builds it into its
        own: the daemon only loads it, and the unit's ProtectSystem=strict keeps it from
        writing under /opt, so without it every report would fail. False for a build without
        the reports capability."""
        exe = str(venv / "bin" / "qilu-edge")
        try:
            has = subprocess.run([exe, "report", "retrain", "--help"], capture_output=True,
                                 timeout=60).returncode == 0  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            has = False
        if not has:
            return False
        try:
            self._run([exe, "report", "retrain"], "build the report text model")
        except UpdateError:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        return True

    def _models(self, venv: Path) -> bool:
        """The new version's face models, fetched and verified (sha256) by its own
        `qilu-edge models fetch` before anything is switched: a manifest naming a file the box
        lacks would stop the new daemon at start, and the update would roll back saying only
        that nothing answered. False for a build without the models capability."""
        if self.models_dir is None:
            return False
        exe = str(venv / "bin" / "qilu-edge")
        try:
            has = subprocess.run([exe, "models", "--help"], capture_output=True,
                                 timeout=60).returncode == 0  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            has = False
        if not has:
            return False
        try:
            self._run([exe, "models", "fetch", "--dir", str(self.models_dir)],
                      "fetch the new version's face models")  # fmt: skip
        except UpdateError as e:
            shutil.rmtree(venv, ignore_errors=True)
            raise UpdateError(f"{e}; the box keeps running {self.current_version()}") from e
        return True

    def switch(self, venv: Path) -> None:
        self._link(self.current, venv)

    def wait_healthy(self, version: str) -> tuple[bool, str]:
        deadline = time.monotonic() + self.health_timeout_s
        last = "no answer"
        good_since: float | None = None
        while time.monotonic() < deadline:
            ok, last = self._probe(version)
            now = time.monotonic()
            if ok:
                good_since = good_since or now
                if now - good_since >= self.settle_s:
                    return True, last
            else:
                good_since = None  # a crash-and-restart loop never counts as healthy
            time.sleep(0.25)
        return False, f"{last} (within {self.health_timeout_s:.0f} s)"

    def _probe(self, version: str) -> tuple[bool, str]:
        try:
            with urllib.request.urlopen(self.health_url, timeout=3) as r:
                body = json.loads(r.read() or b"{}")
        except (OSError, ValueError) as e:
            return False, f"health check: {e}"
        running = (body.get("versions") or {}).get("qilu_edge") or body.get("version")
        if running != version:
            return False, f"daemon reports version {running!r}, expected {version!r}"
        return True, f"{self.health_url} answers with version {version}"

    def _roll_back(
        self, old: Path | None, version: str, why: str, steps: list[str]
    ) -> UpdateResult:
        if old is None:
            return UpdateResult(
                "failed", version, version, f"{why}; nothing to roll back to", steps
            )
        self.switch(old)
        steps.append(f"switched current -> {old.relative_to(self.root)}")
        self._restart()
        ok, back = self.wait_healthy(old.name.split("+", 1)[0])
        steps.append(f"old version {'healthy' if ok else 'NOT healthy'}: {back}")
        self.say(steps[-1])
        return UpdateResult("rolled_back", old.name, version, why, steps)

    # -- plumbing -----------------------------------------------------------------------
    def _restart(self) -> None:
        if self.restart_cmd:
            self._run(self.restart_cmd, "restart the daemon")

    def _run(self, cmd: list[str], what: str) -> None:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise UpdateError(f"{what}: {e}") from e
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip()[-800:]
            raise UpdateError(f"{what} failed ({shlex.join(cmd)}): {tail}")

    def _link(self, link: Path, target: Path) -> None:
        # Relative targets keep the tree valid when mounted elsewhere (an SD-card image).
        tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.path.relpath(target, link.parent))
        os.replace(tmp, link)  # rename(2): readers see the old or the new link, never none

    @staticmethod
    def _target(link: Path) -> Path | None:
        if not link.is_symlink():
            return None
        return (link.parent / os.readlink(link)).resolve()

    def _prune(self, keep: set[Path | None]) -> None:
        venvs = self.root / "venvs"
        keep_resolved = {p.resolve() for p in keep if p is not None}
        prev = self._target(self.root / "previous")
        if prev:
            keep_resolved.add(prev)
        for v in venvs.iterdir():
            if v.resolve() not in keep_resolved:
                shutil.rmtree(v, ignore_errors=True)

    def _save_state(self, result: UpdateResult) -> None:
        state = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "outcome": result.outcome,
            "running": result.version,
            "attempted": result.attempted,
            "detail": result.detail,
            "steps": result.steps,
        }
        path = self.root / "update-state.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False, indent=2))
        os.replace(tmp, path)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".update.lock").open("w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as e:
                raise UpdateError("another update is running") from e
            yield


def wheel_version(wheel: Path) -> str:
    m = WHEEL_NAME.match(wheel.name)
    if not m:
        raise UpdateError(f"{wheel.name!r} is not a wheel file name")
    return m.group("version")
