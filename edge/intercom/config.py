"""The ``[intercom]`` config section: visitor calls from a door to a flat (docs/intercom.md)."""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.core.config import Section

FLAT = r"^[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}$"  # 楼号-单元-房号


class CallButton(Section):
    """A physical call button wired to a discrete input of the door's Modbus relay board."""

    door: str  # a [[doors]] id of type "modbus"; the input is read on that board
    input: int = Field(ge=0, le=65535)  # 0-based discrete input address
    flat: str = Field(pattern=FLAT)  # the flat this button calls (a villa or a concierge)
    pressed_is: bool = True  # the input value that means "pressed"


class DoorAudio(Section):
    """``[[intercom.audio]]``: a door's microphone and speaker for the live call (WebRTC).

    Each is opened by aiortc/PyAV: an ALSA device (``mic = "hw:1,0"`` with
    ``mic_format = "alsa"``; ``speaker = "default"`` or ``"plughw:1,0"`` with
    ``speaker_format = "alsa"``), or a file: a mic file (a recorded greeting; tests) loops, a
    speaker file is written (WAV by its extension; tests check what the phone said).
    """

    door: str  # a [[doors]] id
    mic: str = ""  # "" = the phone hears nothing from the door (video only)
    mic_format: str = ""  # "alsa" for a capture device; "" = a file, looped
    speaker: str = ""  # "" = the phone's voice is only measured (its level), not played
    speaker_format: str = ""  # "alsa" for a playback device; "" = a file (format by extension)


class SmsGateway(Section):
    """An SMS gateway speaking Twilio's Messages API (form POST, HTTP basic auth)."""

    url: str = "https://api.twilio.com"  # base; tests and compatible gateways point elsewhere
    account_sid: str = Field(min_length=1)
    auth_token: str = Field(min_length=1)
    from_number: str = Field(min_length=1)
    # flat -> phone numbers texted when the flat is called (the box keeps them, never the cloud)
    numbers: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    timeout_s: float = Field(5.0, gt=0, le=60)


class IntercomConfig(Section):
    """``[intercom]``: a visitor dials a flat on the door screen; the flat's phones ring."""

    enabled: bool = True
    ring_s: float = Field(30.0, ge=3, le=300)  # unanswered this long: missed
    talk_s: float = Field(180.0, ge=10, le=3600)  # an answered call ends after this
    # Prank dialling: calls per source (a door screen, button or panel) per minute, and calls
    # to one flat per 10 minutes, whatever the source.
    source_calls_per_min: int = Field(4, ge=1, le=600)
    flat_calls_per_10min: int = Field(6, ge=1, le=600)
    snapshot_quality: int = Field(70, ge=20, le=95)  # JPEG quality of the door picture
    snapshot_width: int = Field(640, ge=160, le=1920)
    pass_hours: float = Field(2.0, gt=0, le=48)  # "let them in later": the one-time pass
    # WebRTC live video + two-way audio for an answered call (aiortc); snapshots when it fails
    rtc: bool = True
    rtc_fps: float = Field(15.0, ge=1, le=30)
    turn_urls: tuple[str, ...] = ()  # e.g. ("turn:turn.example.org:3478?transport=udp",)
    turn_secret: str = ""  # coturn static-auth-secret: phones get 1-hour credentials
    rtc_relay_only: bool = False  # media only through TURN (tests; networks without UDP paths)
    # each door's microphone and speaker ([[intercom.audio]], one per door)
    audio: tuple[DoorAudio, ...] = ()
    button_poll_s: float = Field(0.25, ge=0.05, le=10)
    buttons: tuple[CallButton, ...] = ()
    sms: SmsGateway | None = None
    # Web Push to phones with the page closed (the box's VAPID key: <data_dir>/intercom-vapid.pem)
    push: bool = True
    # Push endpoints must be https to public hosts (the box POSTs to them on every ring: no
    # LAN or loopback address a resident picks). True only for tests and labs.
    push_allow_private: bool = False
    vapid_subject: str = Field("mailto:admin@localhost", pattern=r"^(mailto:|https://)")

    @model_validator(mode="after")
    def _one_audio_per_door(self) -> IntercomConfig:
        doors = [a.door for a in self.audio]
        twice = sorted({d for d in doors if doors.count(d) > 1})
        if twice:
            raise ValueError(f"audio: door {twice[0]!r} is listed twice")
        return self

    def audio_of(self, door_id: str) -> DoorAudio | None:
        return next((a for a in self.audio if a.door == door_id), None)
