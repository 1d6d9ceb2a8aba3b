"""The config kernel: one TOML file, validated once at start-up into typed objects.

The core sections live here; each capability's section lives in edge/<feature>/config.py and
the composition root (edge/features.py) assembles them into the box's ``Config``.

Everything downstream receives these frozen objects and never looks at raw TOML. A bad file
fails as a whole with messages that name the key and the line, so the daemon never starts
half-configured.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import logging
import os
import re
import tomllib
import warnings
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

DEVICE_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DEVICE_KINDS = ("doors", "cameras", "screens")
log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration file is unusable; the message names every bad key and its line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


S = TypeVar("S", bound=Section)


class BoxConfig(Section):
    id: str = Field("box-dev", pattern=DEVICE_ID)
    community: str = Field("demo-community", pattern=DEVICE_ID)
    name: str = ""
    data_dir: Path = Path("/var/lib/qilu-edge")
    timezone: str = "Asia/Shanghai"


class StoreConfig(Section):
    path: str = "qilu.db"  # relative to box.data_dir
    backup_dir: str = "backups"  # relative to box.data_dir
    event_retention_days: int = Field(30, ge=1)


class MqttConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    topic_prefix: str = Field("qilu", pattern=r"^[a-z0-9_-]+$")
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # Door commands (and box updates) over MQTT: off by default, as anyone who can publish
    # to the broker could send them. On, they must be signed with the box's MQTT command key
    # (<data_dir>/mqtt-command.key, made on first start; `qilu-edge mqtt sign`), and the actor
    # is the key, never what the message says (edge/core/bus.py).
    accept_door_commands: bool = False


class ApiToken(Section):
    """One staff/admin bearer token. ``token_sha256`` (from ``qilu-edge token new``) keeps only
    the hash in the file; a plain ``token`` still works but is deprecated (the config file and
    its backups then hold a usable secret)."""

    name: str = Field(min_length=1)
    token: str | None = Field(None, min_length=16)
    token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    # Where the box's own CLI finds the plain token when the file keeps only its hash
    # (install.sh writes /etc/qilu-edge/staff-token, 0600 root); the daemon never reads it.
    token_file: Path | None = None
    # "panel": a keypad / QR panel at a door: it may only enter PINs and QR codes at the
    # doors listed in ``doors`` (edge/core/http.py PANEL_ROUTES); every other route refuses it.
    role: Literal["staff", "admin", "panel"] = "staff"
    doors: tuple[str, ...] = ()  # panel tokens only: the door(s) it stands at

    @model_validator(mode="after")
    def _one_secret(self) -> ApiToken:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token_sha256 (preferred) or token")
        if self.role == "panel" and not self.doors:
            raise ValueError("doors: a panel token must name the door(s) it stands at")
        if self.role != "panel" and self.doors:
            raise ValueError(f"doors: only panel tokens are bound to doors (role {self.role!r})")
        return self  # a plain token is warned about by the daemon (edge/core/http.py), once

    def matches(self, presented: bytes) -> bool:
        """Whether ``presented`` is this token (constant time either way)."""
        if self.token_sha256 is not None:
            got = hashlib.sha256(presented).hexdigest().encode()
            return hmac.compare_digest(got, self.token_sha256.encode())
        return hmac.compare_digest(presented, (self.token or "").encode())


class ApiConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tokens: tuple[ApiToken, ...] = ()
    max_body_mb: float = Field(10.0, gt=0)

    def client_token(self) -> str | None:
        """A token for the box's own CLI to call its daemon: a plain one from the config, else
        QILU_EDGE_TOKEN, else a readable ``token_file`` (with only token_sha256 in the config
        the CLI cannot know the token otherwise)."""
        plain = next((t.token for t in self.tokens if t.token), None)
        if plain or (plain := os.environ.get("QILU_EDGE_TOKEN")):
            return plain
        for t in self.tokens:
            if t.token_file is not None:
                try:
                    return t.token_file.read_text(encoding="utf-8").strip() or None
                except OSError:  # not root, or not there: try the next, then give up
                    continue
        return None


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # TOML key "json"; renamed here because BaseModel has a .json() method.
    as_json: bool = Field(False, alias="json")


class DeviceConfig(BaseModel):
    """Common fields of every door, camera and screen; the rest belongs to its driver."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=DEVICE_ID)
    type: str = Field(min_length=1)
    name: str = ""
    enabled: bool = True
    # Filled in by load_config from the keys the driver declares (drivers/<kind>/<type>.py).
    options: Any = None


class DoorConfig(DeviceConfig):
    camera: str | None = None  # id of the camera that watches this door
    building: str | None = None
    # The faces capability's per-door stranger rate (like ``camera``, a key every face door may
    # carry, so it is a field here rather than a driver option). None: [faces] target_fpir.
    face_target_fpir: float | None = Field(None, gt=0, lt=0.5)
    # A face door asks for a second factor (PIN / phone, edge/access/second_factor.py):
    # "auto" when the door's expected resident acceptance is below the goal, or always/never.
    second_factor: Literal["auto", "always", "never"] = "auto"


class CameraConfig(DeviceConfig):
    pass


class ScreenConfig(DeviceConfig):
    tags: tuple[str, ...] = ()
    door: str | None = None  # a door id: its face grants show portal login codes here
    # the player page's zones (edge/screens/layouts.py); None: [player] layout
    layout: Literal["full", "standard", "side"] | None = None


class CoreConfig(Section):
    """The sections every box has; the composition root (edge/features.py) adds one field
    per capability (its ``Feature.config``) to make the box's ``Config``."""

    box: BoxConfig = BoxConfig()
    store: StoreConfig = StoreConfig()
    mqtt: MqttConfig = MqttConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    # Older section names still read (deprecated), set by build_model: {"face": "faces"}.
    aliases: ClassVar[dict[str, str]] = {}
    doors: tuple[DoorConfig, ...] = ()
    cameras: tuple[CameraConfig, ...] = ()
    screens: tuple[ScreenConfig, ...] = ()
    source: Path | None = None  # the file this came from; not a TOML key

    @field_validator("doors", "cameras", "screens")
    @classmethod
    def _unique_ids(cls, devices: tuple[DeviceConfig, ...]) -> tuple[DeviceConfig, ...]:
        seen: set[str] = set()
        for d in devices:
            if d.id in seen:
                raise ValueError(f"device id {d.id!r} is used twice")
            seen.add(d.id)
        return devices

    @property
    def db_path(self) -> Path:
        return self.box.data_dir / self.store.path

    @property
    def backup_path(self) -> Path:
        return self.box.data_dir / self.store.backup_dir

    def devices(self) -> list[tuple[str, DeviceConfig]]:
        return [(kind, d) for kind in DEVICE_KINDS for d in getattr(self, kind)]

    def section(self, cls: type[S]) -> S:
        """A capability's section by its type: ``config.section(FacesConfig)``."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if type(value) is cls:
                return value
        raise KeyError(f"no config section of type {cls.__name__}")


C = TypeVar("C", bound=CoreConfig)


def build_model(
    sections: dict[str, type[Section]], aliases: dict[str, str] | None = None
) -> type[CoreConfig]:
    """The box's ``Config``: the core sections plus one field per capability section."""
    fields: dict[str, Any] = {name: (cls, cls()) for name, cls in sections.items()}
    model = create_model("Config", __base__=CoreConfig, **fields)
    model.aliases = dict(aliases or {})
    return model


def reparse(like: C, text: str, source: Path | None = None) -> C:
    """Validate ``text`` into the same model as ``like`` (a capability that edits the box's
    config, e.g. the installer, without knowing which capabilities the box has)."""
    return parse_with(type(like), text, source=source)


def reload(like: C, path: str | Path) -> C:
    return load_with(type(like), path)


def load_with(
    model: type[C], path: str | Path, aliases: dict[str, str] | None = None
) -> C:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from e
    return parse_with(model, text, source=path, aliases=aliases)


def parse_with(
    model: type[C],
    text: str,
    source: Path | None = None,
    aliases: dict[str, str] | None = None,
) -> C:
    """Validate ``text`` into ``model``. ``aliases`` maps an old section name to its current
    one (``{"face": "faces"}``; default: the model's own): the old name is still read, with a
    deprecation warning."""
    if aliases is None:
        aliases = model.aliases
    where = str(source) if source else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    lines = _key_lines(text)
    for old, new in aliases.items():
        if old not in raw:
            continue
        if new in raw:
            raise ConfigError(
                f"{where}:{_line_for(lines, (old,))}: [{old}] and [{new}] are the same section;"
                f" keep [{new}] only"
            )
        message = f"{where}: config section [{old}] is now [{new}]; rename it (read as [{new}])"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        log.warning("%s", message)
        raw[new] = raw.pop(old)
        for loc, n in list(lines.items()):
            if loc[:1] == (old,):
                lines.setdefault((new, *loc[1:]), n)
    try:
        config = model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, where, lines, (), model)) from e
    config = _validate_driver_options(config, where, lines)
    _check_screen_doors(config, where, lines)
    if source is not None:
        # Relative paths in the file are relative to the file's folder, not to the cwd.
        data_dir = config.box.data_dir
        if not data_dir.is_absolute():
            data_dir = (source.parent / data_dir).resolve()
        config = config.model_copy(
            update={"source": source, "box": config.box.model_copy(update={"data_dir": data_dir})}
        )
    return config


def _validate_driver_options(config: C, where: str, lines: dict) -> C:
    from drivers import registry  # drivers import config types; avoid a cycle at import

    problems: list[str] = []
    updates: dict[str, tuple[DeviceConfig, ...]] = {}
    for kind in DEVICE_KINDS:
        devices = []
        for i, dev in enumerate(getattr(config, kind)):
            try:
                driver: Any = registry.get(kind, dev.type)
            except KeyError:
                known = ", ".join(registry.types(kind)) or "none"
                line = _line_for(lines, (kind, i, "type"))
                problems.append(
                    f"{where}:{line}: {kind}[{i}].type: unknown {kind[:-1]} type {dev.type!r}"
                    f" (known: {known})"
                )
                devices.append(dev)
                continue
            try:
                options = driver.Options.model_validate(dev.model_extra or {})
            except ValidationError as e:
                problems.append(_explain(e, where, lines, (kind, i), driver.Options))
                devices.append(dev)
                continue
            devices.append(dev.model_copy(update={"options": options}))
        updates[kind] = tuple(devices)
    if problems:
        raise ConfigError("\n".join(problems))
    return config.model_copy(update=updates)


def _check_screen_doors(config: CoreConfig, where: str, lines: dict) -> None:
    doors = {d.id for d in config.doors}
    bad = [
        f"{where}:{_line_for(lines, ('screens', i, 'door'))}: screens[{i}].door:"
        f" no door {s.door!r} is configured (known: {', '.join(sorted(doors)) or 'none'})"
        for i, s in enumerate(config.screens)
        if s.door is not None and s.door not in doors
    ]
    if bad:
        raise ConfigError("\n".join(bad))


def _explain(
    e: ValidationError, where: str, lines: dict, prefix: tuple, model: Any = None
) -> str:
    out = []
    for err in e.errors():
        loc = prefix + tuple(err["loc"])
        key = _dotted(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            near = difflib.get_close_matches(str(err["loc"][-1]), _keys_at(model, err["loc"]), 1)
            if near:
                msg += f"; did you mean {near[0]!r}?"
        elif "input" in err and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        out.append(f"{where}:{_line_for(lines, loc)}: {key}: {msg}")
    return "\n".join(out)


def _keys_at(model: Any, loc: tuple) -> list[str]:
    """The valid keys of the table holding the last key of ``loc`` (for a suggestion)."""
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        models = [t for t in _types(field.annotation) if isinstance(t, type)]
        model = next((t for t in models if issubclass(t, BaseModel)), None)
    return list(getattr(model, "model_fields", {}))


def _types(annotation: Any) -> list[Any]:
    """The types inside an annotation (X | None, tuple[X, ...], list[X] -> X)."""
    args = get_args(annotation)
    return [annotation] if not args else [t for a in args for t in _types(a)]


def _dotted(loc: tuple) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _key_lines(text: str) -> dict[tuple, int]:
    """Map key paths such as ("doors", 0, "pulse_ms") to the line they stand on."""
    found: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    table: tuple = ()
    for n, line in enumerate(text.splitlines(), start=1):
        if m := _HEADER.match(line):
            parts = tuple(p.strip().strip("\"'") for p in m.group(2).split("."))
            if m.group(1) == "[[":
                idx = counts.get(parts, 0)
                counts[parts] = idx + 1
                table = (*parts, idx)
            else:
                table = parts
            found.setdefault(table, n)
        elif m := _KEY.match(line):
            key = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            found.setdefault(table + key, n)
    return found


def _line_for(lines: dict[tuple, int], loc: tuple) -> int | str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return "?"
