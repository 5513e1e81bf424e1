"""The JSON API's request and response shapes, declared once.

Request validation and the OpenAPI document both come from these pydantic models (through
`hub.apispec`). Text fields carry the one text rule of `protocol.text`; enums come from
the tables and the wire contract, never retyped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from hub.models import DEVICE_KINDS, ROOM_KINDS, ROOM_POLICIES
from hub.services import devices as device_rules
from hub.services import reception as reception_rules
from hub.services import rooms as room_rules
from protocol.payloads import RoomState
from protocol.text import LINE_PATTERN, MULTILINE_PATTERN
from protocol.topics import SLUG_PATTERN

# JSON Schema has no \Z: the same slug rule with $ (slugs hold no newline either way).
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN.pattern.replace(r"\Z", "$"))]
DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


def line(max_len: int) -> Any:
    """A single line of text: no control characters, not blank, at most `max_len`."""
    return Annotated[str, StringConstraints(max_length=max_len, pattern=LINE_PATTERN)]


def multiline(max_len: int) -> Any:
    """Free text over several lines (newlines and tabs allowed), at most `max_len`."""
    return Annotated[str, StringConstraints(max_length=max_len, pattern=MULTILINE_PATTERN)]


def enum(values: tuple[str, ...]) -> Any:
    """A string that must be one of `values`."""
    return Literal[values]  # type: ignore[valid-type]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # A field left out keeps its value; null is no value a client may send for it.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_no_null_defaults)


class Open(BaseModel):
    """Answers: the hub may add fields later; clients ignore what they do not know."""

    model_config = ConfigDict(extra="allow")


# ---- errors ------------------------------------------------------------------------------
class ErrorBody(Open):
    """Every refusal: a reason, the field it concerns and a stable code."""

    error: str
    field: str | None = None
    code: str | None = None


# ---- rooms -------------------------------------------------------------------------------
_TIME = r"([01][0-9]|2[0-4]):[0-5][0-9]"
Range = Annotated[str, StringConstraints(pattern=rf"^{_TIME}-{_TIME}$")]
Day = enum(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))


class OpeningHours(Strict):
    """Weekly ranges in the site's time zone and closed days; empty means always open."""

    weekly: dict[Day, Annotated[list[Range], Field(max_length=8)]] = Field(default_factory=dict)
    closed_days: Annotated[
        list[Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]],
        Field(max_length=366),
    ] = Field(default_factory=list)


class RoomStatusBody(Open):
    """The retained MQTT status payload (the wire contract)."""

    v: Literal[1]
    room: Slug
    name: str
    state: enum(tuple(s.value for s in RoomState))
    occupants: Annotated[int, Field(ge=0)]
    waiting: Annotated[int, Field(ge=0)]
    since: DateTime
    seq: Annotated[int, Field(ge=0)]
    updated: DateTime
    ttl: Annotated[int, Field(ge=1)]


class RoomBody(Open):
    """A room's settings and its current published status."""

    slug: Slug
    name: str
    kind: enum(ROOM_KINDS)
    policy: enum(ROOM_POLICIES)
    department: Slug | None
    enabled: bool
    dnd: bool
    open: bool
    opening_hours: dict[str, Any]
    status: RoomStatusBody | None


class RoomList(Open):
    """Every room."""

    rooms: list[RoomBody]


class RoomChange(Strict):
    """The editable fields of a room; left out, they keep their value (or the default)."""

    name: line(room_rules.MAX_NAME) = None
    kind: enum(ROOM_KINDS) = None
    policy: enum(ROOM_POLICIES) = None
    department: Slug | None = None
    enabled: bool = None
    opening_hours: OpeningHours = None


class NewRoom(RoomChange):
    """A room to create."""

    slug: Slug
    name: line(room_rules.MAX_NAME)  # type: ignore[assignment]


class DndChange(Strict):
    """Do-not-disturb on or off."""

    dnd: bool


class EnabledChange(Strict):
    """A room switched on or off."""

    enabled: bool


class SessionBody(Open):
    """Who is logged in, and the CSRF token state changes must send."""

    user: dict[str, Any] | None
    csrf_token: str


# ---- reception ---------------------------------------------------------------------------
class Category(Open):
    """A concern a citizen can choose."""

    slug: Slug
    name: str
    department: Slug


class ReceptionInfo(Open):
    """Open or closed, people waiting, the estimate and the concerns."""

    open: bool
    configured: bool
    waiting: Annotated[int, Field(ge=0)]
    estimate_minutes: int | None
    next_opening: DateTime | None
    categories: list[Category]


class NewTicket(Strict):
    """A citizen takes a ticket; `device` marks a kiosk as where they came from."""

    name: line(reception_rules.MAX_NAME)
    category: Slug
    description: multiline(reception_rules.MAX_DESCRIPTION) | Literal[""] = ""
    consent: Literal[True]
    language: enum(reception_rules.LANGUAGES) = "de"
    device: Slug = None  # type: ignore[assignment]


class TicketMessage(Open):
    """A message staff sent to the waiting citizen."""

    at: DateTime
    text: str


class TicketView(Open):
    """The citizen's view of their ticket; never other citizens' data."""

    ticket: str
    status: enum(("waiting", "serving", "ended"))
    language: str
    position: int | None
    estimate_minutes: int | None
    next: bool
    forwarded_to: str | None
    messages: list[TicketMessage]
    room: dict[str, str] | None
    staff: str | None
    outcome: str | None


class NewTicketView(TicketView):
    """A new ticket with its secret token (every later call needs it)."""

    token: str


class CallCredentials(Open):
    """What a kiosk needs to join its call."""

    participant: str
    key: str
    live: str
    ice_servers: list[dict[str, Any]]


# ---- the staff queue -------------------------------------------------------------------
class QueueAction(Strict):
    """Fields of a queue action: admit {room}, forward {department | colleague, note},
    end {outcome}, message {text}; return takes none."""

    room: Slug = None
    department: Slug = None
    colleague: Slug = None
    note: multiline(reception_rules.MAX_NOTE) | Literal[""] = None
    outcome: enum(("resolved", "forwarded", "no_show")) = None
    text: multiline(reception_rules.MAX_MESSAGE) = None


class QueueTicket(Open):
    """A ticket as staff see it."""

    ticket: str
    status: enum(("waiting", "serving", "ended"))


class QueueLists(Open):
    """Waiting and served tickets of the caller's queues."""

    waiting: list[QueueTicket]
    serving: list[QueueTicket]


# ---- devices ---------------------------------------------------------------------------
class DeviceBody(Open):
    """A device as admins see it (never its code or password)."""

    id: Slug
    kind: enum(DEVICE_KINDS)
    name: str
    location: str
    rooms: list[Slug]
    enrollment: str
    code_expires: DateTime | None
    enrolled_at: DateTime | None
    revoked: bool
    online: bool
    last_seen: DateTime | None
    version: str | None
    telemetry: dict[str, Any]


class DeviceList(Open):
    """Every device."""

    devices: list[DeviceBody]


class DeviceWithCode(DeviceBody):
    """A device and its one-time enrollment code, shown once."""

    code: str
    code_expires: DateTime  # type: ignore[assignment]


class DeviceFilter(Strict):
    """Filters of the device list."""

    kind: enum(DEVICE_KINDS) = None
    location: line(device_rules.MAX_LOCATION) = None


class DeviceChange(Strict):
    """A device's name, location or rooms."""

    name: line(device_rules.MAX_NAME) = None
    location: line(device_rules.MAX_LOCATION) | Literal[""] = None
    rooms: Annotated[list[Slug], Field(max_length=device_rules.MAX_ROOMS)] = None


class NewDevice(DeviceChange):
    """A device to create; its id is made up when left out."""

    kind: enum(DEVICE_KINDS)
    name: line(device_rules.MAX_NAME)  # type: ignore[assignment]
    id: Slug = None


class DeviceCommand(Strict):
    """A command for a device."""

    cmd: enum(device_rules.COMMANDS)


class Enroll(Strict):
    """A device spends its one-time code."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    kind: enum(DEVICE_KINDS) = None  # checked against the code's device when given


class Enrollment(Open):
    """A device's id and its own broker login."""

    device: str


class Empty(RootModel[None]):
    """No body."""
