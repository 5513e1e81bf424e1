"""Topic building and parsing of the wire contract."""

from __future__ import annotations

import pytest

from protocol import (
    PREFIX,
    SLUG_PATTERN,
    Topic,
    TopicError,
    check_slug,
    device_cmd,
    device_config,
    device_state,
    device_state_filter,
    home_assistant_discovery_topic,
    hub_state,
    is_slug,
    parse_topic,
    room_knock,
    room_knock_filter,
    room_status,
    room_status_filter,
    signal,
    signal_filter,
    site_prefix,
)


@pytest.mark.parametrize("value", ["a", "0", "default", "sozialamt-2", "a-b-c", "x" * 64, "9-z"])
def test_good_slugs(value: str) -> None:
    assert is_slug(value)
    assert check_slug(value, "room") == value


@pytest.mark.parametrize(
    "value",
    ["", "-a", "a-", "A", "Sozialamt", "a_b", "a b", "a/b", "+", "#", "ä", "x" * 65, "a\n"],
)
def test_bad_slugs(value: str) -> None:
    assert not is_slug(value)
    with pytest.raises(TopicError) as info:
        check_slug(value, "room")
    assert info.value.reason.startswith("room:")


@pytest.mark.parametrize("value", [None, 1, b"room", ["room"]])
def test_check_slug_rejects_non_strings(value: object) -> None:
    assert not is_slug(value)  # type: ignore[arg-type]
    with pytest.raises(TopicError, match=r"^device:"):
        check_slug(value, "device")


def test_slug_pattern_match_rejects_trailing_newline() -> None:
    assert SLUG_PATTERN.match("room\n") is None
    assert SLUG_PATTERN.match("room") is not None


def test_builders() -> None:
    assert PREFIX == "empfang/v1"
    assert site_prefix("default") == "empfang/v1/default"
    assert hub_state("default") == "empfang/v1/default/hub/state"
    assert room_status("default", "sozialamt-2") == "empfang/v1/default/rooms/sozialamt-2/status"
    assert room_status_filter("default") == "empfang/v1/default/rooms/+/status"
    assert room_knock("lk-x", "r1") == "empfang/v1/lk-x/rooms/r1/knock"
    assert room_knock_filter("lk-x") == "empfang/v1/lk-x/rooms/+/knock"
    assert device_state("default", "pi-7") == "empfang/v1/default/devices/pi-7/state"
    assert device_state_filter("default") == "empfang/v1/default/devices/+/state"
    assert device_config("default", "pi-7") == "empfang/v1/default/devices/pi-7/config"
    assert device_cmd("default", "pi-7") == "empfang/v1/default/devices/pi-7/cmd"
    assert signal("default", "s1", "p2") == "empfang/v1/default/signal/s1/p2"
    assert signal_filter("default") == "empfang/v1/default/signal/+/+"
    assert (
        home_assistant_discovery_topic("default", "sozialamt-2")
        == "homeassistant/binary_sensor/empfang_default/sozialamt-2/config"
    )
    assert (
        home_assistant_discovery_topic("default", "r1", prefix="gebaeude")
        == "gebaeude/binary_sensor/empfang_default/r1/config"
    )


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: site_prefix("Bad"), "site"),
        (lambda: hub_state("a/b"), "site"),
        (lambda: room_status("default", "+"), "room"),
        (lambda: room_status_filter("#"), "site"),
        (lambda: room_knock("default", ""), "room"),
        (lambda: room_knock_filter(""), "site"),
        (lambda: device_state("default", "Pi"), "device"),
        (lambda: device_state_filter("x y"), "site"),
        (lambda: device_config("default", "-pi"), "device"),
        (lambda: device_cmd("default", "pi/1"), "device"),
        (lambda: signal("default", "S", "p"), "session"),
        (lambda: signal("default", "s", "p+"), "participant"),
        (lambda: signal_filter("_"), "site"),
        (lambda: home_assistant_discovery_topic("default", "r_1"), "room"),
        (lambda: home_assistant_discovery_topic("De", "r1"), "site"),
        (lambda: home_assistant_discovery_topic("default", "r1", "a/b"), "prefix"),
        (lambda: home_assistant_discovery_topic("default", "r1", "#"), "prefix"),
        (lambda: home_assistant_discovery_topic("default", "r1", ""), "prefix"),
    ],
)
def test_builders_validate_slugs(build: object, field: str) -> None:
    with pytest.raises(TopicError) as info:
        build()  # type: ignore[operator]
    assert info.value.reason.startswith(f"{field}:")


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("empfang/v1/default/hub/state", Topic("default", "hub", None, "state", None)),
        (
            "empfang/v1/default/rooms/sozialamt-2/status",
            Topic("default", "room", "sozialamt-2", "status", None),
        ),
        ("empfang/v1/lk/rooms/r1/knock", Topic("lk", "room", "r1", "knock", None)),
        ("empfang/v1/lk/devices/pi-7/state", Topic("lk", "device", "pi-7", "state", None)),
        ("empfang/v1/lk/devices/pi-7/config", Topic("lk", "device", "pi-7", "config", None)),
        ("empfang/v1/lk/devices/pi-7/cmd", Topic("lk", "device", "pi-7", "cmd", None)),
        ("empfang/v1/lk/signal/s-1/p-2", Topic("lk", "signal", "s-1", "signal", "p-2")),
    ],
)
def test_parse_good_topics(topic: str, expected: Topic) -> None:
    assert parse_topic(topic) == expected


def test_parse_topic_round_trips_builders() -> None:
    assert parse_topic(room_status("a", "b")).key == "b"
    assert parse_topic(device_cmd("a", "d")).leaf == "cmd"
    parsed = parse_topic(signal("a", "sess", "part"))
    assert (parsed.site, parsed.key, parsed.extra) == ("a", "sess", "part")


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "empfang/v1",
        "empfang/v1/",
        "empfang/v1/default",
        "empfang/v2/default/hub/state",
        "Empfang/v1/default/hub/state",
        "/empfang/v1/default/hub/state",
        "other/v1/default/hub/state",
        "empfang/v1/Default/hub/state",
        "empfang/v1/default/hub/state/",
        "empfang/v1/default/hub/status",
        "empfang/v1/default/hub",
        "empfang/v1/default/rooms/r1",
        "empfang/v1/default/rooms/r1/state",
        "empfang/v1/default/rooms/R1/status",
        "empfang/v1/default/rooms//status",
        "empfang/v1/default/rooms/+/status",
        "empfang/v1/default/rooms/r1/status/extra",
        "empfang/v1/default/devices/pi/status",
        "empfang/v1/default/devices/pi_1/state",
        "empfang/v1/default/devices/#",
        "empfang/v1/default/signal/s1",
        "empfang/v1/default/signal/s1/p1/x",
        "empfang/v1/default/signal/+/+",
        "empfang/v1/default/signal/s1/P1",
        "empfang/v1/default/unknown/x/y",
        "homeassistant/binary_sensor/empfang_default_r1/config",
    ],
)
def test_parse_bad_topics(topic: str) -> None:
    with pytest.raises(TopicError) as info:
        parse_topic(topic)
    assert info.value.reason.split(":")[0] in {"topic", "site", "room", "device", "participant"}


def test_parse_topic_names_bad_slug_field() -> None:
    with pytest.raises(TopicError, match=r"^participant:"):
        parse_topic("empfang/v1/default/signal/s1/P1")
    with pytest.raises(TopicError, match=r"^device:"):
        parse_topic("empfang/v1/default/devices/pi_1/state")


def test_parse_topic_rejects_non_string() -> None:
    with pytest.raises(TopicError, match=r"^topic:"):
        parse_topic(b"empfang/v1/default/hub/state")  # type: ignore[arg-type]
