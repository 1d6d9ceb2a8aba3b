"""The ``[access]`` config section of this capability (validated once at start-up)."""

from __future__ import annotations

from pydantic import Field

from edge.core.config import Section


class AccessConfig(Section):
    """``[access]``: the access engine (edge/access/, docs/access.md)."""

    enabled: bool = True
    # Door rights are explicit: a resident with none opens no door. These are the rights every
    # resident has without a row of their own (docs/access.md "Door rights"): doors anyone
    # living here may use (e.g. the main gate), and with own_building the doors whose
    # [[doors]] building is the resident's building.
    default_doors: list[str] = Field(default_factory=list, max_length=500)
    own_building: bool = False
    sample_fps: float = Field(15.0, gt=0, le=60)  # most frames per second a door examines
    # Door cameras' face work (edge/faces/scheduler.py; docs/access.md "Rush hour"): track a
    # face, embed it only until its approach is decided, one fair scheduler for all doors.
    face_scheduler: bool = True  # false: every active frame through the pipeline (old path)
    face_deadline_ms: float = Field(200.0, ge=20, le=5000)  # older frames dropped, not queued
    # Looks (and SFace faces) per trip to a face lane: a batch saves little CPU here and each
    # of its looks waits for all of them, so 1 (bench/rush.py, docs/access.md).
    face_batch: int = Field(1, ge=1, le=16)
    face_workers: int = Field(2, ge=1, le=8)  # face lanes: looks of two doors side by side
    face_capacity_per_s: float | None = Field(None, gt=0)  # most looks a second; None: all
    scan_side: int = Field(384, ge=128, le=1920)  # arrivals: the whole frame at this size
    recheck_every: int = Field(3, ge=1, le=60)  # a decided face: look at every n-th frame
    reembed_every: int = Field(5, ge=1, le=100)  # ...and check it is the same person so often
    motion_threshold: float = Field(0.01, ge=0, le=1)  # share of changed pixels that wakes it
    active_hold_s: float = Field(3.0, ge=0, le=60)  # keep looking this long after motion/face
    # Liveness window: live as soon as its evidence reaches the bar (from the 2nd frame on),
    # refused only once this many frames of one face showed too little (edge/faces/liveness.py).
    liveness_frames: int = Field(3, ge=1, le=30)
    require_liveness: bool = True
    cooldown_s: float = Field(5.0, ge=0, le=600)  # one person does not re-trigger a door
    denied_cooldown_s: float = Field(10.0, ge=0, le=600)  # one denied event per face per door
    # Each face door searches the residents with rights there first (threshold from their
    # number); the sets follow rights changes this often. 0: search the whole gallery.
    door_gallery_refresh_s: float = Field(5.0, ge=0, le=3600)
    qr: bool = True  # read visitor QR codes on door cameras
    qr_every: int = Field(3, ge=1, le=100)  # try QR on every n-th active frame
    pin_digits: int = Field(6, ge=4, le=10)
    # Wrong PINs within pin_lockout_s: this many from one source (a keypad session or the
    # caller's address) lock that source; this many at a door from all sources together lock
    # the door's keypad (guessing spread over many sources).
    pin_max_failures: int = Field(5, ge=1, le=100)
    pin_door_max_failures: int = Field(30, ge=1, le=10000)
    pin_lockout_s: float = Field(60.0, ge=1, le=86400)
    # A second factor at face doors (edge/access/second_factor.py): "auto" doors ask for one
    # when the resident acceptance expected at their threshold is below this. Not the 98 %
    # goal: the expectation (docs/faces.md) includes door-camera conditions that cost ~6-8
    # points at any gallery size (a PIN does not fix those, it follows a face match), so 0.90
    # means "this gallery's size costs residents more than a few points": a building's door
    # (hundreds) stays face-alone, a 10,000-resident gallery asks.
    second_factor_min_acceptance: float = Field(0.90, ge=0, le=1)
    # Where a second factor follows, the face only names whom to ask (the PIN or the phone is
    # checked 1:1 against that resident and limited by second_factor_max_failures), so such
    # a door searches at this per-visit target instead of its own: strangers reach the PIN
    # prompt on at most this share of visits, residents are found as at a small gallery.
    second_factor_face_fpir: float = Field(0.01, gt=0, le=0.5)
    second_factor_timeout_s: float = Field(30.0, gt=0, le=600)  # how long a door waits for it
    # Wrong PINs for one resident, at all doors together, within pin_lockout_s before their
    # PIN is locked (second_factor_locked; the face there refused, their phone still asked at
    # other doors), for pin_lockout_s, doubling per further lock up to a day.
    second_factor_max_failures: int = Field(3, ge=1, le=100)
    # A stranger whom the face search names as resident X makes X's phone ask "is this you?":
    # at most this many such prompts per resident within second_factor_phone_window_s (any
    # door). Past it the door asks for X's own PIN only (or refuses, second_factor_phone_limited,
    # when X has none); the resident's own grant starts the count again.
    second_factor_phone_max: int = Field(3, ge=1, le=100)
    second_factor_phone_window_s: float = Field(600.0, ge=1, le=86400)
    pass_max_days: int = Field(30, ge=1, le=366)
    # Face thumbnails kept beside access events ([faces] keep_thumbnails; box only) are
    # removed after this many days (privacy), checked every thumbnail_purge_s.
    thumbnail_days: int = Field(7, ge=1, le=365)
    thumbnail_purge_s: float = Field(3600.0, ge=1, le=86400)
    offline_ticket_after_s: float = Field(300.0, ge=0)  # device offline this long: repair ticket
    health_check_s: float = Field(1.0, gt=0, le=60)
