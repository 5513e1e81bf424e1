"""Property tests: parsers are total (a value or PayloadError/TopicError, nothing else)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from protocol import (
    SLUG_PATTERN,
    DeviceCommand,
    DeviceConfig,
    DeviceState,
    HubState,
    Knock,
    PayloadError,
    RoomState,
    RoomStatus,
    TopicError,
    device_config,
    parse_topic,
    room_status,
    signal,
)

ROOM_FIELDS = ("v", "room", "name", "state", "occupants", "waiting", "since", "seq", "updated")
ROOM_FIELDS += ("ttl", "payload")

slugs = st.from_regex(SLUG_PATTERN)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
time_texts = times.map(lambda d: d.isoformat().replace("+00:00", "Z")) | st.sampled_from(
    ["2026-11-25T14:03:00Z", "2026-02-30T00:00:00Z", "2026-11-25T14:03:00+01:00"]
)
counts = st.integers(min_value=-2, max_value=2**54)


def field(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly valid values, sometimes any JSON value."""
    return st.one_of(valid, valid, valid, valid, json_values)


near_room_status = st.fixed_dictionaries(
    {
        "v": field(st.just(1)),
        "room": field(slugs | st.text(max_size=70)),
        "name": field(st.text(max_size=210)),
        "state": field(st.sampled_from([*RoomState, "open", "BUSY"])),
        "occupants": field(counts),
        "waiting": field(counts),
        "since": field(time_texts),
        "seq": field(counts),
        "updated": field(time_texts),
        "ttl": field(st.integers(min_value=-1, max_value=90000)),
    },
    optional={"extra": json_values},
)


def encodings(objects: st.SearchStrategy[object]) -> st.SearchStrategy[bytes | str]:
    """Serialise as str, or as bytes (lone surrogates become invalid UTF-8)."""
    texts = objects.map(lambda o: json.dumps(o, ensure_ascii=False))
    return texts | texts.map(lambda t: t.encode("utf-8", "surrogatepass"))


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300),
    encodings(json_values),
    encodings(near_room_status),
)


@settings(max_examples=600, deadline=None)
@given(payloads)
def test_room_status_parse_is_total(data: bytes | str) -> None:
    try:
        status = RoomStatus.parse(data)
    except PayloadError as error:
        event("rejected")
        assert error.reason.split(":")[0] in ROOM_FIELDS
    else:
        event("parsed")
        assert isinstance(status, RoomStatus)
        again = RoomStatus.parse(status.to_json())
        assert again.to_json() == status.to_json()


@settings(deadline=None)
@given(st.sampled_from([HubState, Knock, DeviceState, DeviceCommand, DeviceConfig]), payloads)
def test_other_parsers_are_total(kind: type, data: bytes | str) -> None:
    try:
        parsed = kind.parse(data)
    except PayloadError as error:
        assert error.reason
    else:
        assert isinstance(parsed, kind)
        assert kind.parse(parsed.to_json()) == parsed


@given(
    room=slugs,
    name=st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=200),
    state=st.sampled_from(RoomState),
    occupants=st.integers(0, 2**53 - 1),
    waiting=st.integers(0, 2**53 - 1),
    since=times.map(lambda d: d.replace(microsecond=0)),
    seq=st.integers(0, 2**53 - 1),
    updated=times.map(lambda d: d.replace(microsecond=0)),
    ttl=st.integers(1, 86400),
)
def test_room_status_round_trip(
    room: str,
    name: str,
    state: RoomState,
    occupants: int,
    waiting: int,
    since: datetime,
    seq: int,
    updated: datetime,
    ttl: int,
) -> None:
    status = RoomStatus(room, name, state, occupants, waiting, since, seq, updated, ttl)
    assert RoomStatus.parse(status.to_json()) == status
    assert RoomStatus.parse(status.to_json().decode()) == status


@given(st.text(max_size=120))
def test_parse_topic_is_total(topic: str) -> None:
    try:
        parsed = parse_topic(topic)
    except TopicError as error:
        assert error.reason
    else:
        assert topic.startswith(f"empfang/v1/{parsed.site}/")


@given(site=slugs, key=slugs, other=slugs)
def test_built_topics_parse_back(site: str, key: str, other: str) -> None:
    assert parse_topic(room_status(site, key)).key == key
    assert parse_topic(device_config(site, key)).leaf == "config"
    parsed = parse_topic(signal(site, key, other))
    assert (parsed.site, parsed.kind, parsed.key, parsed.extra) == (site, "signal", key, other)
