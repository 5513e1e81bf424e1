"""Host stand-in for MicroPython's `neopixel`: records what every write() showed."""

from __future__ import annotations

from typing import Any, ClassVar


class NeoPixel:
    instances: ClassVar[list[NeoPixel]] = []

    def __init__(self, pin: Any, n: int, bpp: int = 3, timing: int = 1):
        self.pin = pin
        self.n = n
        self.bpp = bpp
        self.buf = [(0,) * bpp for _ in range(n)]
        self.writes: list[list[tuple[int, ...]]] = []
        NeoPixel.instances.append(self)

    def __len__(self) -> int:
        return self.n

    def __setitem__(self, index: int, value: tuple[int, ...]) -> None:
        if len(value) != self.bpp or not all(0 <= c <= 255 for c in value):
            raise ValueError(f"bad pixel value {value!r}")
        self.buf[index] = tuple(value)

    def __getitem__(self, index: int) -> tuple[int, ...]:
        return self.buf[index]

    def fill(self, value: tuple[int, ...]) -> None:
        for i in range(self.n):
            self[i] = value

    def write(self) -> None:
        self.writes.append(list(self.buf))

    @property
    def shown(self) -> list[tuple[int, ...]]:
        """What the LEDs show now (the last write), all off before the first."""
        return self.writes[-1] if self.writes else [(0,) * self.bpp] * self.n


def reset_shim() -> None:
    NeoPixel.instances = []
