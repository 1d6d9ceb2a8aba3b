"""Reading residents' submissions (JSON or multipart with photos) within hard limits.

Everything is validated before anything is stored: a bad field raises InputError naming it,
and the caller stores nothing. Photos are kept in memory until the database write succeeds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from edge.core.http import read_form
from edge.core.standard import new_id

# Magic bytes, not the declared content type, decide what a file is.
IMAGE_TYPES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"RIFF", "image/webp", "webp"),  # checked further below (WEBP at offset 8)
)


class InputError(ValueError):
    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


@dataclass
class Photo:
    data: bytes
    mime: str
    ext: str
    sha256: str


@dataclass
class Submission:
    fields: dict[str, str]
    photos: list[Photo]


def sniff_image(data: bytes) -> tuple[str, str] | None:
    for magic, mime, ext in IMAGE_TYPES:
        if data.startswith(magic) and (ext != "webp" or data[8:12] == b"WEBP"):
            return mime, ext
    return None


async def read_submission(
    request: web.Request, *, max_photos: int, max_photo_bytes: int, max_field_chars: int = 4000
) -> Submission:
    """Fields and photos from a JSON body or a multipart form (photos under ``photos``)."""
    ctype = request.content_type
    if ctype == "application/json":
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError("(body)", f"not valid JSON: {e}") from e
        except RecursionError:
            raise InputError("(body)", "JSON nested too deep") from None
        if not isinstance(data, dict):
            raise InputError("(body)", "must be a JSON object")
        if "photos" in data:
            raise InputError("photos", "send photos as multipart/form-data files")
        fields = {}
        for k, v in data.items():
            if v is None:
                continue
            if not isinstance(v, str | int | float | bool):
                raise InputError(k, "must be a string")
            fields[k] = str(v)
        return Submission(fields, [])
    if ctype != "multipart/form-data":
        raise InputError("(body)", "send application/json or multipart/form-data", 415)
    try:
        form = await read_form(
            request,
            files={"photos": (max_photos, max_photo_bytes), "photo": (max_photos, max_photo_bytes)},
            max_field_bytes=max_field_chars * 4,  # UTF-8: at most 4 bytes a character
        )
    except web.HTTPException as e:
        err = json.loads(e.text or "{}")
        raise InputError(err.get("field", "(body)"), err.get("error", "").partition(": ")[2],
                         e.status) from None
    photos: list[Photo] = []
    for _, data in form.files.get("photos", []) + form.files.get("photo", []):
        if len(photos) >= max_photos:
            raise InputError("photos", f"at most {max_photos} photos", 413)
        kind = sniff_image(data)
        if kind is None:
            raise InputError(
                "photos", f"photo {len(photos) + 1} is not a JPEG, PNG or WebP image", 415
            )
        photos.append(Photo(data, kind[0], kind[1], hashlib.sha256(data).hexdigest()))
    for name, value in form.fields.items():
        if len(value) > max_field_chars:
            raise InputError(name, f"longer than {max_field_chars} characters")
    return Submission(form.fields, photos)


def text_field(
    fields: dict[str, Any], name: str, *, required: bool = False, max_chars: int = 100
) -> str | None:
    value = fields.get(name)
    value = value.strip() if isinstance(value, str) else None
    if not value:
        if required:
            raise InputError(name, "required")
        return None
    if len(value) > max_chars:
        raise InputError(name, f"at most {max_chars} characters (got {len(value)})")
    return value


def save_photos(
    data_dir: Path, photo_dir: str, photos: list[Photo], owner_kind: str, owner_id: str,
    stage: str,
) -> list[dict[str, Any]]:
    """Write photo files (fsynced) and return their rows; the caller deletes them on failure."""
    rows = []
    now = datetime.now(UTC)
    folder = data_dir / photo_dir / now.strftime("%Y/%m")
    folder.mkdir(parents=True, exist_ok=True)
    for p in photos:
        pid = new_id("ph")
        path = folder / f"{pid}.{p.ext}"
        with open(path, "wb") as f:
            f.write(p.data)
            f.flush()
            os.fsync(f.fileno())
        rows.append(
            {
                "id": pid,
                "owner_kind": owner_kind,
                "owner_id": owner_id,
                "stage": stage,
                "ts": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "path": str(path.relative_to(data_dir)),
                "mime": p.mime,
                "bytes": len(p.data),
                "sha256": p.sha256,
            }
        )
    return rows


def delete_photos(data_dir: Path, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        (data_dir / r["path"]).unlink(missing_ok=True)


def sweep_orphans(data_dir: Path, photo_dir: str, known: set[str]) -> list[Path]:
    """Delete photo files the box wrote (``ph-*``) that no row names: a kill -9 between a
    photo's file and its row's commit leaves one. Run at start-up, before any upload."""
    root = data_dir / photo_dir
    gone = []
    if not root.is_dir():
        return gone
    for path in root.rglob("ph-*"):
        if path.is_file() and str(path.relative_to(data_dir)) not in known:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone
