"""The box configuration: one TOML file, validated once at start-up into typed objects.

Everything downstream receives these frozen objects and never looks at raw TOML. A bad file
fails as a whole with messages that name the key and the line, so the daemon never starts
half-configured.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEVICE_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
DEVICE_KINDS = ("doors", "cameras", "screens")


class ConfigError(Exception):
    """The configuration file is unusable; the message names every bad key and its line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class ApiToken(Section):
    name: str = Field(min_length=1)
    token: str = Field(min_length=16)
    role: Literal["staff", "admin"] = "staff"


class ApiConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tokens: tuple[ApiToken, ...] = ()
    max_body_mb: float = Field(10.0, gt=0)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # TOML key "json"; renamed here because BaseModel has a .json() method.
    as_json: bool = Field(False, alias="json")


class InstallerConfig(Section):
    # Announce the box on the LAN (zeroconf _qilu-edge._tcp). Off unless asked (install.sh
    # turns it on) so dev and test boxes never multicast on a real network.
    advertise: bool = False
    advertise_interfaces: tuple[str, ...] = ()  # IPv4 addresses to announce on; empty = all
    web: bool = True  # the installer page (wizard + doctor) at /installer/
    warn_free_disk_mb: int = Field(1024, ge=0)  # doctor warns below this much free disk
    fail_free_disk_mb: int = Field(200, ge=0)  # and fails below this
    warn_clock_skew_s: float = Field(2.0, gt=0)  # doctor warns beyond this skew to the cloud
    max_clock_skew_s: float = Field(5.0, gt=0)  # doctor fails beyond this skew to the cloud
    device_timeout_s: float = Field(8.0, gt=0)  # doctor's budget per device check


class FaceConfig(Section):
    """``[face]``: face recognition on the box (edge/vision/, README "Face recognition")."""

    enabled: bool = True
    detector: Literal["yunet", "blazeface"] = "yunet"
    blazeface_range: Literal["short", "full"] = "short"  # short: faces within ~2 m
    model_dir: Path | None = None  # None: the checkout's models/; relative: to the config file
    detect_max_side: int = Field(640, ge=160, le=4096)  # larger frames are scaled down first
    detect_score: float = Field(0.7, gt=0, lt=1)
    threshold: float = Field(0.45, gt=-1, lt=1)  # SFace cosine; ~FAR 1e-4 (peers.md)
    margin: float = Field(0.05, ge=0, lt=1)  # best minus second-best identity
    negative_step: float = Field(0.02, ge=0, le=0.2)  # threshold raise per wrong-match report
    negative_cap: float = Field(0.10, ge=0, le=0.5)
    duplicate_warn: float = Field(0.40, gt=-1, lt=1)  # enrol warns above this vs others
    min_eye_px: float = Field(28.0, ge=4)  # inter-eye distance in the frame
    min_sharpness: float = Field(60.0, ge=0)  # variance of Laplacian on the aligned face
    max_yaw: float = Field(0.35, gt=0, le=1)  # nose offset / eye distance
    max_roll_deg: float = Field(25.0, gt=0, le=90)
    min_brightness: float = Field(50.0, ge=0, le=255)
    max_brightness: float = Field(215.0, ge=0, le=255)
    liveness_threshold: float = Field(0.5, ge=0, le=1)
    liveness_frames: int = Field(6, ge=2, le=100)
    keep_thumbnails: bool = False  # attach a face thumbnail to decisions (never synced)


class PlayerConfig(Section):
    """``[player]``: the outdoor-screen player (edge/screens/, README "Publicity screens")."""

    cache_dir: str = "content"  # content cache, relative to box.data_dir
    cache_budget_mb: float = Field(2048.0, gt=0)  # LRU eviction beyond this
    protect_days: int = Field(3, ge=0, le=60)  # never evict what is scheduled this far ahead
    plan_hours: int = Field(48, ge=1, le=336)  # how far ahead a player page gets its schedule
    offline_after_s: float = Field(120.0, gt=0)  # a silent player becomes an offline event
    default_title: str = "欢迎光临"  # shown when nothing is scheduled
    default_body: str = ""
    alert_emergency_types: tuple[str, ...] = ()  # alert types that start an emergency broadcast
    alert_emergency_minutes: int = Field(30, ge=1, le=1440)
    display_check_s: float = Field(30.0, ge=1)  # power/brightness schedule and health period


class ReportsConfig(Section):
    """``[reports]``: residents' reports and early warning (edge/reports/, README "Reports")."""

    taxonomy: str | None = None  # taxonomy TOML; default config/taxonomy.toml of the package
    max_text_chars: int = Field(500, ge=10, le=2000)
    max_photos: int = Field(4, ge=0, le=20)
    max_photo_mb: float = Field(5.0, gt=0, le=50)
    photo_dir: str = "photos"  # relative to box.data_dir
    duplicate_window_min: int = Field(1440, ge=1)  # identical reports within this are grouped
    trend_window_min: int = Field(60, ge=1)  # reports per topic/place counted over this window
    trend_min_count: int = Field(5, ge=2)  # fewer distinct reports never make a trend
    trend_factor: float = Field(3.0, ge=1)  # and at least this many times the usual rate
    baseline_days: int = Field(7, ge=1, le=90)  # the usual rate is measured over these days
    sentiment_window_min: int = Field(1440, ge=1)  # a building's recent mood over this window
    sentiment_min_reports: int = Field(3, ge=1)
    sentiment_drop: float = Field(0.5, gt=0, le=2)  # alert when the mean falls this much
    alert_cooldown_min: int = Field(120, ge=0)  # one trend/sentiment alert per key this often
    # Load the text model (~45 MB RSS, ~0.1 s) at start instead of on the first report; off
    # by default so the box's memory goes to what it uses.
    warm_at_start: bool = False


class TicketsConfig(Section):
    """``[tickets]``: repair tickets (edge/tickets/): due times by urgency, overdue checks."""

    due_hours_immediate: float = Field(1.0, gt=0)
    due_hours_high: float = Field(4.0, gt=0)
    due_hours_normal: float = Field(48.0, gt=0)
    due_hours_low: float = Field(168.0, gt=0)
    overdue_check_s: float = Field(30.0, ge=0.05)


class SyncConfig(Section):
    """``[sync]``: the cloud sync client (edge/sync/, README "Cloud sync")."""

    enabled: bool = True  # runs only once the box is provisioned (identity file present)
    identity_file: str = "cloud-identity.json"  # relative to box.data_dir; mode 0600
    batch_max_records: int = Field(5000, ge=1, le=20000)  # batches grow up to this
    batch_max_kb: int = Field(4096, ge=1)  # uncompressed cap; lower it on a slow link
    backoff_min_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    request_timeout_s: float = Field(30.0, gt=0)
    feed_wait_s: float = Field(25.0, ge=0, le=60)  # long-poll length
    heartbeat_s: float = Field(60.0, gt=0)
    outbox_budget_mb: float = Field(512.0, gt=0)  # over it, telemetry is dropped oldest-first
    budget_warn: float = Field(0.8, gt=0, lt=1)  # warning Alert at this fraction
    tls_verify: bool = True
    ca_file: str | None = None  # extra CA for a private cloud certificate


class PortalConfig(Section):
    """``[portal]``: the resident portal (edge/portal/, README "Resident portal")."""

    enabled: bool = True
    public_url: str = ""  # base of login links, e.g. "http://192.168.1.10:8080"; "" = request
    code_digits: int = Field(8, ge=6, le=12)  # one-time login codes
    code_ttl_h: float = Field(72.0, gt=0, le=24 * 60)
    session_days: float = Field(90.0, gt=0, le=3650)
    max_login_failures: int = Field(10, ge=1)  # per client address per 10 minutes
    phone_tags: tuple[str, ...] = ("phone",)  # content with one of these goes to phones; () = all
    must_read_tags: tuple[str, ...] = ("must_read", "policy", "emergency")
    must_read_slots: int = Field(2, ge=0, le=10)  # top feed places kept for unacked must-reads
    feed_size: int = Field(20, ge=1, le=200)
    freshness_half_life_h: float = Field(72.0, gt=0)
    stats_interval_s: float = Field(300.0, ge=1)  # how often reading counts go to the outbox
    image_widths: tuple[int, ...] = (320, 480, 720, 1080)  # phone image sizes served
    relay: bool = True  # keep a relay open to the cloud so /r/ works away from home
    # Login code on the screen of a door (``[[screens]] door``) after a face grant:
    # "no_session" = only to residents without a live portal session, "always", "off".
    door_codes: Literal["no_session", "always", "off"] = "no_session"
    door_code_ttl_min: float = Field(10.0, gt=0, le=24 * 60)
    door_code_show_s: float = Field(30.0, ge=1, le=600)  # how long the screen shows it


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


class CameraConfig(DeviceConfig):
    pass


class ScreenConfig(DeviceConfig):
    tags: tuple[str, ...] = ()
    door: str | None = None  # a door id: its face grants show portal login codes here


class AccessConfig(Section):
    """``[access]``: the access engine (edge/access/, README "Doors, cameras and access")."""

    enabled: bool = True
    sample_fps: float = Field(15.0, gt=0, le=60)  # most frames per second a door examines
    motion_threshold: float = Field(0.01, ge=0, le=1)  # share of changed pixels that wakes it
    active_hold_s: float = Field(3.0, ge=0, le=60)  # keep looking this long after motion/face
    liveness_frames: int = Field(3, ge=1, le=30)  # frames of evidence before a face decision
    require_liveness: bool = True
    cooldown_s: float = Field(5.0, ge=0, le=600)  # one person does not re-trigger a door
    denied_cooldown_s: float = Field(10.0, ge=0, le=600)  # one denied event per face per door
    qr: bool = True  # read visitor QR codes on door cameras
    qr_every: int = Field(3, ge=1, le=100)  # try QR on every n-th active frame
    pin_digits: int = Field(6, ge=4, le=10)
    pin_max_failures: int = Field(5, ge=1, le=100)  # per door, then the keypad is locked
    pin_lockout_s: float = Field(60.0, ge=1, le=86400)
    pass_max_days: int = Field(30, ge=1, le=366)
    offline_ticket_after_s: float = Field(300.0, ge=0)  # device offline this long: repair ticket
    health_check_s: float = Field(1.0, gt=0, le=60)


class Config(Section):
    box: BoxConfig = BoxConfig()
    store: StoreConfig = StoreConfig()
    mqtt: MqttConfig = MqttConfig()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    sync: SyncConfig = SyncConfig()
    player: PlayerConfig = PlayerConfig()
    face: FaceConfig = FaceConfig()
    installer: InstallerConfig = InstallerConfig()
    reports: ReportsConfig = ReportsConfig()
    tickets: TicketsConfig = TicketsConfig()
    portal: PortalConfig = PortalConfig()
    access: AccessConfig = AccessConfig()
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


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror}") from e
    return parse_config(text, source=path)


def parse_config(text: str, source: Path | None = None) -> Config:
    where = str(source) if source else "<config>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: not valid TOML: {e}") from e
    lines = _key_lines(text)
    try:
        config = Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_explain(e, where, lines, ())) from e
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


def _validate_driver_options(config: Config, where: str, lines: dict) -> Config:
    from drivers import registry  # drivers import config types; avoid a cycle at import

    problems: list[str] = []
    updates: dict[str, tuple[DeviceConfig, ...]] = {}
    for kind in DEVICE_KINDS:
        devices = []
        for i, dev in enumerate(getattr(config, kind)):
            try:
                driver = registry.get(kind, dev.type)
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
                problems.append(_explain(e, where, lines, (kind, i)))
                devices.append(dev)
                continue
            devices.append(dev.model_copy(update={"options": options}))
        updates[kind] = tuple(devices)
    if problems:
        raise ConfigError("\n".join(problems))
    return config.model_copy(update=updates)


def _check_screen_doors(config: Config, where: str, lines: dict) -> None:
    doors = {d.id for d in config.doors}
    bad = [
        f"{where}:{_line_for(lines, ('screens', i, 'door'))}: screens[{i}].door:"
        f" no door {s.door!r} is configured (known: {', '.join(sorted(doors)) or 'none'})"
        for i, s in enumerate(config.screens)
        if s.door is not None and s.door not in doors
    ]
    if bad:
        raise ConfigError("\n".join(bad))


def _explain(e: ValidationError, where: str, lines: dict, prefix: tuple) -> str:
    out = []
    for err in e.errors():
        loc = prefix + tuple(err["loc"])
        key = _dotted(loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif "input" in err and not isinstance(err["input"], dict | list):
            msg = f"{msg} (got {err['input']!r})"
        out.append(f"{where}:{_line_for(lines, loc)}: {key}: {msg}")
    return "\n".join(out)


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
