"""The box's cloud identity (box id + secret), written by ``qilu-edge provision``.

The file is created with mode 0600 from the start (never written world-readable and then
chmod'ed) and replaced atomically, so a crash mid-rotation leaves the old or the new secret,
never half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.core.files import to_folder_owner


@dataclass(frozen=True)
class Identity:
    cloud: str  # base URL, e.g. https://cloud.example.cn
    box_id: str
    secret: str
    community_id: str = ""
    area_path: str = ""


def identity_path(config: Any) -> Path:
    return config.box.data_dir / config.sync.identity_file


def load(path: Path) -> Identity | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return Identity(**data)


def save(path: Path, ident: Identity) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        to_folder_owner(fd, path.parent)  # `sudo qilu-edge provision`: the daemon reads it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(ident), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # in case the file existed with wider bits
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
