"""The Qilu data standard (docs/standard.md): record types, MQTT topics and payloads.

Every door, camera, screen and report of any vendor becomes one of these records before it is
stored, published or synced; nothing downstream sees a vendor format. Each payload carries its
schema identifier ``qilu.v1.<kind>`` so a consumer knows exactly what it holds.

Conventions: ids are short lowercase strings; timestamps are timezone-aware and serialised as
ISO 8601 in UTC; durations are milliseconds (``*_ms``) or seconds (``*_s``) as the name says;
sizes are bytes; similarities and scores are floats with their range given.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from enum import IntEnum
from typing import Annotated, Any, ClassVar, Literal, get_origin

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
SCHEMA_PREFIX = f"qilu.v{SCHEMA_VERSION}."
ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class Priority(IntEnum):
    """Outbox class: lower drains first (alerts > access > reports/tickets > plays > telemetry)."""

    ALERT = 0
    ACCESS = 1
    REPORT = 2
    PLAY = 3
    TELEMETRY = 4


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class StandardError(ValueError):
    """A payload does not follow the standard; the message names the field."""


class Record(BaseModel):
    """Base of every standard record.

    Class attributes say how the record travels: ``KIND`` (schema name), ``TABLE`` (local
    store table, None if not kept as a row), ``PRIORITY`` (outbox class, None if it never
    leaves the box) and ``TOPIC`` (device-kind and event parts of its MQTT topic).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    KIND: ClassVar[str] = ""
    TABLE: ClassVar[str | None] = None
    PRIORITY: ClassVar[Priority | None] = None
    TOPIC_EVENT: ClassVar[str] = "state"
    REGISTRY: ClassVar[dict[str, type[Record]]] = {}

    id: str = Field(pattern=ID)

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.KIND:
            Record.REGISTRY[cls.KIND] = cls

    @classmethod
    def schema_id(cls) -> str:
        return SCHEMA_PREFIX + cls.KIND

    def payload(self) -> dict[str, Any]:
        return {"schema": self.schema_id(), **self.model_dump(mode="json")}

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        """(device kind, device id, event) of the topic; box-level records use the box."""
        return ("box", box_id, self.TOPIC_EVENT)


def topic(prefix: str, community: str, kind: str, device_id: str, event: str) -> str:
    return f"{prefix}/{community}/{kind}/{device_id}/{event}"


def parse_payload(data: dict[str, Any]) -> Record:
    """Validate a payload against the standard, naming the first bad field."""
    if not isinstance(data, dict):
        raise StandardError("payload must be a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, str) or not schema.startswith(SCHEMA_PREFIX):
        raise StandardError(f"schema: expected '{SCHEMA_PREFIX}<kind>', got {schema!r}")
    cls = Record.REGISTRY.get(schema.removeprefix(SCHEMA_PREFIX))
    if cls is None:
        raise StandardError(f"schema: unknown record kind {schema!r}")
    body = {k: v for k, v in data.items() if k != "schema"}
    try:
        return cls.model_validate(body)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(payload)"
        raise StandardError(f"{schema}: {field}: {err['msg']}") from e


# --- places and devices ---------------------------------------------------------------


class Community(Record):
    KIND = "community"
    name: str
    area: list[str] = Field(default_factory=list)  # city, district, street codes, in order
    address: str = ""
    timezone: str = "Asia/Shanghai"


DeviceState = Literal["online", "offline", "degraded"]


class Door(Record):
    KIND = "door"
    name: str = ""
    building: str | None = None
    camera_id: str | None = None
    driver: str  # the config `type` key, e.g. "modbus"


class Camera(Record):
    KIND = "camera"
    name: str = ""
    driver: str
    width_px: int | None = None
    height_px: int | None = None
    fps: float | None = None


class Screen(Record):
    KIND = "screen"
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    width_px: int | None = None
    height_px: int | None = None


class Resident(Record):
    KIND = "resident"
    TABLE = "residents"  # migration 0101_faces; never synced (no PRIORITY)
    name: str
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    status: Literal["active", "suspended", "moved_out"] = "active"
    doors: list[str] = Field(default_factory=list)  # door ids allowed (more: door_rights)


class DeviceHealth(Record):
    """A change of a device's state (not a periodic sample)."""

    KIND = "device_health"
    TABLE = "device_health"
    PRIORITY = Priority.TELEMETRY
    TOPIC_EVENT = "health"
    ts: AwareDatetime = Field(default_factory=now)
    device_kind: Literal["door", "camera", "screen", "display", "box", "broker"]
    device_id: str
    state: DeviceState
    previous: DeviceState | None = None
    reason: str = ""

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        return (self.device_kind, self.device_id, self.TOPIC_EVENT)


# --- access ---------------------------------------------------------------------------


class AccessEvent(Record):
    """One door decision: granted or denied, whatever the method."""

    KIND = "access_event"
    TABLE = "access_events"
    PRIORITY = Priority.ACCESS
    TOPIC_EVENT = "access"
    ts: AwareDatetime = Field(default_factory=now)
    door_id: str
    method: Literal["face", "qr", "pin", "remote", "card", "button"]
    decision: Literal["granted", "denied"]
    reason: str = ""  # e.g. "match", "unknown_face", "liveness", "outside_hours", "expired"
    resident_id: str | None = None
    pass_id: str | None = None
    actor: str | None = None  # who opened remotely (token name / resident id)
    # face: the match score and the scale it is on (score_scale: raw / centred cosine in
    # -1..1, or znorm: per-template z-score once a gallery has znorm_min templates). The name
    # stays "similarity" on the wire; people read "match score" with the scale shown.
    similarity: float | None = Field(
        None, ge=-1000, le=1000,
        description="face: match score of the decisive frame, on `score_scale` "
        "(cos 0.71: a cosine in -1..1; z 6.3: a z-score)",
    )
    liveness: float | None = Field(None, ge=0, le=1)
    latency_ms: float | None = Field(None, ge=0)  # decisive frame to decision
    relay_changed: bool | None = None  # the relay read back as switched
    # face: k-th best frame of the approach, on score_scale
    fused_score: float | None = Field(
        None, ge=-1000, le=1000,
        description="face: match score of the approach (k-th best frame), on `score_scale`",
    )
    frames_used: int | None = Field(None, ge=0)  # face: usable frames the decision looked at
    track: int | None = Field(None, ge=0)  # face: the tracked face (per door) it is about
    score_scale: Literal["raw", "centred", "znorm"] | None = Field(
        None,
        description="face: the scale of both match scores: raw or centred = cosine (-1..1), "
        "znorm = z-score (galleries of znorm_min, 100, templates or more)",
    )
    factor: Literal["pin", "phone"] | None = None  # face: the second factor used with it

    @model_validator(mode="after")
    def _cosines_in_range(self) -> AccessEvent:
        # Only z-scores leave -1..1; a cosine (raw, centred, or a scale not said) may not.
        if self.score_scale != "znorm":
            for name in ("similarity", "fused_score"):
                v = getattr(self, name)
                if v is not None and not -1.0 <= v <= 1.0:
                    raise ValueError(f"{name}: a cosine score must lie in -1..1")
        return self

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        return ("door", self.door_id, self.TOPIC_EVENT)


class IntercomCall(Record):
    """A visitor's call from a door to a flat (一键呼叫开门), one row updated as it goes:
    ringing -> answered -> opened, or missed / declined. Counts and ids only; no picture or
    sound is ever part of it."""

    KIND = "intercom_call"
    TABLE = "intercom_calls"
    PRIORITY = Priority.ACCESS
    TOPIC_EVENT = "intercom"
    ts: AwareDatetime = Field(default_factory=now)  # when the visitor dialled
    door_id: str
    flat: str = Field(pattern=r"^[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}$")  # 楼-单元-房
    source: Literal["screen", "button", "panel"]
    screen_id: str | None = None  # the door screen that dialled
    state: Literal["ringing", "answered", "opened", "missed", "declined"] = "ringing"
    phones: int = Field(0, ge=0)  # phones of the flat that were rung
    answered_by: str | None = None  # resident id
    opened_by: str | None = None  # resident id who opened (one tap, or the pass's issuer)
    access_event_id: str | None = None  # the door's access event when it opened
    pass_id: str | None = None  # "let them in later": the one-time pass issued
    answer_ms: int | None = Field(None, ge=0)  # dial to answer
    ended_at: AwareDatetime | None = None

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        return ("door", self.door_id, self.TOPIC_EVENT)


class VisitorPass(Record):
    KIND = "visitor_pass"
    resident_id: str
    doors: list[str]
    valid_from: AwareDatetime
    valid_to: AwareDatetime
    uses_total: int = Field(ge=1)
    uses_left: int = Field(ge=0)
    revoked: bool = False


# --- residents' reports and tickets ------------------------------------------------------


Urgency = Literal["immediate", "high", "normal", "low"]


class Report(Record):
    KIND = "report"
    PRIORITY = Priority.REPORT
    TOPIC_EVENT = "report"
    ts: AwareDatetime = Field(default_factory=now)
    text: str = Field(max_length=2000)
    category: str  # a taxonomy code, docs/taxonomy
    sentiment: float = Field(0.0, ge=-1, le=1)
    urgency: Urgency = "normal"
    building: str | None = None
    location: str | None = None
    resident_id: str | None = None
    photos: int = Field(0, ge=0)
    status: Literal["received", "in_progress", "answered", "closed"] = "received"
    source: str = "resident_page"
    source_tag: str | None = None  # the submitting system's own tag, mapped to `category`
    group_id: str | None = None  # first report of a group of identical repeats
    reply: str | None = None  # the answer shown to the resident
    # The emergency detector was unsure: a person confirms within minutes (an alert says so).
    possible_emergency: bool = False


class ReportCorrection(Record):
    """Staff corrected a report's labels; the corrected message becomes a training row."""

    KIND = "report_correction"
    TABLE = "report_corrections"
    PRIORITY = Priority.REPORT
    TOPIC_EVENT = "report_correction"
    ts: AwareDatetime = Field(default_factory=now)
    report_id: str = Field(pattern=ID)
    text: str = Field(max_length=2000)
    category: str  # a taxonomy code
    polarity: Literal["negative", "neutral", "positive"]
    urgency: Urgency
    was_category: str
    was_polarity: Literal["negative", "neutral", "positive"]
    was_urgency: Urgency
    actor: str = Field(min_length=1, max_length=64)
    note: str = Field("", max_length=500)


class RepairTicket(Record):
    KIND = "repair_ticket"
    PRIORITY = Priority.REPORT
    TOPIC_EVENT = "ticket"
    ts: AwareDatetime = Field(default_factory=now)
    title: str
    description: str = ""
    category: str = "facilities_repair"
    urgency: Urgency = "normal"
    status: Literal["open", "assigned", "in_progress", "resolved", "confirmed", "reopened"] = "open"
    assignee: str | None = None
    due_at: AwareDatetime | None = None
    source: Literal["resident", "device_health", "ops", "staff"] = "resident"
    device_kind: str | None = None
    device_id: str | None = None
    report_id: str | None = None
    building: str | None = None
    location: str | None = None
    updated_at: AwareDatetime | None = None


class Alert(Record):
    """An early warning: urgent report, trend spike, overdue ticket, disk filling..."""

    KIND = "alert"
    TABLE = "alerts"
    PRIORITY = Priority.ALERT
    TOPIC_EVENT = "alert"
    ts: AwareDatetime = Field(default_factory=now)
    level: Literal["critical", "warning", "info"]
    type: str  # e.g. "urgent_report", "trend", "sentiment_drop", "ticket_overdue", "disk"
    message: str
    evidence: list[str] = Field(default_factory=list)  # ids of the records behind it


# --- screens ------------------------------------------------------------------------------


class ContentItem(Record):
    KIND = "content_item"
    kind: Literal["image", "video", "html", "url"]
    title: str
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # file kinds only
    size_bytes: int | None = Field(None, ge=0)
    mime: str | None = None
    body: str | None = None  # html notice text
    url: str | None = None  # url kind
    duration_s: float = Field(10.0, gt=0)
    tags: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _web_only(cls, v: str | None) -> str | None:
        # Rendered as a link on phones: javascript:/data: URLs would run in the box's origin.
        if v is not None and not web_link(v):
            raise ValueError("must be an http:// or https:// address")
        return v


def web_link(url: str) -> bool:
    """An absolute http(s) URL with a host: the only links residents' pages render."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


class PlaylistEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    content_id: str
    duration_s: float | None = Field(None, gt=0)  # None: the item's own duration


class Playlist(Record):
    KIND = "playlist"
    name: str
    items: list[PlaylistEntry]


class PlayRecord(Record):
    """Proof of play: what a screen actually showed, start to end."""

    KIND = "play_record"
    PRIORITY = Priority.PLAY
    TOPIC_EVENT = "play"
    screen_id: str
    content_id: str
    started_at: AwareDatetime
    ended_at: AwareDatetime
    duration_ms: int = Field(ge=0)

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        return ("screen", self.screen_id, self.TOPIC_EVENT)


class ScheduleEntry(Record):
    """When a playlist plays on which screens (dayparting), in the box's local wall-clock time.

    A window runs from ``start`` to ``end`` on each matching day; ``end <= start`` runs past
    midnight into the next day, ``end == start`` is the whole day. Dates and weekdays (ISO,
    1 = Monday) apply to the day a window starts. No screens and no tags: every screen.
    """

    KIND = "schedule"
    TOPIC_EVENT = "schedule"
    playlist_id: str
    screens: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7], min_length=1
    )
    start: time = time(0, 0)
    end: time = time(0, 0)
    priority: int = Field(0, ge=-1000, le=1000)  # higher wins where windows overlap
    # the player page's layout while this entry plays (edge/screens/layouts.py); None: the
    # screen's own ([[screens]] layout, [[player.layout_times]], [player] layout)
    layout: Literal["full", "standard", "side"] | None = None


class Emergency(Record):
    """An emergency broadcast: takes over the targeted screens until expiry or cancellation."""

    KIND = "emergency"
    TOPIC_EVENT = "emergency"
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=4000)
    content_id: str | None = None  # show this content item instead of the text notice
    screens: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)  # no screens and no tags: every screen
    level: Literal["critical", "warning", "info"] = "critical"
    starts_at: AwareDatetime = Field(default_factory=now)
    expires_at: AwareDatetime
    cancelled_at: AwareDatetime | None = None
    source: Literal["cloud", "api", "local"] = "api"


# --- resident portal ------------------------------------------------------------------------


class ReadingStats(Record):
    """Reading counts of one content item over a window; no per-person data leaves the box.

    Each read, acknowledgement and millisecond of dwell is counted in exactly one of these, so
    the cloud sums them: the sum of ``new_readers`` is the item's reach in the community.
    """

    KIND = "reading_stats"
    PRIORITY = Priority.TELEMETRY
    TOPIC_EVENT = "reading"
    content_id: str
    window_start: AwareDatetime
    window_end: AwareDatetime
    reads: int = Field(0, ge=0)  # page openings
    new_readers: int = Field(0, ge=0)  # residents reading it for the first time
    acks: int = Field(0, ge=0)  # acknowledgements ("已读知晓")
    dwell_s: float = Field(0.0, ge=0)  # reading time added in the window


class CommunityEvent(Record):
    """A community event or volunteer activity, with its sign-up counts (no names)."""

    KIND = "community_event"
    PRIORITY = Priority.REPORT
    TOPIC_EVENT = "community_event"
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=4000)
    place: str = Field("", max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: int = Field(ge=1, le=100000)
    volunteer: bool = False
    hours: float = Field(0.0, ge=0, le=24)  # volunteer hours credited per attendee
    status: Literal["open", "closed", "cancelled"] = "open"
    signed_up: int = Field(0, ge=0)
    attended: int = Field(0, ge=0)
    hours_credited: float = Field(0.0, ge=0)


class BoardPost(Record):
    """A notice-board or exchange-board post and its moderation state (author not synced)."""

    KIND = "board_post"
    PRIORITY = Priority.REPORT
    TOPIC_EVENT = "board_post"
    ts: AwareDatetime = Field(default_factory=now)
    board: Literal["notice", "exchange"]
    title: str = Field(min_length=1, max_length=100)
    body: str = Field("", max_length=2000)
    building: str | None = None
    status: Literal["visible", "flagged", "hidden"] = "visible"
    category: str | None = None  # taxonomy code when flagged or hidden


# --- commands -----------------------------------------------------------------------------


class Command(Record):
    """A command to a device or the box, from MQTT (``.../cmd``), the API or the cloud."""

    KIND = "command"
    action: str = Field(pattern=r"^[a-z_]{1,32}$")
    args: dict[str, Any] = Field(default_factory=dict)
    actor: str | None = None


class CommandResult(Record):
    KIND = "command_result"
    TOPIC_EVENT = "cmd_result"
    ts: AwareDatetime = Field(default_factory=now)
    command_id: str
    target_kind: str
    target_id: str
    ok: bool
    detail: str = ""

    def topic_parts(self, box_id: str) -> tuple[str, str, str]:
        return (self.target_kind, self.target_id, self.TOPIC_EVENT)


def json_schemas() -> dict[str, Any]:
    """JSON Schema of every record, keyed by schema id (``qilu-edge standard schema``)."""
    out = {}
    for kind, cls in sorted(Record.REGISTRY.items()):
        s = cls.model_json_schema()
        s["properties"] = {"schema": {"const": cls.schema_id()}, **s.get("properties", {})}
        s.setdefault("required", []).insert(0, "schema")
        out[SCHEMA_PREFIX + kind] = s
    return out


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) is None and hasattr(annotation, "__name__"):
        name = annotation.__name__
    else:
        name = str(annotation)
    for noise in ("typing.", "datetime.", "edge.core.standard.", "pydantic.types."):
        name = name.replace(noise, "")
    return name.replace("AwareDatetime", "timestamp").replace("|", "\\|")


def markdown_reference() -> str:
    """The field tables of docs/standard.md, generated from the models so they cannot drift."""
    out = []
    for cls in Record.REGISTRY.values():
        travel = []
        if cls.TABLE:
            travel.append(f"table `{cls.TABLE}`")
        if cls.PRIORITY is not None:
            travel.append(f"outbox class {cls.PRIORITY.name.lower()}")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        out.append(f"### `{cls.schema_id()}`\n")
        if doc and not doc.startswith("Base of"):
            out.append(f"{doc}\n")
        if travel:
            out.append(f"Stored in {', '.join(travel)}.\n")
        # A meaning column only where a field says what it means (Field description).
        meaning = any(f.description for f in cls.model_fields.values())
        out.append("| field | type | required | default |" + (" meaning |" if meaning else "")
                   + "\n| --- | --- | --- | --- |" + (" --- |" if meaning else ""))
        for name, field in cls.model_fields.items():
            ann = _type_name(field.annotation)
            required = "yes" if field.is_required() else ""
            default = "" if field.is_required() or field.default_factory else repr(field.default)
            if field.default_factory is not None:
                default = "now" if field.default_factory is now else "[]"
            row = f"| `{name}` | {ann} | {required} | {default} |"
            if meaning:
                desc = (field.description or "").replace("|", "\\|")
                row += f" {desc} |"
            out.append(row)
        out.append("")
    return "\n".join(out)
