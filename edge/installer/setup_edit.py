"""Edit the box's TOML config for the first-boot wizard, keeping the installer's comments.

Only the few keys the wizard owns are touched (``[box]`` id/community/name, the cloud URL) and
accepted device blocks are appended; the result is validated as a whole with the same loader
the daemon uses before anything is written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from edge.core.config import CoreConfig, reparse

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def set_keys(text: str, table: str, values: dict[str, Any]) -> str:
    """Set ``key = value`` lines inside ``[table]``; add the table or keys when missing."""
    lines = text.splitlines()
    todo = {k: v for k, v in values.items() if v is not None}
    if not todo:
        return text
    current, header_at = None, None
    for i, line in enumerate(lines):
        if m := _HEADER.match(line):
            current = m.group(1).strip()
            if current == table and not line.lstrip().startswith("[["):
                header_at = i
            continue
        if current != table:
            continue
        km = re.match(r"^(\s*)([A-Za-z0-9_-]+)(\s*=\s*)(.*)$", line)
        if km and km.group(2) in todo:
            comment = _trailing_comment(km.group(4))
            value = _toml_value(todo.pop(km.group(2)))
            lines[i] = f"{km.group(1)}{km.group(2)}{km.group(3)}{value}{comment}"
    if todo:
        new = [f"{k} = {_toml_value(v)}" for k, v in todo.items()]
        if header_at is None:
            lines += ["", f"[{table}]", *new]
        else:
            lines[header_at + 1 : header_at + 1] = new
    return "\n".join(lines) + "\n"


def _trailing_comment(rest: str) -> str:
    # A '#' outside a string starts the comment; values the wizard sets are simple scalars.
    in_str = False
    for i, ch in enumerate(rest):
        if ch == '"':
            in_str = not in_str
        elif ch == "#" and not in_str:
            j = i
            while j > 0 and rest[j - 1] == " ":
                j -= 1
            return rest[j:]
    return ""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def device_block(kind: str, fields: dict[str, Any]) -> str:
    if kind not in ("doors", "cameras", "screens"):
        raise ValueError(f"devices.kind: must be doors, cameras or screens (got {kind!r})")
    for k in fields:
        # A bare TOML key only: a name with "=", quotes or a line break wrote whole blocks
        # into the file (an admin [[api.tokens]] from a staff token: security probe 4).
        if not isinstance(k, str) or not _BARE_KEY.fullmatch(k):
            raise ValueError(f"devices.field: {str(k)[:40]!r} is not a field name"
                             " (letters, digits, _ and - only)")
    body = "\n".join(f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None)
    return f"\n[[{kind}]]\n{body}\n"


def cloud_key(config: CoreConfig) -> tuple[str, str] | None:
    """(table, key) of the cloud URL in the sync capability's section, if that exists."""
    for section in ("sync", "cloud"):
        sec = getattr(config, section, None)
        if sec is None:
            continue
        for key in ("url", "cloud_url", "base_url", "server"):
            if key in type(sec).model_fields:
                return section, key
    return None


def apply(
    text: str, source: Path, wizard: dict[str, Any], like: CoreConfig
) -> tuple[str, CoreConfig]:
    """The new config text and its validated config (the same model as ``like``, the running
    box's); raises ConfigError/ValueError."""
    current = reparse(like, text, source=source)
    box = {k: wizard.get(k) for k in ("community", "name")}
    if wizard.get("box_id"):
        box["id"] = wizard["box_id"]
    text = set_keys(text, "box", box)
    if wizard.get("cloud_url") is not None:
        where = cloud_key(current)
        if where is None:
            if wizard["cloud_url"]:
                raise ValueError(
                    "cloud_url: the cloud is set by provisioning (POST /api/v1/installer/provision "
                    "or `qilu-edge provision`), not in the config"
                )
        else:
            text = set_keys(text, where[0], {where[1]: wizard["cloud_url"]})
    for dev in wizard.get("devices") or []:
        dev = dict(dev)
        text += device_block(dev.pop("kind", "doors"), dev)
    return text, reparse(like, text, source=source)


def write_atomically(path: Path, text: str) -> None:
    """Keep the old file as .bak and replace in one rename, so a power cut leaves one of them.
    Both hold the staff tokens: they are created 0600 (owner only), whatever the old mode was."""
    tmp = path.with_name(f".{path.name}.tmp")
    _write_private(tmp, text.encode())
    if path.exists():
        _write_private(path.with_name(path.name + ".bak"), path.read_bytes())
    os.replace(tmp, path)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file that is 0600 from its first byte on (fsynced)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
