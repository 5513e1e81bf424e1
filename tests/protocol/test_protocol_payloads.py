"""Payload round-trips, validation, staleness and ordering of the wire contract."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from protocol import (
    MAX_PAYLOAD_BYTES,
    DeviceCommand,
    DeviceConfig,
    DeviceState,
    HubState,
    Knock,
    PayloadError,
    RoomState,
    RoomStatus,
    format_time,
    home_assistant_discovery,
    hub_state,
    parse_time,
    room_status,
)

EXAMPLE = (
    '{"v":1,"room":"sozialamt-2","name":"Sozialamt – Beratung 2","state":"busy",'
    '"occupants":2,"waiting":0,"since":"2026-11-25T14:03:00Z","seq":418,'
    '"updated":"2026-11-25T14:05:00Z","ttl":90}'
)
T0 = datetime(2026, 11, 25, 14, 3, tzinfo=UTC)
T1 = datetime(2026, 11, 25, 14, 5, tzinfo=UTC)


def example() -> RoomStatus:
    return RoomStatus(
        room="sozialamt-2",
        name="Sozialamt – Beratung 2",
        state=RoomState.BUSY,
        occupants=2,
        waiting=0,
        since=T0,
        seq=418,
        updated=T1,
        ttl=90,
    )


def example_dict() -> dict[str, object]:
    return json.loads(EXAMPLE)


def encode(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


# --- time -----------------------------------------------------------------------------


def test_format_time() -> None:
    assert format_time(T0) == "2026-11-25T14:03:00Z"
    assert format_time(T0.replace(microsecond=999_999)) == "2026-11-25T14:03:00Z"
    cet = timezone(timedelta(hours=1))
    assert format_time(datetime(2026, 11, 25, 15, 3, tzinfo=cet)) == "2026-11-25T14:03:00Z"
    assert format_time(datetime(5, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0005-01-02T03:04:05Z"


def test_format_time_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 11, 25, 14, 3))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T14:03:00Z", T0),
        ("2026-11-25T14:03:00+00:00", T0),
        ("2026-11-25T14:03:00.5Z", T0.replace(microsecond=500_000)),
        ("2026-11-25T14:03:00.123456789+00:00", T0.replace(microsecond=123_456)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text, "since")
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        None,
        1764079380,
        "",
        "2026-11-25",
        "2026-11-25T14:03:00",
        "2026-11-25T14:03Z",
        "2026-11-25 14:03:00Z",
        "2026-11-25T14:03:00+01:00",
        "2026-11-25T14:03:00z",
        "2026-11-25T14:03:00.Z",
        "2026-11-25T14:03:00Z\n",
        "2026-13-25T14:03:00Z",
        "2025-02-29T00:00:00Z",
        "2026-11-25T24:00:00Z",
        "2026-11-25T14:03:60Z",
        "0000-01-01T00:00:00Z",
        "２０２６-11-25T14:03:00Z",
    ],
)
def test_parse_time_rejects(value: object) -> None:
    with pytest.raises(PayloadError) as info:
        parse_time(value, "updated")
    assert info.value.reason.startswith("updated:")


# --- room status ------------------------------------------------------------------------


def test_room_status_matches_design_example() -> None:
    assert example().to_json() == EXAMPLE.encode()
    assert list(example().to_dict()) == [
        "v",
        "room",
        "name",
        "state",
        "occupants",
        "waiting",
        "since",
        "seq",
        "updated",
        "ttl",
    ]


@pytest.mark.parametrize("data", [EXAMPLE, EXAMPLE.encode(), bytearray(EXAMPLE.encode())])
def test_room_status_parse(data: bytes | str) -> None:
    status = RoomStatus.parse(data)
    assert status == example()
    assert status.state is RoomState.BUSY
    assert RoomStatus.parse(status.to_json()) == status


def test_room_status_tolerates_unknown_keys_and_offsets() -> None:
    obj = example_dict() | {"future": {"x": [1]}, "since": "2026-11-25T14:03:00+00:00"}
    assert RoomStatus.parse(encode(obj)) == example()


def test_room_status_constructor_normalises() -> None:
    cet = timezone(timedelta(hours=1))
    status = replace(example(), state="dnd", since=datetime(2026, 11, 25, 15, 3, tzinfo=cet))
    assert status.state is RoomState.DND
    assert status.since == T0
    assert status.since.tzinfo is UTC


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"room": "Sozialamt"}, "room"),
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"state": "open"}, "state"),
        ({"occupants": -1}, "occupants"),
        ({"occupants": True}, "occupants"),
        ({"waiting": 1.0}, "waiting"),
        ({"since": datetime(2026, 11, 25, 14, 3)}, "since"),
        ({"since": "2026-11-25T14:03:00Z"}, "since"),
        ({"seq": -5}, "seq"),
        ({"seq": 2**53}, "seq"),
        ({"updated": None}, "updated"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": 86401}, "ttl"),
    ],
)
def test_room_status_constructor_rejects(changes: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        replace(example(), **changes)
    assert info.value.reason.startswith(f"{field}:")


BAD_ROOM_STATUS = [
    ({"v": None}, "v"),
    ({"v": 2}, "v"),
    ({"v": "1"}, "v"),
    ({"v": True}, "v"),
    ({"v": 1.5}, "v"),
    ({"room": "Sozialamt 2"}, "room"),
    ({"room": 2}, "room"),
    ({"room": "-x"}, "room"),
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "ä" * 201}, "name"),
    ({"name": "tab\there"}, "name"),
    ({"name": ["x"]}, "name"),
    ({"state": "BUSY"}, "state"),
    ({"state": "open"}, "state"),
    ({"state": 1}, "state"),
    ({"state": None}, "state"),
    ({"occupants": -1}, "occupants"),
    ({"occupants": True}, "occupants"),
    ({"occupants": 2.0}, "occupants"),
    ({"occupants": "2"}, "occupants"),
    ({"waiting": False}, "waiting"),
    ({"waiting": -3}, "waiting"),
    ({"waiting": 10**20}, "waiting"),
    ({"since": "yesterday"}, "since"),
    ({"since": 1764079380}, "since"),
    ({"since": "2026-11-25T14:03:00+01:00"}, "since"),
    ({"seq": -1}, "seq"),
    ({"seq": 1.0}, "seq"),
    ({"seq": None}, "seq"),
    ({"updated": "2026-11-25T14:05:00"}, "updated"),
    ({"updated": "2026-02-30T14:05:00Z"}, "updated"),
    ({"ttl": 0}, "ttl"),
    ({"ttl": -90}, "ttl"),
    ({"ttl": 86401}, "ttl"),
    ({"ttl": 90.0}, "ttl"),
    ({"ttl": True}, "ttl"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_ROOM_STATUS)
def test_room_status_parse_rejects_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        RoomStatus.parse(encode(example_dict() | changes))
    assert info.value.reason.startswith(f"{field}:")


@pytest.mark.parametrize(
    "field",
    ["v", "room", "name", "state", "occupants", "waiting", "since", "seq", "updated", "ttl"],
)
def test_room_status_parse_requires_field(field: str) -> None:
    obj = example_dict()
    del obj[field]
    with pytest.raises(PayloadError) as info:
        RoomStatus.parse(encode(obj))
    assert info.value.reason == f"{field}: required"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b'"busy"',
        b"42",
        b"{",
        b"{'v': 1}",
        b"\xff\xfe{}",
        b'\xef\xbb\xbf{"v":1}',
        '{"v": 1, "x": "\ud800"}',
        b'{"v": NaN}',
        b'{"v": Infinity}',
        b'{"v": -Infinity}',
        b"[" * 5000 + b"]" * 5000,
        b'{"v": ' + b"1" * 5000 + b"}",
        b" " * (MAX_PAYLOAD_BYTES + 1),
        "ä" * (MAX_PAYLOAD_BYTES // 2 + 1),
        None,
        123,
        {"v": 1},
    ],
)
def test_room_status_parse_rejects_payload(data: object) -> None:
    with pytest.raises(PayloadError) as info:
        RoomStatus.parse(data)  # type: ignore[arg-type]
    assert info.value.reason.startswith("payload:")


def test_payload_size_limit_is_inclusive() -> None:
    head, tail = EXAMPLE.encode()[:-1] + b',"pad":"', b'"}'
    filler = MAX_PAYLOAD_BYTES - len(head) - len(tail)
    fits = head + b"x" * filler + tail
    assert len(fits) == MAX_PAYLOAD_BYTES
    assert RoomStatus.parse(fits) == example()
    with pytest.raises(PayloadError, match=r"^payload: larger than 16384 bytes$"):
        RoomStatus.parse(head + b"x" * (filler + 1) + tail)


def test_nan_in_unknown_key_is_still_rejected() -> None:
    with pytest.raises(PayloadError, match=r"^payload:"):
        RoomStatus.parse(EXAMPLE[:-1] + ',"x":NaN}')


def test_is_stale() -> None:
    status = example()
    assert not status.is_stale(T1)
    assert not status.is_stale(T1 + timedelta(seconds=90))
    assert status.is_stale(T1 + timedelta(seconds=90, microseconds=1))
    assert status.is_stale(T1 + timedelta(hours=1))
    assert not status.is_stale(T1 - timedelta(hours=1))
    cet = timezone(timedelta(hours=1))
    assert status.is_stale(datetime(2026, 11, 25, 15, 7, tzinfo=cet))
    with pytest.raises(ValueError, match="naive"):
        status.is_stale(datetime(2026, 11, 25, 14, 5))


def test_newer_than() -> None:
    status = example()
    assert status.newer_than(None)
    assert replace(status, seq=419).newer_than(status)
    assert not status.newer_than(replace(status, seq=419))
    assert not status.newer_than(status)
    refreshed = replace(status, updated=T1 + timedelta(seconds=30))
    assert refreshed.newer_than(status)
    assert not status.newer_than(refreshed)
    # A higher seq wins even with an older timestamp (clock skew between hubs).
    assert replace(status, seq=419, updated=T0).newer_than(refreshed)


# --- hub state and knock ----------------------------------------------------------------


def test_hub_state() -> None:
    online = HubState("online", "0.1.0")
    assert online.to_json() == b'{"state":"online","version":"0.1.0"}'
    assert HubState.parse(online.to_json()) == online
    assert HubState.offline_json() == b'{"state":"offline","version":null}'
    assert HubState.parse(HubState.offline_json()) == HubState("offline")
    assert HubState.parse('{"state":"offline"}') == HubState("offline", None)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "state"),
        ({"state": "up"}, "state"),
        ({"state": True}, "state"),
        ({"state": "online", "version": 1}, "version"),
        ({"state": "online", "version": "v" * 65}, "version"),
    ],
)
def test_hub_state_rejects(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        HubState.parse(encode(payload))
    assert info.value.reason.startswith(f"{field}:")


def test_knock() -> None:
    knock = Knock("door-3", T0)
    assert knock.to_json() == b'{"device":"door-3","at":"2026-11-25T14:03:00Z"}'
    assert Knock.parse(knock.to_json()) == knock


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"at": "2026-11-25T14:03:00Z"}, "device"),
        ({"device": "Door 3", "at": "2026-11-25T14:03:00Z"}, "device"),
        ({"device": "door-3"}, "at"),
        ({"device": "door-3", "at": 0}, "at"),
    ],
)
def test_knock_rejects(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        Knock.parse(encode(payload))
    assert info.value.reason.startswith(f"{field}:")


# --- devices --------------------------------------------------------------------------


def test_device_state_round_trip() -> None:
    state = DeviceState(
        "online", "kiosk", "0.1.0", {"cpu_temp": 51.5, "uptime": 3600, "camera": "imx708"}
    )
    assert json.loads(state.to_json()) == {
        "state": "online",
        "kind": "kiosk",
        "version": "0.1.0",
        "telemetry": {"cpu_temp": 51.5, "uptime": 3600, "camera": "imx708"},
    }
    assert DeviceState.parse(state.to_json()) == state


def test_device_state_telemetry_is_frozen_copy() -> None:
    source: dict[str, object] = {"a": 1}
    state = DeviceState("online", "light", telemetry=source)
    source["a"] = 2
    assert state.telemetry["a"] == 1
    with pytest.raises(TypeError):
        state.telemetry["a"] = 3  # type: ignore[index]
    assert hash(state) == hash(DeviceState("online", "light", telemetry={"a": 5}))


def test_device_state_offline() -> None:
    assert DeviceState.parse(DeviceState.offline_json()) == DeviceState("offline")
    assert DeviceState.parse(b'{"state":"offline"}') == DeviceState("offline")
    assert DeviceState.offline_json("display") == (
        b'{"state":"offline","kind":"display","version":null,"telemetry":{}}'
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "state"),
        ({"state": "sleeping"}, "state"),
        ({"state": "online"}, "kind"),
        ({"state": "online", "kind": "toaster"}, "kind"),
        ({"state": "online", "kind": "kiosk", "version": 7}, "version"),
        ({"state": "online", "kind": "kiosk", "telemetry": []}, "telemetry"),
        ({"state": "online", "kind": "kiosk", "telemetry": "x"}, "telemetry"),
        ({"state": "online", "kind": "kiosk", "telemetry": {"a": {"b": 1}}}, "telemetry.a"),
        ({"state": "online", "kind": "kiosk", "telemetry": {"a": [1]}}, "telemetry.a"),
        ({"state": "online", "kind": "kiosk", "telemetry": {"s": "x" * 257}}, "telemetry.s"),
        ({"state": "online", "kind": "kiosk", "telemetry": {"": 1}}, "telemetry"),
        (
            {"state": "online", "kind": "kiosk", "telemetry": {f"k{i}": i for i in range(51)}},
            "telemetry",
        ),
    ],
)
def test_device_state_rejects(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        DeviceState.parse(encode(payload))
    assert info.value.reason.startswith(f"{field}:")


def test_device_state_rejects_non_finite_telemetry() -> None:
    with pytest.raises(PayloadError, match=r"^telemetry\.t: must be a finite number"):
        DeviceState.parse(b'{"state":"online","kind":"kiosk","telemetry":{"t":1e400}}')
    with pytest.raises(PayloadError, match=r"^telemetry\.t: must be a finite number"):
        DeviceState("online", "kiosk", telemetry={"t": float("nan")})


def test_device_state_rejects_oversized_telemetry() -> None:
    telemetry = {f"key-{i}": "ü" * 256 for i in range(50)}
    with pytest.raises(PayloadError, match=r"^telemetry: too large"):
        DeviceState("online", "kiosk", telemetry=telemetry)


def test_device_command() -> None:
    cmd = DeviceCommand("identify", {"seconds": 10})
    assert cmd.to_json() == b'{"cmd":"identify","args":{"seconds":10}}'
    assert DeviceCommand.parse(cmd.to_json()) == cmd
    assert DeviceCommand.parse(b'{"cmd":"reload"}') == DeviceCommand("reload")
    assert DeviceCommand("reset").args == {}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "cmd"),
        ({"cmd": "reboot"}, "cmd"),
        ({"cmd": ["reload"]}, "cmd"),
        ({"cmd": "reload", "args": [1]}, "args"),
        ({"cmd": "reload", "args": {"x": {"y": 1}}}, "args.x"),
    ],
)
def test_device_command_rejects(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        DeviceCommand.parse(encode(payload))
    assert info.value.reason.startswith(f"{field}:")


def test_device_config() -> None:
    config = DeviceConfig(("r1", "r2"), 40, ("22:00", "06:00"), "en")
    assert json.loads(config.to_json()) == {
        "rooms": ["r1", "r2"],
        "brightness": 40,
        "quiet_hours": ["22:00", "06:00"],
        "language": "en",
    }
    assert DeviceConfig.parse(config.to_json()) == config
    assert DeviceConfig.parse(b'{"rooms":[],"theme":"dark"}') == DeviceConfig(())
    assert DeviceConfig(["r1"]).rooms == ("r1",)  # type: ignore[arg-type]
    assert DeviceConfig(("r1",)).brightness == 100
    assert DeviceConfig(("r1",)).language == "de"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "rooms"),
        ({"rooms": "r1"}, "rooms"),
        ({"rooms": ["r1", "r1"]}, "rooms"),
        ({"rooms": ["ok", "Not Ok"]}, "rooms[1]"),
        ({"rooms": [f"r{i}" for i in range(101)]}, "rooms"),
        ({"rooms": [], "brightness": 101}, "brightness"),
        ({"rooms": [], "brightness": -1}, "brightness"),
        ({"rooms": [], "brightness": 50.5}, "brightness"),
        ({"rooms": [], "brightness": None}, "brightness"),
        ({"rooms": [], "quiet_hours": "22:00-06:00"}, "quiet_hours"),
        ({"rooms": [], "quiet_hours": ["22:00"]}, "quiet_hours"),
        ({"rooms": [], "quiet_hours": ["24:00", "06:00"]}, "quiet_hours"),
        ({"rooms": [], "quiet_hours": ["22:00", "6:00"]}, "quiet_hours"),
        ({"rooms": [], "quiet_hours": ["22:00", "22:00"]}, "quiet_hours"),
        ({"rooms": [], "language": "fr"}, "language"),
        ({"rooms": [], "language": None}, "language"),
    ],
)
def test_device_config_rejects(payload: dict[str, object], field: str) -> None:
    with pytest.raises(PayloadError) as info:
        DeviceConfig.parse(encode(payload))
    assert info.value.reason.startswith(f"{field}:")


# --- Home Assistant ---------------------------------------------------------------------


def test_home_assistant_discovery() -> None:
    config = home_assistant_discovery("default", example(), version="0.1.0")
    assert config["device_class"] == "occupancy"
    assert config["state_topic"] == room_status("default", "sozialamt-2")
    assert config["availability_topic"] == hub_state("default")
    assert config["availability_template"] == "{{ value_json.state }}"
    assert config["unique_id"] == "empfang_default_sozialamt-2"
    assert config["name"] == "Sozialamt – Beratung 2"
    assert config["expire_after"] == 90
    assert config["device"] == {
        "identifiers": ["empfang_default"],
        "name": "empfang default",
        "manufacturer": "empfang",
        "model": "hub",
        "sw_version": "0.1.0",
    }
    template = config["value_template"]
    assert isinstance(template, str)
    assert "'busy'" in template and "'dnd'" in template and "value_json.state" in template
    json.dumps(config)  # serialisable as it stands


def test_hub_event_round_trip_and_rejects_bad_kind() -> None:
    from protocol import HubEvent, hub_events, parse_topic

    event = HubEvent(kind="queue", ref="t-3f9a")
    assert HubEvent.parse(event.to_json()) == event
    assert HubEvent.parse(b'{"v":1,"kind":"ticket","ref":null}').ref is None
    with pytest.raises(PayloadError, match=r"^kind"):
        HubEvent.parse(b'{"v":1,"kind":"gossip"}')
    with pytest.raises(PayloadError, match=r"^ref"):
        HubEvent.parse(b'{"v":1,"kind":"queue","ref":"Erika Mustermann"}')
    topic = parse_topic(hub_events("default"))
    assert (topic.kind, topic.leaf) == ("hub", "events")
