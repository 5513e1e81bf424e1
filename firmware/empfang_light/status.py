# Room status bookkeeping: defensive parsing, seq ordering, staleness, priority.
#
# A room shows UNKNOWN when
#   - no valid status has arrived on the current broker connection,
#   - its status is stale: more than `ttl` seconds of local monotonic time
#     (time.ticks_ms) passed since it arrived, or, once NTP set the clock, its
#     `updated` time is more than `ttl` seconds old,
#   - hub/state says "offline",
#   - the broker connection is lost (the app calls disconnected()).
# The hub republishes every room at least every ttl/3 s, so a live hub refreshes each
# status well before it goes stale. Staleness is latched: once stale, a status stays
# stale until a new one arrives, so tick counters that wrap (ticks_ms wraps after a few
# days) can never make an old status look fresh again.

import json

from empfang_light.clock import parse_utc

STATES = ("free", "busy", "waiting", "closed", "dnd")
UNKNOWN = "unknown"

# Most important first. One light for several rooms shows the first of these that any
# of its rooms is in:
#   unknown  never let a reassuring colour hide a room whose state nobody knows;
#   dnd      the strongest "do not enter";
#   busy     someone is in a conversation: do not enter;
#   waiting  a citizen waits and nobody serves: staff passing by should see it;
#   free     a room is open and free;
#   closed   dark only when every room is closed.
PRIORITY = (UNKNOWN, "dnd", "busy", "waiting", "free", "closed")

MAX_PAYLOAD = 4096
MAX_TTL = 86400
MAX_SEQ = 2**53 - 1


def most_important(states):
    best = len(PRIORITY)
    for state in states:
        rank = PRIORITY.index(state) if state in PRIORITY else 0
        if rank < best:
            best = rank
    return PRIORITY[best] if best < len(PRIORITY) else UNKNOWN


def _decode(payload):
    if isinstance(payload, str):
        text = payload
    else:
        if len(payload) > MAX_PAYLOAD:
            raise ValueError("payload too large")
        text = bytes(payload).decode("utf-8")
    if len(text) > MAX_PAYLOAD:
        raise ValueError("payload too large")
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("payload is not a JSON object")
    return obj


class Status:

    def __init__(self, state, seq, ttl, updated):
        self.state = state
        self.seq = seq
        self.ttl = ttl
        self.updated = updated  # seconds since 1970 (UTC)


def parse_status(payload, room, fallback_ttl):
    """A room status payload -> Status; raises ValueError (or any error) when malformed.

    Tolerates unknown keys; takes `fallback_ttl` when a status carries no ttl at all.
    """
    obj = _decode(payload)
    version = obj.get("v")
    if type(version) is not int or version != 1:
        raise ValueError("v: unsupported")
    if obj.get("room") != room:
        raise ValueError("room: does not match the topic")
    state = obj.get("state")
    if state not in STATES:
        raise ValueError("state: unknown")
    seq = obj.get("seq")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise ValueError("seq: must be a non-negative integer")
    ttl = obj.get("ttl", fallback_ttl)
    if type(ttl) is not int or not 1 <= ttl <= MAX_TTL:
        raise ValueError("ttl: must be an integer from 1 to 86400")
    updated = parse_utc(obj.get("updated"))
    return Status(state, seq, ttl, updated)


def parse_hub_state(payload):
    """hub/state payload -> "online" or "offline"; raises ValueError when malformed."""
    state = _decode(payload).get("state")
    if state not in ("online", "offline"):
        raise ValueError("state: must be online or offline")
    return state


class Room:

    def __init__(self, slug):
        self.slug = slug
        self.status = None
        self.received = 0
        self.stale = False


class Board:
    """What the light knows about its rooms, and what each room should show."""

    def __init__(self, rooms, fallback_ttl, clock):
        self.rooms = [Room(slug) for slug in rooms]
        self._by_slug = {}
        for room in self.rooms:
            self._by_slug[room.slug] = room
        self.fallback_ttl = fallback_ttl
        self.clock = clock  # anything with ticks_diff(); the time module on the device
        self.hub = None  # None (not heard yet), "online" or "offline"
        self.connected = False
        self.malformed = 0
        self.ignored_old = 0

    def connection(self, up):
        """The broker connection came up or went down; either way forget what we knew.

        Retained messages bring every status back right after the subscription, and
        anything remembered from before the gap may have changed meanwhile.
        """
        self.connected = up
        self.hub = None
        for room in self.rooms:
            room.status = None
            room.stale = False

    def on_status(self, slug, payload, now_ticks):
        """Returns "accepted", "cleared", "old" or "malformed"."""
        room = self._by_slug.get(slug)
        if room is None:
            return "malformed"
        if not payload:
            # The hub deleted the room and cleared its retained status.
            room.status = None
            room.stale = False
            return "cleared"
        try:
            status = parse_status(payload, slug, self.fallback_ttl)
        except Exception:  # any error in a payload only means: ignore it
            self.malformed += 1
            return "malformed"
        current = room.status
        if current is not None and not room.stale:
            if status.seq < current.seq or (
                status.seq == current.seq and status.updated < current.updated
            ):
                # seq only grows: an older one is a late duplicate. (A stale status is
                # replaced by anything valid, so a hub whose seq restarted recovers.)
                self.ignored_old += 1
                return "old"
        room.status = status
        room.received = now_ticks
        room.stale = False
        return "accepted"

    def on_hub_state(self, payload):
        try:
            self.hub = parse_hub_state(payload) if payload else None
        except Exception:  # keep the last good hub state
            self.malformed += 1
            return "malformed"
        return "accepted"

    def refresh(self, now_ticks, wall_seconds=None):
        """Latch staleness; call often (every loop)."""
        for room in self.rooms:
            status = room.status
            if status is None or room.stale:
                continue
            if self.clock.ticks_diff(now_ticks, room.received) > status.ttl * 1000:
                room.stale = True
            elif wall_seconds is not None and wall_seconds - status.updated > status.ttl:
                room.stale = True

    def state_of(self, room):
        if not self.connected or self.hub == "offline":
            return UNKNOWN
        if room.status is None or room.stale:
            return UNKNOWN
        return room.status.state

    def states(self):
        return [self.state_of(room) for room in self.rooms]
