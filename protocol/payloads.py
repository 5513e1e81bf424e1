"""Message payloads of the wire contract (DESIGN.md section 3).

Every payload is a compact UTF-8 JSON object of at most ``MAX_PAYLOAD_BYTES`` bytes.
Parsing tolerates unknown keys, so an older receiver survives a newer sender, and rejects
wrong types with a ``PayloadError`` whose reason starts with the offending field.
Constructing a payload object validates it the same way, so a bad value never reaches
the wire.

Privacy: no payload ever carries personal data. Rooms, states, counts, device facts and
times only; never a citizen's name, concern, ticket or anything else that identifies a
person. Nothing here can tell a name from a room title, so every publisher keeps to this
rule itself.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal, NoReturn, cast

from protocol.errors import PayloadError
from protocol.text import BAD_CHARS_REASON, is_clean
from protocol.topics import check_slug, hub_state, is_slug, room_status

__all__ = [
    "HUB_EVENT_KINDS",
    "MAX_PAYLOAD_BYTES",
    "SIGNAL_KINDS",
    "Availability",
    "CommandName",
    "DeviceCommand",
    "DeviceConfig",
    "DeviceKind",
    "DeviceState",
    "HubEvent",
    "HubState",
    "Knock",
    "Language",
    "RoomState",
    "RoomStatus",
    "Signal",
    "format_time",
    "home_assistant_discovery",
    "parse_time",
]

MAX_PAYLOAD_BYTES: Final = 16384
# Largest integer that every JSON reader (JavaScript included) keeps exact.
_MAX_SAFE_INT: Final = 2**53 - 1
_MAX_NAME: Final = 200
_MAX_VERSION: Final = 64
_MAX_KEYS: Final = 50
_MAX_KEY: Final = 64
_MAX_VALUE: Final = 256
_MAX_ROOMS: Final = 100
_MAX_TTL: Final = 86400

Availability = Literal["online", "offline"]
DeviceKind = Literal["kiosk", "display", "light"]
CommandName = Literal["reload", "identify", "reset"]
Language = Literal["de", "en"]

_AVAILABILITY: Final = ("online", "offline")
_DEVICE_KINDS: Final = ("kiosk", "display", "light")
_COMMANDS: Final = ("reload", "identify", "reset")
_LANGUAGES: Final = ("de", "en")

_TIME: Final = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?(?:Z|\+00:00)"
)
_HHMM: Final = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


class RoomState(StrEnum):
    """The state of a room as doors, lights and the website show it."""

    FREE = "free"
    BUSY = "busy"
    WAITING = "waiting"
    CLOSED = "closed"
    DND = "dnd"


# --- time -----------------------------------------------------------------------------


def format_time(dt: datetime) -> str:
    """Format an aware datetime as UTC ISO 8601 with seconds, e.g. 2026-11-25T14:03:00Z."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_time: naive datetime, pass an aware one")
    u = dt.astimezone(UTC)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


def parse_time(value: object, field: str) -> datetime:
    """Parse a UTC timestamp ("…Z" or "…+00:00") into an aware UTC datetime."""
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        _fail(field, "must be a UTC time like 2026-11-25T14:03:00Z")
    year, month, day, hour, minute, second, fraction = match.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, UTC
        )
    except ValueError:
        _fail(field, "not a valid date and time")


# --- validation helpers -----------------------------------------------------------------


def _fail(field: str, message: str) -> NoReturn:
    raise PayloadError(f"{field}: {message}")


def _load(data: object) -> dict[str, object]:
    if isinstance(data, str):
        if len(data) > MAX_PAYLOAD_BYTES:
            _fail("payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            _fail("payload", "not valid UTF-8")
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        _fail("payload", "must be bytes or str")
    if len(raw) > MAX_PAYLOAD_BYTES:
        _fail("payload", f"larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _fail("payload", "not valid UTF-8")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        _fail("payload", "not valid JSON")
    if not isinstance(obj, dict):
        _fail("payload", "must be a JSON object")
    return obj


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _dump(obj: Mapping[str, object]) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _require(obj: Mapping[str, object], key: str) -> object:
    if key not in obj:
        _fail(key, "required")
    return obj[key]


def _int(value: object, field: str, low: int = 0, high: int = _MAX_SAFE_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(field, "must be an integer")
    if not low <= value <= high:
        _fail(field, f"must be between {low} and {high}")
    return value


def _text(value: object, field: str, max_len: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        _fail(field, "must be a string")
    if not value and not allow_empty:
        _fail(field, "must not be empty")
    if len(value) > max_len:
        _fail(field, f"longer than {max_len} characters")
    if not is_clean(value):
        _fail(field, BAD_CHARS_REASON)
    return value


def _optional_text(value: object, field: str, max_len: int) -> str | None:
    return None if value is None else _text(value, field, max_len)


def _slug(value: object, field: str) -> str:
    if not isinstance(value, str) or not is_slug(value):
        _fail(field, "must be a lower-case slug of 1-64 characters a-z, 0-9 and '-'")
    return value


def _choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail(field, f"must be one of {', '.join(choices)}")
    return str(value)


def _room_state(value: object) -> RoomState:
    return RoomState(_choice(value, "state", tuple(RoomState)))


def _aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        _fail(field, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def _scalars(value: object, field: str) -> Mapping[str, object]:
    """Check a flat JSON object of at most 50 string keys and scalar values."""
    if not isinstance(value, Mapping):
        _fail(field, "must be a JSON object")
    if len(value) > _MAX_KEYS:
        _fail(field, f"more than {_MAX_KEYS} keys")
    out: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= _MAX_KEY or not is_clean(key):
            _fail(field, f"keys must be strings of 1-{_MAX_KEY} printable characters")
        where = f"{field}.{key}"
        if isinstance(item, str):
            _text(item, where, _MAX_VALUE, allow_empty=True)
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            _int(item, where, -_MAX_SAFE_INT, _MAX_SAFE_INT)
        elif isinstance(item, float):
            if not math.isfinite(item):
                _fail(where, "must be a finite number")
        else:
            _fail(where, "must be a string, number, boolean or null")
        out[key] = item
    return MappingProxyType(out)


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _check_size(payload: bytes, field: str) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        _fail(field, f"too large, the payload must stay within {MAX_PAYLOAD_BYTES} bytes")


# --- payloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomStatus:
    """The retained status of one room (``rooms/<room>/status``), published by the hub."""

    room: str
    name: str
    state: RoomState
    occupants: int
    waiting: int
    since: datetime
    seq: int
    updated: datetime
    ttl: int
    v: int = 1

    def __post_init__(self) -> None:
        """Validate every field and normalise state and times."""
        if isinstance(self.v, bool) or self.v != 1:
            _fail("v", "unsupported version, must be 1")
        _slug(self.room, "room")
        _text(self.name, "name", _MAX_NAME)
        _set(self, "state", _room_state(self.state))
        _int(self.occupants, "occupants")
        _int(self.waiting, "waiting")
        _set(self, "since", _aware(self.since, "since"))
        _int(self.seq, "seq")
        _set(self, "updated", _aware(self.updated, "updated"))
        _int(self.ttl, "ttl", 1, _MAX_TTL)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict in wire key order."""
        return {
            "v": self.v,
            "room": self.room,
            "name": self.name,
            "state": self.state.value,
            "occupants": self.occupants,
            "waiting": self.waiting,
            "since": format_time(self.since),
            "seq": self.seq,
            "updated": format_time(self.updated),
            "ttl": self.ttl,
        }

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> RoomStatus:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        v = _require(obj, "v")
        if isinstance(v, bool) or v != 1:
            _fail("v", "unsupported version, must be 1")
        return cls(
            room=_slug(_require(obj, "room"), "room"),
            name=_text(_require(obj, "name"), "name", _MAX_NAME),
            state=_room_state(_require(obj, "state")),
            occupants=_int(_require(obj, "occupants"), "occupants"),
            waiting=_int(_require(obj, "waiting"), "waiting"),
            since=parse_time(_require(obj, "since"), "since"),
            seq=_int(_require(obj, "seq"), "seq"),
            updated=parse_time(_require(obj, "updated"), "updated"),
            ttl=_int(_require(obj, "ttl"), "ttl", 1, _MAX_TTL),
        )

    def is_stale(self, now: datetime) -> bool:
        """Return True when ``updated`` is more than ``ttl`` seconds before ``now``."""
        if now.utcoffset() is None:
            raise ValueError("is_stale: naive datetime, pass an aware one")
        return now - self.updated > timedelta(seconds=self.ttl)

    def newer_than(self, other: RoomStatus | None) -> bool:
        """Return True when this status should replace ``other`` (higher seq, or fresher)."""
        if other is None:
            return True
        if self.seq != other.seq:
            return self.seq > other.seq
        return self.updated > other.updated


@dataclass(frozen=True)
class HubState:
    """The retained hub state (``hub/state``); the hub's last will says offline."""

    state: Availability
    version: str | None = None

    def __post_init__(self) -> None:
        """Validate every field."""
        _choice(self.state, "state", _AVAILABILITY)
        _optional_text(self.version, "version", _MAX_VERSION)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict."""
        return {"state": self.state, "version": self.version}

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> HubState:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        return cls(
            state=cast(Availability, _choice(_require(obj, "state"), "state", _AVAILABILITY)),
            version=_optional_text(obj.get("version"), "version", _MAX_VERSION),
        )

    @classmethod
    def offline_json(cls, version: str | None = None) -> bytes:
        """Return the offline payload, for the last will and a clean shutdown."""
        return cls("offline", version).to_json()


@dataclass(frozen=True)
class Knock:
    """A knock on a room's door from a display or light button (``rooms/<room>/knock``)."""

    device: str
    at: datetime

    def __post_init__(self) -> None:
        """Validate every field and normalise the time."""
        _slug(self.device, "device")
        _set(self, "at", _aware(self.at, "at"))

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict."""
        return {"device": self.device, "at": format_time(self.at)}

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> Knock:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        return cls(
            device=_slug(_require(obj, "device"), "device"),
            at=parse_time(_require(obj, "at"), "at"),
        )


@dataclass(frozen=True)
class DeviceState:
    """The retained state of a device (``devices/<id>/state``); its last will says offline.

    ``telemetry`` is a flat JSON object of at most 50 keys with string, number, boolean
    or null values. ``kind`` is required while the device is online.
    """

    state: Availability
    kind: DeviceKind | None = None
    version: str | None = None
    telemetry: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """Validate every field and freeze the telemetry."""
        _choice(self.state, "state", _AVAILABILITY)
        if self.kind is None:
            if self.state == "online":
                _fail("kind", "required while the device is online")
        else:
            _choice(self.kind, "kind", _DEVICE_KINDS)
        _optional_text(self.version, "version", _MAX_VERSION)
        _set(self, "telemetry", _scalars(self.telemetry, "telemetry"))
        _check_size(self.to_json(), "telemetry")

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict."""
        return {
            "state": self.state,
            "kind": self.kind,
            "version": self.version,
            "telemetry": dict(self.telemetry),
        }

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> DeviceState:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        kind = obj.get("kind")
        telemetry = obj.get("telemetry")
        return cls(
            state=cast(Availability, _choice(_require(obj, "state"), "state", _AVAILABILITY)),
            kind=None if kind is None else cast(DeviceKind, _choice(kind, "kind", _DEVICE_KINDS)),
            version=_optional_text(obj.get("version"), "version", _MAX_VERSION),
            telemetry={} if telemetry is None else _scalars(telemetry, "telemetry"),
        )

    @classmethod
    def offline_json(cls, kind: DeviceKind | None = None, version: str | None = None) -> bytes:
        """Return the offline payload, for the device's last will."""
        return cls("offline", kind, version).to_json()


@dataclass(frozen=True)
class DeviceCommand:
    """A one-off command from the hub to a device (``devices/<id>/cmd``).

    ``args`` is a flat JSON object like ``telemetry`` of DeviceState.
    """

    cmd: CommandName
    args: Mapping[str, object] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        """Validate every field and freeze the arguments."""
        _choice(self.cmd, "cmd", _COMMANDS)
        _set(self, "args", _scalars(self.args, "args"))
        _check_size(self.to_json(), "args")

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict."""
        return {"cmd": self.cmd, "args": dict(self.args)}

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> DeviceCommand:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        args = obj.get("args")
        return cls(
            cmd=cast(CommandName, _choice(_require(obj, "cmd"), "cmd", _COMMANDS)),
            args={} if args is None else _scalars(args, "args"),
        )


def _rooms(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        _fail("rooms", "must be a list of room slugs")
    if len(value) > _MAX_ROOMS:
        _fail("rooms", f"more than {_MAX_ROOMS} rooms")
    rooms = tuple(_slug(room, f"rooms[{i}]") for i, room in enumerate(value))
    if len(set(rooms)) != len(rooms):
        _fail("rooms", "lists a room twice")
    return rooms


def _quiet_hours(value: object) -> tuple[str, str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(t, str) and _HHMM.fullmatch(t) for t in value)
    ):
        _fail("quiet_hours", 'must be null or ["HH:MM", "HH:MM"]')
    start, end = value
    if start == end:
        _fail("quiet_hours", "start and end must differ")
    return (start, end)


@dataclass(frozen=True)
class DeviceConfig:
    """The retained configuration of a device (``devices/<id>/config``), set by the hub.

    ``quiet_hours`` is a local (start, end) pair like ("22:00", "06:00"); it may wrap
    past midnight. Unknown keys are ignored when parsing.
    """

    rooms: tuple[str, ...]
    brightness: int = 100
    quiet_hours: tuple[str, str] | None = None
    language: Language = "de"

    def __post_init__(self) -> None:
        """Validate every field and normalise lists to tuples."""
        _set(self, "rooms", _rooms(self.rooms))
        _int(self.brightness, "brightness", 0, 100)
        _set(self, "quiet_hours", _quiet_hours(self.quiet_hours))
        _choice(self.language, "language", _LANGUAGES)

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict."""
        return {
            "rooms": list(self.rooms),
            "brightness": self.brightness,
            "quiet_hours": None if self.quiet_hours is None else list(self.quiet_hours),
            "language": self.language,
        }

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> DeviceConfig:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        return cls(
            rooms=_rooms(_require(obj, "rooms")),
            brightness=_int(obj.get("brightness", 100), "brightness", 0, 100),
            quiet_hours=_quiet_hours(obj.get("quiet_hours")),
            language=cast(Language, _choice(obj.get("language", "de"), "language", _LANGUAGES)),
        )


def home_assistant_discovery(
    site: str, status: RoomStatus, *, version: str | None = None
) -> dict[str, object]:
    """Return the Home Assistant discovery config of a room's occupancy binary_sensor.

    Publish it, retained, on ``home_assistant_discovery_topic(site, status.room)``.
    The sensor is on while the room is busy or do-not-disturb, unavailable while the hub
    is offline, and expires when no status arrives within ``ttl`` seconds.
    """
    site = check_slug(site, "site")
    topic = room_status(site, status.room)
    device: dict[str, object] = {
        "identifiers": [f"empfang_{site}"],
        "name": f"empfang {site}",
        "manufacturer": "empfang",
        "model": "hub",
    }
    if version is not None:
        device["sw_version"] = _text(version, "version", _MAX_VERSION)
    return {
        "name": status.name,
        "unique_id": f"empfang_{site}_{status.room}",
        "device_class": "occupancy",
        "state_topic": topic,
        "value_template": "{{ 'ON' if value_json.state in ('busy', 'dnd') else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": topic,
        "json_attributes_template": (
            "{{ {'state': value_json.state, 'occupants': value_json.occupants,"
            " 'waiting': value_json.waiting} | tojson }}"
        ),
        "availability_topic": hub_state(site),
        "availability_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "expire_after": status.ttl,
        "qos": 1,
        "device": device,
    }


# "colleague": a host brought a staff member (ref `staff-<user id>`) into a conversation;
# "presence": the rooms a staff member (ref `staff-<user id>`) is checked in to changed.
HubEventKind = Literal["queue", "ticket", "call", "colleague", "presence"]
HUB_EVENT_KINDS: tuple[str, ...] = ("queue", "ticket", "call", "colleague", "presence")


@dataclass(frozen=True)
class HubEvent:
    """A change of shared hub state that every hub process must pick up (``hub/events``).

    It carries no personal data: only what changed (``kind``) and an opaque reference
    (a ticket's public id, never its token). Receivers re-read the details from the
    database.
    """

    kind: HubEventKind
    ref: str | None = None
    v: int = 1

    def __post_init__(self) -> None:
        _choice(self.kind, "kind", HUB_EVENT_KINDS)
        if self.ref is not None:
            _slug(self.ref, "ref")
        if self.v != 1:
            _fail("v", "must be 1")

    def to_dict(self) -> dict[str, object]:
        """Return the JSON object."""
        return {"v": self.v, "kind": self.kind, "ref": self.ref}

    def to_json(self) -> bytes:
        """Return the UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> HubEvent:
        """Parse and validate a payload, or raise PayloadError."""
        obj = _load(data)
        if obj.get("v") != 1:
            _fail("v", "must be 1")
        ref = obj.get("ref")
        return cls(
            kind=_choice(_require(obj, "kind"), "kind", HUB_EVENT_KINDS),  # type: ignore[arg-type]
            ref=None if ref is None else _slug(ref, "ref"),
        )


SIGNAL_KINDS: tuple[str, ...] = ("description", "candidate", "bye")


@dataclass(frozen=True)
class Signal:
    """A WebRTC signalling message from one call participant to another (``signal/…``).

    Only hub processes publish these; ``data`` holds an SDP description or an ICE
    candidate exactly as the browser produced it, and nothing else.
    """

    sender: str
    kind: str
    data: Mapping[str, object]

    def __post_init__(self) -> None:
        _slug(self.sender, "sender")
        _choice(self.kind, "kind", SIGNAL_KINDS)
        if not isinstance(self.data, Mapping):
            _fail("data", "must be an object")
        _check_size(self.to_json(), "data")

    def to_dict(self) -> dict[str, object]:
        """Return the JSON object."""
        return {"sender": self.sender, "kind": self.kind, "data": dict(self.data)}

    def to_json(self) -> bytes:
        """Return the UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls, data: bytes | str) -> Signal:
        """Parse and validate a payload, or raise PayloadError."""
        obj = _load(data)
        body = _require(obj, "data")
        if not isinstance(body, dict):
            _fail("data", "must be an object")
        return cls(
            sender=_slug(_require(obj, "sender"), "sender"),
            kind=_choice(_require(obj, "kind"), "kind", SIGNAL_KINDS),
            data=body,
        )
