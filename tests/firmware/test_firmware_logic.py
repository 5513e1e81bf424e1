"""The firmware's application logic under CPython: config, backoff, parsing, time, LEDs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.payloads import RoomState, RoomStatus, format_time, parse_time
from tests.firmware.helpers import FIRMWARE, FirmwareEnv, light_config

FIXTURE_OK = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def status(room: str = "raum-1", **fields: Any) -> RoomStatus:
    values: dict[str, Any] = {
        "room": room,
        "name": "Raum – Beratung",
        "state": RoomState.FREE,
        "occupants": 0,
        "waiting": 0,
        "since": T0,
        "seq": 5,
        "updated": T0,
        "ttl": 90,
    }
    values.update(fields)
    return RoomStatus(**values)


# --- config ------------------------------------------------------------------------


def test_example_config_is_valid(fw: FirmwareEnv) -> None:
    config = fw.module("config")
    cfg = config.load_config(str(FIRMWARE / "config.example.json"))
    assert cfg.led_type == "ws2812"
    assert cfg.tls is True and cfg.broker_port == 8883
    assert cfg.quiet_hours == (22 * 60, 6 * 60)
    assert cfg.knock_room == cfg.rooms[0]


def test_config_defaults(fw: FirmwareEnv) -> None:
    data = light_config(1883, ["raum-1"])
    del data["timing"]
    data["broker"] = {"host": "mqtt.example"}
    cfg = fw.config(data)
    assert (cfg.broker_port, cfg.tls, cfg.keepalive_s) == (1883, False, 30)
    assert cfg.client_id == "light-test"
    assert cfg.watchdog_s == 30 and cfg.socket_timeout_s == 5
    assert cfg.quiet_hours is None and cfg.knock_pin is None
    assert cfg.ttl_fallback_s == 90


def _break(path: str, value: Any) -> dict[str, Any]:
    data = light_config(1883, ["raum-1", "raum-2"])
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is KeyError:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("device_id", "Light 1", "device_id: must be a slug"),
        ("device_id", KeyError, "device_id: must be a slug"),
        ("rooms", [], "rooms: must be a list of 1 to 16"),
        ("rooms", ["a", "a"], "rooms: lists a room twice"),
        ("rooms", ["ok", "Not-OK"], "rooms[1]: must be a slug"),
        ("wifi.ssid", "", "wifi.ssid: must be a string of 1 to 32"),
        ("wifi", KeyError, "wifi: required"),
        ("broker.host", KeyError, "broker.host: required"),
        ("broker.port", 70000, "broker.port: must be an integer from 1 to 65535"),
        ("broker.port", "1883", "broker.port: must be an integer"),
        ("broker.tls", "yes", "broker.tls: must be true or false"),
        ("broker.password", "x", "broker.password: given without broker.username"),
        ("broker.ca_file", "ca.pem", "broker.ca_file: only makes sense with broker.tls"),
        ("led.type", "lamp", 'led.type: must be "rgb" or "ws2812"'),
        ("led.pixels", 1, "led.pixels: fewer pixels than rooms"),
        ("led.brightness", 101, "led.brightness: must be an integer from 0 to 100"),
        ("led.colour", "x", "led.colour: unknown key"),
        ("quiet_hours", ["22:00"], "quiet_hours: must be null or"),
        ("quiet_hours", ["25:00", "06:00"], 'quiet_hours[0]: must be a time like "22:00"'),
        ("quiet_hours", ["06:00", "06:00"], "quiet_hours: start and end must differ"),
        ("dst", "us", 'dst: must be "eu"'),
        ("knock", {"pin": 5}, "knock.pin: is the LED pin"),
        ("knock", {"pin": 9, "room": "elsewhere"}, "knock.room: must be one of rooms"),
        ("timing.watchdog_s", 3, "timing.watchdog_s: must be at least twice"),
        ("timing.backoff_cap_ms", 50, "timing.backoff_cap_ms: must not be smaller"),
        ("timing.ping_s", 10, "timing.ping_s: must be shorter than broker.keepalive_s"),
        ("qiuet_hours", None, "qiuet_hours: unknown key"),
    ],
)
def test_config_errors_name_the_key(fw: FirmwareEnv, path: str, value: Any, message: str) -> None:
    config = fw.module("config")
    data = _break(path, value)
    if path == "timing.watchdog_s":
        data["timing"]["socket_timeout_s"] = 2
    with pytest.raises(config.ConfigError) as caught:
        config.parse_config(data)
    assert str(caught.value).startswith(message), str(caught.value)


def test_rgb_config_and_bad_pins(fw: FirmwareEnv) -> None:
    config = fw.module("config")
    rgb = {"type": "rgb", "pins": [25, 26, 27], "invert": True, "brightness": 40}
    cfg = fw.config(light_config(1883, ["a", "b"], led=rgb))
    assert (cfg.led_pins, cfg.led_invert, cfg.pixels) == ([25, 26, 27], True, 1)
    for pins in ([25, 26], [25, 25, 27], [25, 26, 99], "25,26,27"):
        with pytest.raises(config.ConfigError, match=r"^led\.pins: must be three different"):
            fw.config(light_config(1883, ["a"], led={**rgb, "pins": pins}))


def test_load_config_explains_missing_and_broken_files(fw: FirmwareEnv, tmp_path: Any) -> None:
    config = fw.module("config")
    with pytest.raises(config.ConfigError, match="cannot be read"):
        config.load_config(str(tmp_path / "config.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"device_id": ')
    with pytest.raises(config.ConfigError, match="not valid JSON"):
        config.load_config(str(broken))


# --- backoff -----------------------------------------------------------------------


def test_backoff_doubles_then_caps(fw: FirmwareEnv) -> None:
    backoff = fw.module("backoff").Backoff(1000, 60000, jitter=0.5, rng=lambda: 0.0)
    assert [backoff.next() for _ in range(9)] == [
        1000,
        2000,
        4000,
        8000,
        16000,
        32000,
        60000,
        60000,
        60000,
    ]
    backoff.reset()
    assert backoff.next() == 1000


@FIXTURE_OK
@given(
    base=st.integers(10, 5000),
    factor=st.integers(1, 100),
    jitter=st.floats(0, 0.9),
    draws=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=40),
)
def test_backoff_jitter_stays_within_bounds(
    fw: FirmwareEnv, base: int, factor: int, jitter: float, draws: list[float]
) -> None:
    cap = base * factor
    values = iter(draws)
    backoff = fw.module("backoff").Backoff(base, cap, jitter=jitter, rng=lambda: next(values))
    for attempt in range(len(draws)):
        nominal = min(cap, base * 2**attempt)
        delay = backoff.next()
        assert nominal * (1 - jitter) - 1 <= delay <= nominal <= cap


# --- status payloads ---------------------------------------------------------------


@FIXTURE_OK
@given(
    state=st.sampled_from(list(RoomState)),
    seq=st.integers(0, 2**53 - 1),
    ttl=st.integers(1, 86400),
    updated=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    name=st.text(min_size=1, max_size=50).filter(lambda s: s.isprintable()),
)
def test_every_contract_status_parses(
    fw: FirmwareEnv, state: RoomState, seq: int, ttl: int, updated: datetime, name: str
) -> None:
    wire = status(state=state, seq=seq, ttl=ttl, updated=updated, name=name).to_json()
    parsed = fw.module("status").parse_status(wire, "raum-1", 90)
    assert parsed.state == state.value
    assert (parsed.seq, parsed.ttl) == (seq, ttl)
    assert parsed.updated == int(updated.replace(microsecond=0).timestamp())


def _wire(**changes: Any) -> bytes:
    body = status().to_dict()
    for key, value in changes.items():
        if value is KeyError:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


MALFORMED = [
    b"",
    b"not json",
    b"[1, 2]",
    b'"free"',
    b"\xff\xfe",
    b"{" * 3000,
    _wire(v=2),
    _wire(v=True),
    _wire(v=KeyError),
    _wire(room="raum-2"),
    _wire(state="purple"),
    _wire(state=None),
    _wire(seq="5"),
    _wire(seq=-1),
    _wire(seq=True),
    _wire(seq=1.5),
    _wire(ttl=0),
    _wire(ttl="90"),
    _wire(updated="yesterday"),
    _wire(updated="2026-11-25T14:03:00+01:00"),
    _wire(updated="2026-02-30T14:03:00Z"),
    _wire(updated=KeyError),
    json.dumps({**status().to_dict(), "name": "x" * 5000}).encode(),
]


@pytest.mark.parametrize("payload", MALFORMED[1:])
def test_malformed_status_is_rejected(fw: FirmwareEnv, payload: bytes) -> None:
    module = fw.module("status")
    with pytest.raises(Exception):  # noqa: B017 - any error: the board ignores the payload
        module.parse_status(payload, "raum-1", 90)


def test_missing_ttl_takes_the_fallback(fw: FirmwareEnv) -> None:
    parsed = fw.module("status").parse_status(_wire(ttl=KeyError), "raum-1", 45)
    assert parsed.ttl == 45


def _board(fw: FirmwareEnv, rooms: tuple[str, ...] = ("raum-1",)) -> Any:
    board = fw.module("status").Board(list(rooms), 90, fw.clock)
    board.connection(True)
    return board


def test_board_keeps_last_good_and_ignores_older_seq(fw: FirmwareEnv) -> None:
    board = _board(fw)
    now = fw.clock.ticks_ms()
    assert board.states() == ["unknown"]
    assert board.on_status("raum-1", status(state="busy", seq=7).to_json(), now) == "accepted"
    for payload in MALFORMED[1:]:
        assert board.on_status("raum-1", payload, now) == "malformed"
    assert board.malformed == len(MALFORMED) - 1
    older = status(state="free", seq=6, updated=T0 + timedelta(minutes=5))
    assert board.on_status("raum-1", older.to_json(), now) == "old"
    same_seq_earlier = status(state="free", seq=7, updated=T0 - timedelta(seconds=1))
    assert board.on_status("raum-1", same_seq_earlier.to_json(), now) == "old"
    assert board.states() == ["busy"]
    refresh = status(state="busy", seq=7, updated=T0 + timedelta(seconds=30))
    assert board.on_status("raum-1", refresh.to_json(), now) == "accepted"
    assert board.on_status("raum-1", status(state="dnd", seq=8).to_json(), now) == "accepted"
    assert board.states() == ["dnd"]
    assert board.on_status("raum-1", b"", now) == "cleared"
    assert board.states() == ["unknown"]


def test_staleness_by_local_ticks_across_the_wrap(fw: FirmwareEnv) -> None:
    board = _board(fw)
    clock = fw.clock
    # The clock starts 5 s before ticks_ms wraps to 0; the status outlives the wrap.
    received = clock.ticks_ms()
    board.on_status("raum-1", status(state="busy", ttl=90).to_json(), received)
    clock.advance(89_000)
    assert clock.ticks_ms() < received, "the tick counter should have wrapped"
    board.refresh(clock.ticks_ms())
    assert board.states() == ["busy"]
    clock.advance(2_000)
    board.refresh(clock.ticks_ms())
    assert board.states() == ["unknown"]
    # Latched: even when ticks_diff would wrap around days later, it stays stale ...
    clock.advance(2**29)
    board.refresh(clock.ticks_ms())
    assert board.states() == ["unknown"]
    # ... until a status arrives again; a stale one is replaced even by a lower seq
    # (the hub's database may have been reset).
    board.on_status("raum-1", status(state="free", seq=1).to_json(), clock.ticks_ms())
    assert board.states() == ["free"]


def test_staleness_by_wall_clock_once_ntp_set_it(fw: FirmwareEnv) -> None:
    board = _board(fw)
    now = fw.clock.ticks_ms()
    board.on_status("raum-1", status(state="busy", ttl=90).to_json(), now)
    board.refresh(now, int((T0 + timedelta(seconds=90)).timestamp()))
    assert board.states() == ["busy"]
    board.refresh(now, int((T0 + timedelta(seconds=91)).timestamp()))
    assert board.states() == ["unknown"]


def test_hub_offline_and_lost_connection_mean_unknown(fw: FirmwareEnv) -> None:
    board = _board(fw, ("a", "b"))
    now = fw.clock.ticks_ms()
    board.on_status("a", status("a", state="busy").to_json(), now)
    board.on_status("b", status("b", state="free").to_json(), now)
    board.on_hub_state(b'{"state":"online","version":"1"}')
    assert board.states() == ["busy", "free"]
    assert board.on_hub_state(b'{"state":"sleepy"}') == "malformed"
    assert board.states() == ["busy", "free"]
    board.on_hub_state(b'{"state":"offline","version":null}')
    assert board.states() == ["unknown", "unknown"]
    board.on_hub_state(b'{"state":"online"}')
    assert board.states() == ["busy", "free"]
    board.connection(False)
    assert board.states() == ["unknown", "unknown"]
    board.connection(True)
    assert board.states() == ["unknown", "unknown"], "nothing from before the gap counts"


# --- priority and LEDs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["free"], "free"),
        (["closed", "free"], "free"),
        (["closed", "closed"], "closed"),
        (["free", "waiting"], "waiting"),
        (["waiting", "busy", "free"], "busy"),
        (["busy", "dnd"], "dnd"),
        (["dnd", "unknown", "free"], "unknown"),
        (["free", "bogus"], "unknown"),
    ],
)
def test_priority_for_one_led(fw: FirmwareEnv, states: list[str], expected: str) -> None:
    assert fw.module("status").most_important(states) == expected


def test_ring_segments_cover_every_pixel(fw: FirmwareEnv) -> None:
    segments = fw.module("leds").segments
    for pixels in range(1, 40):
        for rooms in range(1, min(pixels, 16) + 1):
            parts = segments(pixels, rooms)
            assert parts[0][0] == 0 and parts[-1][1] == pixels
            assert all(start < end for start, end in parts)
            assert all(a[1] == b[0] for a, b in pairwise(parts))


def test_ring_shows_each_room_and_blinks_unknown(fw: FirmwareEnv) -> None:
    leds = fw.module("leds")
    neopixel = fw.module("neopixel")
    np = neopixel.NeoPixel(None, 10)
    ring = leds.Ring(np, 10, 3)
    ring.render(["free", "busy", "unknown"], 100, True)
    assert [np.shown[i] for i in (0, 3, 6)] == [(0, 255, 0), (255, 0, 0), (255, 110, 0)]
    assert np.shown[9] == (255, 110, 0)
    ring.render(["free", "busy", "unknown"], 100, False)
    assert np.shown[9] == (0, 0, 0) and np.shown[0] == (0, 255, 0)
    writes = len(np.writes)
    ring.render(["free", "busy", "unknown"], 100, False)
    assert len(np.writes) == writes, "an unchanged picture is not written again"
    ring.render(["dnd", "closed", "waiting"], 50, True)
    assert [np.shown[i] for i in (0, 3, 9)] == [(0, 0, 127), (0, 0, 0), (127, 55, 0)]


def test_single_rgb_led_shows_the_most_important_state(fw: FirmwareEnv) -> None:
    leds = fw.module("leds")
    machine = fw.module("machine")
    pwms = [machine.PWM(machine.Pin(p)) for p in (25, 26, 27)]
    led = leds.RgbLed(*pwms)
    led.render(["free", "busy"], 100, True)
    assert [p.duty_u16() for p in pwms] == [65535, 0, 0]
    inverted = leds.RgbLed(*pwms, invert=True)
    inverted.render(["free", "closed"], 100, True)
    assert [p.duty_u16() for p in pwms] == [65535, 0, 65535]


# --- time ----------------------------------------------------------------------------


@FIXTURE_OK
@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2199, 12, 31)))
def test_calendar_matches_cpython(fw: FirmwareEnv, when: datetime) -> None:
    clock = fw.module("clock")
    when = when.replace(microsecond=0, tzinfo=UTC)
    assert clock.seconds(when.timetuple()[:6]) == int(when.timestamp())
    text = format_time(when)
    assert clock.format_utc(when.timetuple()[:6]) == text
    assert clock.parse_utc(text) == int(parse_time(text, "t").timestamp())


@FIXTURE_OK
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_eu_summer_time_matches_the_berlin_zone(fw: FirmwareEnv, when: datetime) -> None:
    clock = fw.module("clock")
    utc = when.replace(tzinfo=UTC)
    local = utc.astimezone(ZoneInfo("Europe/Berlin"))
    assert clock.eu_summer_time(utc.timetuple()[:6]) == bool(local.dst())
    minutes = clock.local_minutes(utc.timetuple()[:6], 60, "eu")
    assert minutes == local.hour * 60 + local.minute


def test_quiet_window_wraps_past_midnight(fw: FirmwareEnv) -> None:
    in_window = fw.module("clock").in_window
    night = (22 * 60, 6 * 60)
    assert [in_window(m, night) for m in (21 * 60 + 59, 22 * 60, 0, 5 * 60 + 59, 6 * 60)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    lunch = (12 * 60, 13 * 60)
    assert [in_window(m, lunch) for m in (11 * 60 + 59, 12 * 60, 13 * 60)] == [False, True, False]


class FixedWall:
    def __init__(self, when: datetime | None) -> None:
        self.when = when

    def now(self) -> tuple[int, ...] | None:
        return None if self.when is None else self.when.timetuple()[:6]

    def maintain(self) -> None:
        pass


def test_quiet_hours_dim_only_with_a_clock(fw: FirmwareEnv) -> None:
    data = light_config(1883, ["raum-1"], quiet_hours=["22:00", "06:00"], quiet_brightness=10)
    data["led"]["brightness"] = 80
    app = fw.build(data)
    winter_night = datetime(2026, 1, 10, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    summer_evening = datetime(2026, 7, 10, 19, 30, tzinfo=UTC)  # 21:30 in Berlin
    summer_night = datetime(2026, 7, 10, 20, 30, tzinfo=UTC)  # 22:30 in Berlin
    assert app.level(FixedWall(None).now()) == 80, "no clock: quiet hours are ignored"
    assert app.level(FixedWall(winter_night).now()) == 8
    assert app.level(FixedWall(summer_evening).now()) == 80
    assert app.level(FixedWall(summer_night).now()) == 8


def test_without_ntptime_there_is_no_wall_clock(fw: FirmwareEnv) -> None:
    device = fw.module("device")
    wall = device.NtpClock("pool.ntp.org")
    wall.maintain()
    assert wall.now() is None


# --- knock button --------------------------------------------------------------------


def test_button_is_debounced_and_rate_limited(fw: FirmwareEnv) -> None:
    machine = fw.module("machine")
    pin = machine.Pin(9, machine.Pin.IN, machine.Pin.PULL_UP)
    clock = fw.clock
    button = fw.module("button").Button(pin, clock, debounce_ms=50, min_interval_ms=10_000)

    def hold(level: int, ms: int) -> list[bool]:
        pin.drive(level)
        events = [button.poll()]
        for _ in range(ms // 10):
            clock.advance(10)
            events.append(button.poll())
        return events

    assert not any(hold(0, 30)), "a 30 ms bounce is no press"
    assert not any(hold(1, 100))
    assert sum(hold(0, 200)) == 1, "one press, however long it is held"
    assert not any(hold(1, 100))
    assert not any(hold(0, 100)), "a second press within 10 s is swallowed"
    assert button.swallowed == 1
    hold(1, 100)
    clock.advance(10_000)
    assert sum(hold(0, 100)) == 1, "after the interval a press counts again"
    assert button.presses == 3


# --- socket guard --------------------------------------------------------------------


class RecordingSocket:
    def __init__(self, data: list[bytes | None]) -> None:
        self.data = data
        self.calls: list[tuple[str, Any]] = []

    def settimeout(self, value: Any) -> None:
        self.calls.append(("settimeout", value))

    def setblocking(self, flag: bool) -> None:
        self.calls.append(("setblocking", flag))

    def read(self, n: int) -> bytes | None:
        return self.data.pop(0) if self.data else None

    def write(self, data: bytes) -> int:
        self.calls.append(("write", data))
        return len(data)

    def close(self) -> None:
        self.calls.append(("close", None))


def test_guard_turns_blocking_into_a_timeout_and_counts_reads(fw: FirmwareEnv) -> None:
    net = fw.module("net")

    class Client:
        sock = RecordingSocket([None, b"\xd0", b"\x00"])

    client = Client()
    raw = client.sock
    guarded = net.guard(client, 5)
    assert client.sock is guarded and net.guard(client, 5) is guarded
    guarded.setblocking(False)
    guarded.setblocking(True)
    guarded.settimeout(None)
    assert raw.calls == [
        ("settimeout", 5),
        ("setblocking", False),
        ("settimeout", 5),
        ("settimeout", 5),
    ], "setblocking(True) and settimeout(None) must never mean 'wait forever'"
    assert guarded.read(1) is None and guarded.reads == 0
    assert guarded.read(1) == b"\xd0" and guarded.read(1) == b"\x00"
    assert guarded.reads == 2


def test_guard_with_tls_times_out_on_the_raw_socket(fw: FirmwareEnv) -> None:
    net = fw.module("net")
    tcp = RecordingSocket([])
    tls_sock = RecordingSocket([b"\x30"])

    class Context:
        def wrap_socket(self, sock: Any, server_hostname: str | None = None) -> Any:
            assert sock is tcp and server_hostname == "mqtt.example"
            return tls_sock

    tls = net.TlsContext(Context())

    class Client:
        sock = tls.wrap_socket(tcp, server_hostname="mqtt.example")

    guarded = net.guard(Client(), 4, tls)
    guarded.setblocking(True)
    guarded.setblocking(False)
    assert tcp.calls == [("settimeout", 4), ("settimeout", 4)]
    assert tls_sock.calls == [("setblocking", False)]
    assert guarded.read(1) == b"\x30" and guarded.reads == 1
