"""What the display knows and what it may show: pure logic, no I/O, no threads.

A ``RoomBoard`` is fed MQTT messages and connection events and answers ``view(now)``.
It shows UNKNOWN whenever it cannot vouch for a room's state: no status yet, a status
older than its ``ttl``, the hub offline, the broker connection lost, or a status not yet
confirmed since the broker or the hub came back, or one stamped more than ``ttl`` in the
future (a wrong clock here or at the hub). A stale "free" is worse than "unknown".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from protocol import topics
from protocol.errors import PayloadError, TopicError
from protocol.payloads import HubState, RoomStatus

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class Shown(StrEnum):
    """What an output shows for a room: the five room states, or unknown."""

    FREE = "free"
    BUSY = "busy"
    WAITING = "waiting"
    CLOSED = "closed"
    DND = "dnd"
    UNKNOWN = "unknown"


class Reason(StrEnum):
    """Why a room shows as unknown."""

    NO_STATUS = "no-status"
    STALE = "stale"
    HUB_OFFLINE = "hub-offline"
    BROKER_LOST = "broker-lost"
    UNCONFIRMED = "unconfirmed"
    CLOCK = "clock"
    NOT_ENROLLED = "not-enrolled"  # the broker refuses this display's login (revoked)
    NO_ROOMS = "no-rooms"  # the hub has not assigned a room yet


@dataclass(frozen=True)
class RoomView:
    """One room as the outputs show it (``since`` is None and ``waiting`` 0 when unknown)."""

    room: str
    name: str
    shown: Shown
    since: datetime | None = None
    waiting: int = 0
    reason: Reason | None = None


@dataclass(frozen=True)
class BoardView:
    """Every room of the display, in configured order."""

    rooms: tuple[RoomView, ...]

    def room(self, slug: str) -> RoomView:
        """The view of one room (KeyError if the display does not show it)."""
        for view in self.rooms:
            if view.room == slug:
                return view
        raise KeyError(slug)


@dataclass
class _Entry:
    status: RoomStatus
    confirmed: bool = True


class RoomBoard:
    """Tracks the newest valid status of each shown room, the hub and the broker link."""

    def __init__(self, site: str, rooms: Sequence[str], clock: Clock, label: str = "") -> None:
        self.site = topics.check_slug(site, "site")
        self.rooms = tuple(topics.check_slug(room, "room") for room in rooms)
        self.label = label  # shown in place of a room while none is assigned
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._hub: HubState | None = None
        self._connected = False
        self._refused = False

    def set_rooms(self, rooms: Sequence[str]) -> bool:
        """Show ``rooms`` from now on (the hub's assignment); True when it changed.

        Statuses of rooms still shown are kept; the others are forgotten, so a room that
        comes back waits for a fresh status.
        """
        new = tuple(topics.check_slug(room, "room") for room in rooms)
        if new == self.rooms:
            return False
        self.rooms = new
        self._entries = {room: e for room, e in self._entries.items() if room in new}
        return True

    @property
    def refused(self) -> bool:
        """Whether the broker refuses this display's login (it needs enrolling)."""
        return self._refused

    def set_refused(self, refused: bool) -> None:
        """Record that the broker refuses (or accepts again) this display's login."""
        self._refused = refused

    def subscriptions(self) -> list[str]:
        """The topics to subscribe to: the hub state and each shown room's status."""
        return [topics.hub_state(self.site)] + [
            topics.room_status(self.site, room) for room in self.rooms
        ]

    def status(self, room: str) -> RoomStatus | None:
        """The newest accepted status of ``room`` (whether or not it may be shown)."""
        entry = self._entries.get(room)
        return None if entry is None else entry.status

    def now(self) -> datetime:
        """The board's clock."""
        return self._clock()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected

    def set_connected(self, up: bool) -> None:
        """Record the broker connection going up or down.

        Going down makes every status unconfirmed: after a reconnect a room shows again
        only once the broker (retained message) or the hub (republish) vouches for it.
        """
        if not up:
            self._unconfirm()
            self._hub = None
        self._connected = up

    def feed(self, topic: str, payload: bytes) -> bool:
        """Take one MQTT message; returns False when it was ignored (logged if malformed)."""
        try:
            parsed = topics.parse_topic(topic)
        except TopicError as exc:
            log.warning("ignored message on an unexpected topic: %s", exc)
            return False
        if parsed.site != self.site:
            return False
        try:
            if parsed.kind == "hub" and parsed.leaf == "state":
                return self._feed_hub(payload)
            if parsed.kind == "room" and parsed.leaf == "status" and parsed.key in self.rooms:
                return self._feed_status(str(parsed.key), payload)
        except PayloadError as exc:
            log.warning("ignored malformed payload on %s: %s", topic, exc)
        return False

    def _feed_hub(self, payload: bytes) -> bool:
        state = HubState.parse(payload) if payload else None
        if state is not None and state.state == "offline":
            self._unconfirm()
        self._hub = state
        return True

    def _feed_status(self, room: str, payload: bytes) -> bool:
        if not payload:  # the hub deleted the room and cleared its retained status
            self._entries.pop(room, None)
            return True
        status = RoomStatus.parse(payload)
        if status.room != room:
            raise PayloadError(f"room: {status.room!r} does not match the topic's room")
        entry = self._entries.get(room)
        if entry is None or status.newer_than(entry.status):
            self._entries[room] = _Entry(status)
            return True
        if status.seq == entry.status.seq and not entry.confirmed:
            entry.confirmed = True  # the same state again: confirmed, keep the fresher copy
            return True
        return False  # an older seq or a duplicate

    def _unconfirm(self) -> None:
        for entry in self._entries.values():
            entry.confirmed = False

    def view(self, now: datetime | None = None) -> BoardView:
        """What to show now: per room its state, or UNKNOWN with the reason."""
        at = self._clock() if now is None else now
        if not self.rooms:
            reason = (
                Reason.NOT_ENROLLED
                if self._refused
                else Reason.NO_ROOMS
                if self._connected
                else Reason.BROKER_LOST
            )
            return BoardView((RoomView("", self.label, Shown.UNKNOWN, reason=reason),))
        return BoardView(tuple(self._room_view(room, at) for room in self.rooms))

    def _room_view(self, room: str, now: datetime) -> RoomView:
        entry = self._entries.get(room)
        name = entry.status.name if entry is not None else room
        reason = self._unknown_reason(entry, now)
        if reason is not None or entry is None:
            return RoomView(room, name, Shown.UNKNOWN, reason=reason or Reason.NO_STATUS)
        status = entry.status
        return RoomView(room, name, Shown(status.state.value), status.since, status.waiting)

    def _unknown_reason(self, entry: _Entry | None, now: datetime) -> Reason | None:
        if self._refused:
            return Reason.NOT_ENROLLED
        if not self._connected:
            return Reason.BROKER_LOST
        if self._hub is not None and self._hub.state == "offline":
            return Reason.HUB_OFFLINE
        if entry is None:
            return Reason.NO_STATUS
        if not entry.confirmed:
            return Reason.UNCONFIRMED
        if entry.status.is_stale(now):
            return Reason.STALE
        if entry.status.updated - now > timedelta(seconds=entry.status.ttl):
            return Reason.CLOCK  # from the future: this clock or the hub's is wrong
        return None
