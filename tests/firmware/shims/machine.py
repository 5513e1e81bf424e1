"""Host stand-in for MicroPython's `machine` (only what the firmware uses)."""

from __future__ import annotations

import time
from itertools import pairwise
from typing import ClassVar


class ResetCalled(Exception):
    """Raised by reset(): on the device the board would restart here."""


resets: list[float] = []


def reset() -> None:
    resets.append(time.monotonic())
    raise ResetCalled


def unique_id() -> bytes:
    return b"\x24\x0a\xc4\x00\x00\x01"


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2

    instances: ClassVar[dict[int, Pin]] = {}

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, value: int | None = None):
        self.id = pin_id
        self.mode = mode
        self.pull = pull
        # An input with a pull-up reads high until the test drives it low.
        self._value = 1 if pull == self.PULL_UP else 0
        if value is not None:
            self._value = value
        Pin.instances[pin_id] = self

    def value(self, new: int | None = None) -> int | None:
        if new is None:
            return self._value
        self._value = 1 if new else 0
        return None

    def drive(self, level: int) -> None:
        """Test helper: what the outside world puts on an input pin."""
        self._value = level


class PWM:
    instances: ClassVar[list[PWM]] = []

    def __init__(self, pin: Pin, freq: int = 1000, duty_u16: int = 0):
        self.pin = pin
        self.freq = freq
        self._duty = duty_u16
        self.history: list[int] = [duty_u16]
        PWM.instances.append(self)

    def duty_u16(self, value: int | None = None) -> int | None:
        if value is None:
            return self._duty
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 out of range")
        self._duty = value
        self.history.append(value)
        return None

    def deinit(self) -> None:
        self._duty = 0


class WDT:
    """Counts feeds and remembers when they happened (real monotonic seconds)."""

    instances: ClassVar[list[WDT]] = []

    def __init__(self, id: int = 0, timeout: int = 5000):
        self.timeout_ms = timeout
        self.started = time.monotonic()
        self.feeds: list[float] = []
        WDT.instances.append(self)

    def feed(self) -> None:
        self.feeds.append(time.monotonic())

    def longest_gap(self) -> float:
        """The longest time in seconds without a feed, from start to now."""
        points = [self.started, *self.feeds, time.monotonic()]
        return max(b - a for a, b in pairwise(points))


def reset_shim() -> None:
    """Forget all instances (the fixture calls this between tests)."""
    Pin.instances = {}
    PWM.instances = []
    WDT.instances = []
    resets.clear()
