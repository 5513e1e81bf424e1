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
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final, Literal, NoReturn, TypeVar

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


def _slug(value: object, field: str) -> str:
    if not isinstance(value, str) or not is_slug(value):
        _fail(field, "must be a lower-case slug of 1-64 characters a-z, 0-9 and '-'")
    return value


def _choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        _fail(field, f"must be one of {', '.join(choices)}")
    return str(value)


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


def _check_size(payload: bytes, field: str) -> None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        _fail(field, f"too large, the payload must stay within {MAX_PAYLOAD_BYTES} bytes")


# --- one rule per field ----------------------------------------------------------------

Check = Callable[[Any, str], Any]


def _same(value: Any) -> Any:
    return value


def _as_is(value: object, _field: str) -> object:
    return value


@dataclass(frozen=True)
class Rule:
    """How one field of a payload is checked, written to JSON and read from it.

    `check` validates (and normalises) a value and is the only validation: the
    constructor runs it, and `parse` only turns JSON into the value the check expects
    (`load`, e.g. a time string into a datetime). `wire_required` fields must be on the
    wire even where the constructor has a default (the version).
    """

    check: Check
    dump: Callable[[Any], object] = _same
    load: Check = _as_is
    wire_required: bool = False


def _rule(rule: Rule, **options: Any) -> Any:
    """A dataclass field governed by `rule` (options as for dataclasses.field)."""
    return field(metadata={"rule": rule}, **options)


def _optional(rule: Rule) -> Rule:
    """`rule`, or null."""
    return Rule(
        check=lambda v, f: None if v is None else rule.check(v, f),
        dump=lambda v: None if v is None else rule.dump(v),
        load=lambda v, f: None if v is None else rule.load(v, f),
    )


def _one_of(choices: tuple[str, ...]) -> Rule:
    return Rule(check=lambda v, f: _choice(v, f, choices))


def _count(low: int = 0, high: int = _MAX_SAFE_INT) -> Rule:
    return Rule(check=lambda v, f: _int(v, f, low, high))


def _version_one(message: str) -> Rule:
    def check(value: object, field: str) -> int:
        if isinstance(value, bool) or value != 1:
            _fail(field, message)
        return 1

    return Rule(check=check, wire_required=True)


def _object(value: object, field: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        _fail(field, "must be an object")
    return value


_SLUG: Final = Rule(check=_slug)
_TIME_RULE: Final = Rule(check=_aware, dump=format_time, load=parse_time)
_NAME_RULE: Final = Rule(check=lambda v, f: _text(v, f, _MAX_NAME))
_VERSION_TEXT: Final = _optional(Rule(check=lambda v, f: _text(v, f, _MAX_VERSION)))
_STATE_RULE: Final = Rule(
    check=lambda v, f: RoomState(_choice(v, f, tuple(RoomState))), dump=lambda s: s.value
)
# A flat object of scalars (telemetry, command arguments), frozen; null reads as empty.
_SCALARS_RULE: Final = Rule(check=_scalars, dump=dict, load=lambda v, _f: {} if v is None else v)

P = TypeVar("P", bound="Payload")


class Payload:
    """A payload whose fields each declare their rule (``_rule(...)`` metadata).

    From the rules alone come validation on construction, ``to_dict``/``to_json`` in
    field order, and ``parse``: unknown keys are ignored, a missing key takes the
    field's default or is refused as required. `_check` holds rules across fields.
    """

    size_field: ClassVar[str | None] = None  # named when the payload is too large

    def __post_init__(self) -> None:
        """Check (and normalise) every field, then the rules across fields."""
        for f in fields(self):  # type: ignore[arg-type]
            value = f.metadata["rule"].check(getattr(self, f.name), f.name)
            object.__setattr__(self, f.name, value)
        self._check()
        if self.size_field is not None and len(self.to_json()) > MAX_PAYLOAD_BYTES:
            _fail(
                self.size_field,
                f"too large, the payload must stay within {MAX_PAYLOAD_BYTES} bytes",
            )

    def _check(self) -> None:
        """Rules across fields (none unless a payload has some)."""

    def to_dict(self) -> dict[str, object]:
        """Return the JSON-ready dict in wire key order."""
        return {
            f.name: f.metadata["rule"].dump(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
        }

    def to_json(self) -> bytes:
        """Return the compact UTF-8 JSON payload."""
        return _dump(self.to_dict())

    @classmethod
    def parse(cls: type[P], data: bytes | str) -> P:
        """Parse a payload, or raise PayloadError naming the offending field."""
        obj = _load(data)
        values: dict[str, object] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            rule: Rule = f.metadata["rule"]
            if f.name in obj:
                values[f.name] = rule.load(obj[f.name], f.name)
            elif rule.wire_required or (f.default is MISSING and f.default_factory is MISSING):
                _fail(f.name, "required")
        return cls(**values)


# --- payloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomStatus(Payload):
    """The retained status of one room (``rooms/<room>/status``), published by the hub."""

    v: int = _rule(_version_one("unsupported version, must be 1"), default=1, kw_only=True)
    room: str = _rule(_SLUG)
    name: str = _rule(_NAME_RULE)
    state: RoomState = _rule(_STATE_RULE)
    occupants: int = _rule(_count())
    waiting: int = _rule(_count())
    since: datetime = _rule(_TIME_RULE)
    seq: int = _rule(_count())
    updated: datetime = _rule(_TIME_RULE)
    ttl: int = _rule(_count(1, _MAX_TTL))

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
class HubState(Payload):
    """The retained hub state (``hub/state``); the hub's last will says offline."""

    state: Availability = _rule(_one_of(_AVAILABILITY))
    version: str | None = _rule(_VERSION_TEXT, default=None)

    @classmethod
    def offline_json(cls, version: str | None = None) -> bytes:
        """Return the offline payload, for the last will and a clean shutdown."""
        return cls("offline", version).to_json()


@dataclass(frozen=True)
class Knock(Payload):
    """A knock on a room's door from a display or light button (``rooms/<room>/knock``)."""

    device: str = _rule(_SLUG)
    at: datetime = _rule(_TIME_RULE)


@dataclass(frozen=True)
class DeviceState(Payload):
    """The retained state of a device (``devices/<id>/state``); its last will says offline.

    ``telemetry`` is a flat JSON object of at most 50 keys with string, number, boolean
    or null values. ``kind`` is required while the device is online.
    """

    size_field: ClassVar[str | None] = "telemetry"

    state: Availability = _rule(_one_of(_AVAILABILITY))
    kind: DeviceKind | None = _rule(_optional(_one_of(_DEVICE_KINDS)), default=None)
    version: str | None = _rule(_VERSION_TEXT, default=None)
    telemetry: Mapping[str, object] = _rule(_SCALARS_RULE, default_factory=dict, hash=False)

    def _check(self) -> None:
        if self.kind is None and self.state == "online":
            _fail("kind", "required while the device is online")

    @classmethod
    def offline_json(cls, kind: DeviceKind | None = None, version: str | None = None) -> bytes:
        """Return the offline payload, for the device's last will."""
        return cls("offline", kind, version).to_json()


@dataclass(frozen=True)
class DeviceCommand(Payload):
    """A one-off command from the hub to a device (``devices/<id>/cmd``).

    ``args`` is a flat JSON object like ``telemetry`` of DeviceState.
    """

    size_field: ClassVar[str | None] = "args"

    cmd: CommandName = _rule(_one_of(_COMMANDS))
    args: Mapping[str, object] = _rule(_SCALARS_RULE, default_factory=dict, hash=False)


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
class DeviceConfig(Payload):
    """The retained configuration of a device (``devices/<id>/config``), set by the hub.

    ``quiet_hours`` is a local (start, end) pair like ("22:00", "06:00"); it may wrap
    past midnight. Unknown keys are ignored when parsing.
    """

    rooms: tuple[str, ...] = _rule(Rule(check=lambda v, _f: _rooms(v), dump=list))
    brightness: int = _rule(_count(0, 100), default=100)
    quiet_hours: tuple[str, str] | None = _rule(
        Rule(
            check=lambda v, _f: _quiet_hours(v),
            dump=lambda q: None if q is None else list(q),
        ),
        default=None,
    )
    language: Language = _rule(_one_of(_LANGUAGES), default="de")


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
class HubEvent(Payload):
    """A change of shared hub state that every hub process must pick up (``hub/events``).

    It carries no personal data: only what changed (``kind``) and an opaque reference
    (a ticket's public id, never its token). Receivers re-read the details from the
    database.
    """

    v: int = _rule(_version_one("must be 1"), default=1, kw_only=True)
    kind: HubEventKind = _rule(_one_of(HUB_EVENT_KINDS))
    ref: str | None = _rule(_optional(_SLUG), default=None)


SIGNAL_KINDS: tuple[str, ...] = ("description", "candidate", "bye")


@dataclass(frozen=True)
class Signal(Payload):
    """A WebRTC signalling message from one call participant to another (``signal/…``).

    Only hub processes publish these; ``data`` holds an SDP description or an ICE
    candidate exactly as the browser produced it, and nothing else.
    """

    size_field: ClassVar[str | None] = "data"

    sender: str = _rule(_SLUG)
    kind: str = _rule(_one_of(SIGNAL_KINDS))
    data: Mapping[str, object] = _rule(Rule(check=_object, dump=dict))
