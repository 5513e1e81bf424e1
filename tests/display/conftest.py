"""Fixtures for door display tests: gpiozero mock pins, configs, a running display."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from display.config import DisplayConfig, parse_config
from display.service import Display

RED, GREEN, BLUE, AMBER_PIN, KNOCK = 17, 27, 22, 23, 5


@pytest.fixture
def mock_pins() -> Iterator[MockFactory]:
    """gpiozero's mock pin factory with PWM pins, restored afterwards."""
    previous = Device.pin_factory
    factory = MockFactory(pin_class=MockPWMPin)
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def make_config(broker_url: str, rooms: list[str], **tables: Any) -> DisplayConfig:
    """A validated display config; keyword arguments are top-level keys or tables."""
    data: dict[str, Any] = {
        "broker": broker_url,
        "device": "tuer-1",
        "rooms": rooms,
        "outputs": ["leds"],
        "leds": {"red": RED, "green": GREEN, "blue": BLUE},
        **tables,
    }
    return parse_config(data)


@contextmanager
def running_display(
    config: DisplayConfig,
    clock: Callable[[], datetime],
    pins: MockFactory | None = None,
    **kwargs: Any,
) -> Iterator[Display]:
    """A started display core (no GUI) connected to the config's broker; closed afterwards."""
    display = Display(config, pin_factory=pins, clock=clock, **kwargs)
    try:
        display.start()
        assert display.link is not None
        assert display.link.wait_connected(10), "the display did not connect to the broker"
        yield display
    finally:
        display.close()


def colour(pins: MockFactory) -> tuple[float, float, float]:
    """The RGB LED's current (red, green, blue) pin values."""
    return tuple(round(pins.pin(p).state, 2) for p in (RED, GREEN, BLUE))  # type: ignore[return-value]


def wait_colour(pins: MockFactory, expected: tuple[float, float, float], timeout: float) -> float:
    """Wait until the LED shows ``expected`` steadily; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        if colour(pins) == expected:
            time.sleep(0.05)
            if colour(pins) == expected:
                return time.monotonic() - start
        if time.monotonic() > deadline:
            raise AssertionError(f"LED shows {colour(pins)}, not {expected}, after {timeout}s")
        time.sleep(0.01)


def wait_blinking_amber(pins: MockFactory, timeout: float) -> float:
    """Wait until the LED blinks amber (red 1 / green 0.5 alternating with off)."""
    start = time.monotonic()
    deadline = start + timeout
    seen: set[tuple[float, float, float]] = set()
    while time.monotonic() < deadline:
        seen.add(colour(pins))
        if {(1.0, 0.5, 0.0), (0.0, 0.0, 0.0)} <= seen and seen <= {
            (1.0, 0.5, 0.0),
            (0.0, 0.0, 0.0),
        }:
            return time.monotonic() - start
        if not seen <= {(1.0, 0.5, 0.0), (0.0, 0.0, 0.0)}:
            seen = {colour(pins)}  # still the old colour: start over
        time.sleep(0.01)
    raise AssertionError(f"LED did not blink amber within {timeout}s; saw {seen}")


def count_red(path: Path) -> int:
    """Pure red pixels in an image."""
    from PIL import Image

    with Image.open(path) as image:
        counts = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(n for n, colour in counts if colour == (255, 0, 0))
