"""LEDs and the knock button on gpiozero mock pins; the core renders only on change."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory

from display.config import KnockConfig, LedConfig
from display.core import DisplayCore
from display.leds import KnockButton, RgbStatusLed, TrafficLight
from display.model import BoardView, RoomBoard, RoomView, Shown
from display.outputs import InlineOutput, ThreadedOutput
from protocol import topics
from protocol.payloads import RoomState, RoomStatus
from tests.display.conftest import BLUE, GREEN, KNOCK, RED, colour, wait_blinking_amber

AMBER_PIN = 23
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def board_of(shown: Shown) -> BoardView:
    return BoardView((RoomView("raum-1", "Raum 1", shown),))


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (Shown.FREE, (0.0, 1.0, 0.0)),
        (Shown.BUSY, (1.0, 0.0, 0.0)),
        (Shown.WAITING, (1.0, 0.5, 0.0)),
        (Shown.DND, (0.0, 0.0, 1.0)),
        (Shown.CLOSED, (0.0, 0.0, 0.0)),
    ],
)
def test_rgb_led_colours(mock_pins: MockFactory, shown: Shown, expected: tuple) -> None:
    led = RgbStatusLed(LedConfig(room="raum-1", red=RED, green=GREEN, blue=BLUE))
    try:
        assert led.render(board_of(Shown.UNKNOWN if shown != Shown.UNKNOWN else Shown.FREE))
        assert led.render(board_of(shown))
        assert colour(mock_pins) == expected
        assert not led.render(board_of(shown))  # nothing changed: nothing done
    finally:
        led.close()
        led.close()  # idempotent


def test_rgb_led_blinks_amber_when_unknown(mock_pins: MockFactory) -> None:
    led = RgbStatusLed(LedConfig(room="raum-1", red=RED, green=GREEN, blue=BLUE))
    try:
        led.render(board_of(Shown.UNKNOWN))
        wait_blinking_amber(mock_pins, timeout=3)
        led.render(board_of(Shown.FREE))  # a known state stops the blinking at once
        time.sleep(0.6)
        assert colour(mock_pins) == (0.0, 1.0, 0.0)
    finally:
        led.close()


def test_rgb_led_active_low(mock_pins: MockFactory) -> None:
    led = RgbStatusLed(LedConfig(room="raum-1", red=RED, green=GREEN, blue=BLUE, active_high=False))
    try:
        led.render(board_of(Shown.FREE))
        assert colour(mock_pins) == (1.0, 0.0, 1.0)  # low drives the lit colour
    finally:
        led.close()


def test_traffic_light(mock_pins: MockFactory) -> None:
    config = LedConfig(room="raum-1", kind="traffic", red=RED, amber=AMBER_PIN, green=GREEN)
    light = TrafficLight(config)

    def lit() -> tuple[bool, bool, bool]:
        return tuple(bool(mock_pins.pin(p).state) for p in (RED, AMBER_PIN, GREEN))  # type: ignore[return-value]

    try:
        expectations = {
            Shown.FREE: (False, False, True),
            Shown.BUSY: (True, False, False),
            Shown.WAITING: (False, True, False),
            Shown.DND: (True, True, False),  # no blue LED: red and amber together
            Shown.CLOSED: (False, False, False),
        }
        for shown, expected in expectations.items():
            light.render(board_of(shown))
            assert lit() == expected, shown
        light.render(board_of(Shown.UNKNOWN))
        seen = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(seen) < 2:
            seen.add(lit())
            time.sleep(0.01)
        assert seen == {(False, True, False), (False, False, False)}  # amber blinks alone
    finally:
        light.close()
        light.close()


def test_knock_button_rate_limited(mock_pins: MockFactory) -> None:
    knocks: list[str] = []
    now = [100.0]
    button = KnockButton(
        KnockConfig(pin=KNOCK, room="raum-1", min_interval=5),
        knocks.append,
        monotonic=lambda: now[0],
    )
    pin = mock_pins.pin(KNOCK)
    try:
        for _ in range(3):  # a bouncing finger
            pin.drive_low()
            pin.drive_high()
        assert knocks == ["raum-1"]
        now[0] += 5.1
        pin.drive_low()
        pin.drive_high()
        assert knocks == ["raum-1", "raum-1"]
    finally:
        button.close()
        button.close()


class Recorder:
    """A renderer that records what it is asked to show."""

    name = "recorder"

    def __init__(self, delay: float = 0.0) -> None:
        self.views: list[BoardView] = []
        self.delay = delay
        self.closed = 0
        self.beats = 0

    def render(self, view: BoardView) -> bool:
        time.sleep(self.delay)
        self.views.append(view)
        return True

    def beat(self) -> None:
        self.beats += 1

    def close(self) -> None:
        self.closed += 1


def _status(state: str, seq: int) -> bytes:
    return RoomStatus("raum-1", "Raum 1", RoomState(state), 0, 0, NOW, seq, NOW, 90).to_json()


def test_core_pushes_only_changed_views_and_beats_otherwise() -> None:
    recorder = Recorder()
    latencies: list[tuple[str, float]] = []
    board = RoomBoard("default", ["raum-1"], lambda: NOW)
    core = DisplayCore(
        board,
        [InlineOutput(recorder, lambda name, s: latencies.append((name, s)))],
        ZoneInfo("Europe/Berlin"),
        tick_seconds=0.05,
    )
    topic = topics.room_status("default", "raum-1")
    core.start()
    try:
        core.on_connection(True)
        core.on_message(topic, _status("free", 1), time.perf_counter())
        core.on_message(topic, _status("free", 1), time.perf_counter())  # duplicate
        core.on_message(topic, b"garbage", time.perf_counter())
        core.on_message(topic, _status("busy", 2), time.perf_counter())
        time.sleep(0.3)
        shown = [v.room("raum-1").shown for v in recorder.views]
        reasons = [v.room("raum-1").reason for v in recorder.views]
        assert shown == [Shown.UNKNOWN, Shown.UNKNOWN, Shown.FREE, Shown.BUSY]
        assert reasons[:2] == ["broker-lost", "no-status"]
        assert recorder.beats >= 2  # the watchdog says it is alive while nothing changes
        assert [name for name, _ in latencies] == ["recorder"] * 2  # message-caused only
        assert all(0 <= s < 1 for _, s in latencies)
    finally:
        core.close()
        core.close()
    assert recorder.closed == 1


def test_threaded_output_shows_the_newest_view_and_never_blocks() -> None:
    slow = Recorder(delay=0.2)
    output = ThreadedOutput(slow)
    output.start()
    try:
        started = time.monotonic()
        for shown in (Shown.UNKNOWN, Shown.FREE, Shown.BUSY, Shown.DND):
            output.push(board_of(shown))
        assert time.monotonic() - started < 0.05
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and (
            not slow.views or slow.views[-1].room("raum-1").shown != Shown.DND
        ):
            time.sleep(0.01)
        assert slow.views[-1].room("raum-1").shown == Shown.DND
        assert len(slow.views) <= 2  # intermediate views were skipped
    finally:
        output.close()
        output.close()
    assert slow.closed == 1


def test_core_marks_failure_when_the_watchdog_dies() -> None:
    calls = {"n": 0}

    def clock() -> datetime:
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("the clock broke")
        return NOW

    ticks = threading.Event()

    def broken_tick() -> None:
        ticks.set()
        raise RuntimeError("housekeeping failed")

    healthy = DisplayCore(
        RoomBoard("default", ["raum-1"], lambda: NOW), [], ZoneInfo("UTC"),
        tick_seconds=0.01, on_tick=broken_tick,
    )  # fmt: skip
    broken = DisplayCore(
        RoomBoard("default", ["raum-1"], clock), [], ZoneInfo("UTC"), tick_seconds=0.01
    )
    healthy.start()
    broken.start()
    try:
        assert broken.failed.wait(3)  # the process exits 1 and systemd restarts it
        assert ticks.wait(3)
        time.sleep(0.1)
        assert not healthy.failed.is_set()  # a failing periodic task is only logged
    finally:
        healthy.close()
        broken.close()
