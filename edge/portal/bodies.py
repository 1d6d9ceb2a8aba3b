"""Request bodies of the portal API; a bad field is a 400 naming it (edge.core.http middleware)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from edge.core.standard import ID

TEXT = r"^[^\x00]*$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Body):
    code: str = Field(pattern=r"^[0-9]{6,16}$")
    pin: str = Field("", pattern=r"^([0-9]{4,10})?$")  # a door-screen code needs the door PIN


class IssueCode(Body):
    resident_id: str = Field(pattern=ID)
    name: str = Field("", max_length=50, pattern=TEXT)
    building: str | None = Field(None, max_length=20, pattern=r"^[A-Za-z0-9_-]+$")
    unit: str | None = Field(None, max_length=20, pattern=TEXT)
    channel: Literal["staff", "print", "door", "screen"] = "staff"
    ttl_h: float | None = Field(None, gt=0, le=24 * 60)


class Revoke(Body):
    session_id: str | None = Field(None, pattern=ID)
    resident_id: str | None = Field(None, pattern=ID)

    @model_validator(mode="after")
    def _one(self) -> Revoke:
        if (self.session_id is None) == (self.resident_id is None):
            raise ValueError("give exactly one of session_id and resident_id")
        return self


class Article(Body):
    id: str | None = Field(None, pattern=ID)
    title: str = Field(min_length=1, max_length=200, pattern=TEXT)
    body: str = Field(min_length=1, max_length=20000, pattern=TEXT)
    tags: list[str] = Field(default_factory=list, max_length=20)
    must_read: bool = False
    buildings: list[str] = Field(default_factory=list, max_length=50)  # empty: everyone


class ReadOpen(Body):
    content_id: str = Field(pattern=ID)


class Dwell(Body):
    dwell_ms: int = Field(ge=0, le=86_400_000)


class Ack(Body):
    content_id: str = Field(pattern=ID)


class NewEvent(Body):
    id: str | None = Field(None, pattern=ID)
    title: str = Field(min_length=1, max_length=200, pattern=TEXT)
    body: str = Field("", max_length=4000, pattern=TEXT)
    place: str = Field("", max_length=200, pattern=TEXT)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: int = Field(ge=1, le=100000)
    volunteer: bool = False
    hours: float = Field(0.0, ge=0, le=24)
    status: Literal["open", "closed", "cancelled"] = "open"

    @model_validator(mode="after")
    def _order(self) -> NewEvent:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Attendance(Body):
    resident_id: str = Field(pattern=ID)
    hours: float | None = Field(None, ge=0, le=24)  # None: the event's hours


class NewPost(Body):
    board: Literal["notice", "exchange"] = "exchange"
    title: str = Field(min_length=1, max_length=100, pattern=TEXT)
    body: str = Field("", max_length=2000, pattern=TEXT)


class Flag(Body):
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$")  # a taxonomy code
    reason: str = Field("", max_length=500, pattern=TEXT)


class Moderate(Body):
    action: Literal["hide", "restore"]
    category: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{1,39}$")
    note: str = Field("", max_length=500, pattern=TEXT)

    @model_validator(mode="after")
    def _category(self) -> Moderate:
        if self.action == "hide" and not self.category:
            raise ValueError("category: a taxonomy code is required to hide a post")
        return self
