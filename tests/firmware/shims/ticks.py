"""A controllable stand-in for MicroPython's time.ticks_ms/ticks_diff/ticks_add/sleep_ms.

Ticks follow real monotonic time plus an offset the test can advance, and wrap at 2**30
like MicroPython's (ticks_diff gives the signed difference in [-2**29, 2**29)). The
clock starts a few seconds before the wrap, so every test also proves that the firmware
compares ticks only with ticks_diff.
"""

from __future__ import annotations

import time
from collections.abc import Callable

PERIOD = 1 << 30
MASK = PERIOD - 1
HALF = PERIOD // 2


class TickClock:
    def __init__(self, start: int = PERIOD - 5000, max_sleep_ms: int = 1000):
        self._t0 = time.monotonic()
        self._start = start
        self.offset_ms = 0
        self.max_sleep_ms = max_sleep_ms
        self.sleeps: list[int] = []

    def ticks_ms(self) -> int:
        real = int((time.monotonic() - self._t0) * 1000)
        return (self._start + real + self.offset_ms) & MASK

    @staticmethod
    def ticks_diff(a: int, b: int) -> int:
        return ((a - b + HALF) & MASK) - HALF

    @staticmethod
    def ticks_add(t: int, delta: int) -> int:
        if not -HALF <= delta < HALF:
            raise OverflowError("ticks interval overflow")
        return (t + delta) & MASK

    def sleep_ms(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("negative sleep")
        if ms > self.max_sleep_ms:
            raise AssertionError(f"sleep_ms({ms}) would starve the loop")
        self.sleeps.append(ms)
        time.sleep(ms / 1000)

    def advance(self, ms: int) -> None:
        """Jump forward without waiting (as if the device had been busy elsewhere)."""
        self.offset_ms += ms

    def install(self, module: object, setattr_: Callable[..., None]) -> None:
        """Put the tick functions on `module` (CPython's time) with `setattr_(mod, name, f)`."""
        for name in ("ticks_ms", "ticks_diff", "ticks_add", "sleep_ms"):
            setattr_(module, name, getattr(self, name))
