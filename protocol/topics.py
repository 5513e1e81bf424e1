"""MQTT topic names of the wire contract (DESIGN.md section 3).

Every topic lives under ``empfang/v1/<site>/``. Sites, rooms, device ids, sessions and
participants are lower-case slugs, so a topic level can never hold a wildcard, a
separator or personal data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from protocol.errors import TopicError

__all__ = [
    "HOME_ASSISTANT_PREFIX",
    "PREFIX",
    "SLUG_PATTERN",
    "Topic",
    "TopicKind",
    "check_discovery_prefix",
    "check_slug",
    "device_cmd",
    "device_config",
    "device_state",
    "device_state_filter",
    "home_assistant_discovery_node",
    "home_assistant_discovery_topic",
    "hub_events",
    "hub_probe",
    "hub_state",
    "is_slug",
    "parse_topic",
    "room_knock",
    "room_knock_filter",
    "room_status",
    "room_status_filter",
    "signal",
    "signal_filter",
    "site_prefix",
]

PREFIX: Final = "empfang/v1"

# ``\Z`` rather than ``$`` so that ``SLUG_PATTERN.match("room\n")`` fails as well.
SLUG_PATTERN: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\Z")
HOME_ASSISTANT_PREFIX: Final = "homeassistant"  # Home Assistant's default discovery prefix
_DISCOVERY_PREFIX: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")

TopicKind = Literal["hub", "room", "device", "signal"]

_ROOM_LEAVES: Final = frozenset({"status", "knock"})
_DEVICE_LEAVES: Final = frozenset({"state", "config", "cmd"})


def is_slug(value: str) -> bool:
    """Return True when ``value`` is a lower-case slug of 1 to 64 characters."""
    return isinstance(value, str) and SLUG_PATTERN.match(value) is not None


def check_slug(value: object, field: str) -> str:
    """Return ``value`` if it is a slug, else raise TopicError naming ``field``."""
    if not isinstance(value, str) or not is_slug(value):
        raise TopicError(
            f"{field}: must be a slug of 1-64 characters a-z, 0-9 and '-', "
            "not starting or ending with '-'"
        )
    return value


def site_prefix(site: str) -> str:
    """Return ``empfang/v1/<site>``."""
    return f"{PREFIX}/{check_slug(site, 'site')}"


def hub_state(site: str) -> str:
    """Return the retained hub state topic (the hub's last will goes here)."""
    return f"{site_prefix(site)}/hub/state"


def hub_events(site: str) -> str:
    """Return the topic on which hub processes tell each other that shared state changed.

    Only the hub writes it; its payloads name no person (see HubEvent).
    """
    return f"{site_prefix(site)}/hub/events"


def hub_probe(site: str) -> str:
    """Return the topic of the hub's liveness probes (empty, QoS 1, never retained).

    Only the hub writes it and nobody reads it: the broker's PUBACK is the answer.
    """
    return f"{site_prefix(site)}/hub/probe"


def room_status(site: str, room: str) -> str:
    """Return the retained status topic of one room."""
    return f"{site_prefix(site)}/rooms/{check_slug(room, 'room')}/status"


def room_status_filter(site: str) -> str:
    """Return the subscription filter matching every room status of a site."""
    return f"{site_prefix(site)}/rooms/+/status"


def room_knock(site: str, room: str) -> str:
    """Return the (not retained) knock topic of one room."""
    return f"{site_prefix(site)}/rooms/{check_slug(room, 'room')}/knock"


def room_knock_filter(site: str) -> str:
    """Return the subscription filter matching every knock of a site."""
    return f"{site_prefix(site)}/rooms/+/knock"


def device_state(site: str, device: str) -> str:
    """Return the retained state topic of one device (its last will goes here)."""
    return f"{site_prefix(site)}/devices/{check_slug(device, 'device')}/state"


def device_state_filter(site: str) -> str:
    """Return the subscription filter matching every device state of a site."""
    return f"{site_prefix(site)}/devices/+/state"


def device_config(site: str, device: str) -> str:
    """Return the retained config topic of one device."""
    return f"{site_prefix(site)}/devices/{check_slug(device, 'device')}/config"


def device_cmd(site: str, device: str) -> str:
    """Return the (not retained) command topic of one device."""
    return f"{site_prefix(site)}/devices/{check_slug(device, 'device')}/cmd"


def signal(site: str, session: str, participant: str) -> str:
    """Return the hub-only signalling topic of one participant in one session."""
    session = check_slug(session, "session")
    participant = check_slug(participant, "participant")
    return f"{site_prefix(site)}/signal/{session}/{participant}"


def signal_filter(site: str) -> str:
    """Return the subscription filter matching every signalling topic of a site."""
    return f"{site_prefix(site)}/signal/+/+"


def check_discovery_prefix(prefix: str, field: str = "prefix") -> str:
    """Return `prefix` if it is one topic level of letters, digits, ``_`` and ``-``."""
    if not isinstance(prefix, str) or not _DISCOVERY_PREFIX.fullmatch(prefix):
        raise TopicError(f"{field}: {prefix!r} must be 1-64 letters, digits, '_' or '-'")
    return prefix


def home_assistant_discovery_topic(
    site: str, room: str, prefix: str = HOME_ASSISTANT_PREFIX
) -> str:
    """Return the Home Assistant discovery topic of one room's occupancy sensor.

    The site is the node id, so each site's configs lie under one filter of their own.
    """
    return f"{home_assistant_discovery_node(site, prefix)}/{check_slug(room, 'room')}/config"


def home_assistant_discovery_node(site: str, prefix: str = HOME_ASSISTANT_PREFIX) -> str:
    """Return the topic level under which a site's discovery configs lie."""
    prefix = check_discovery_prefix(prefix)
    return f"{prefix}/binary_sensor/empfang_{check_slug(site, 'site')}"


@dataclass(frozen=True)
class Topic:
    """A parsed topic.

    ``kind`` is ``hub``, ``room``, ``device`` or ``signal``; ``key`` is the room, the
    device id or the session (None for ``hub``); ``leaf`` is the last fixed level
    (``state``, ``events``, ``probe``, ``status``, ``knock``, ``config``, ``cmd``;
    ``signal`` for signalling);
    ``extra`` is the participant of a signalling topic and None otherwise.
    """

    site: str
    kind: TopicKind
    key: str | None
    leaf: str
    extra: str | None = None


def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic of the contract, or raise TopicError."""
    if not isinstance(topic, str):
        raise TopicError("topic: must be a string")
    if "+" in topic or "#" in topic:
        raise TopicError("topic: wildcards are not allowed")
    head = PREFIX + "/"
    if not topic.startswith(head):
        raise TopicError(f"topic: must start with {head}")
    levels = topic[len(head) :].split("/")
    site = check_slug(levels[0], "site")
    rest = levels[1:]
    match rest:
        case ["hub", "state"]:
            return Topic(site, "hub", None, "state")
        case ["hub", "events"]:
            return Topic(site, "hub", None, "events")
        case ["hub", "probe"]:
            return Topic(site, "hub", None, "probe")
        case ["rooms", room, leaf] if leaf in _ROOM_LEAVES:
            return Topic(site, "room", check_slug(room, "room"), leaf)
        case ["devices", device, leaf] if leaf in _DEVICE_LEAVES:
            return Topic(site, "device", check_slug(device, "device"), leaf)
        case ["signal", session, participant]:
            return Topic(
                site,
                "signal",
                check_slug(session, "session"),
                "signal",
                check_slug(participant, "participant"),
            )
    shown = "/".join(rest)[:80]
    raise TopicError(f"topic: unknown topic {shown!r} under {head}{site}/")
