"""The cloud service's config file (TOML, ``serve --config``), validated once into typed
objects. Every section is optional; config/cloud.example.toml shows them all."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cloudsync.retention import RetentionConfig


class ConfigError(ValueError):
    """The config file is unreadable or invalid; the message names the file and the field."""


class CloudConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


def load_config(path: str | Path | None) -> CloudConfig:
    """The config in ``path``; the defaults when no file is named."""
    if path is None:
        return CloudConfig()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    try:
        config = CloudConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in e.errors()
        )
        raise ConfigError(f"{path}: {problems}") from e
    export_dir = config.retention.export_dir
    if "export_dir" in raw.get("retention", {}) and not export_dir.is_absolute():
        # A path written in the file is relative to the file's folder, not to the cwd.
        config.retention.export_dir = (path.parent / export_dir).resolve()
    return config
