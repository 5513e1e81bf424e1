"""Fixtures for the ESP32 firmware's host tests: shims on sys.path, a tick clock on `time`."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.firmware.helpers import FIRMWARE, SHIMS, FirmwareEnv

# Modules that must come from the shims or the firmware, fresh for every test.
OWN_MODULES = ("machine", "network", "neopixel", "ticks", "umqtt", "empfang_light")


def _ours(name: str) -> bool:
    return any(name == own or name.startswith(own + ".") for own in OWN_MODULES)


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> Iterator[FirmwareEnv]:
    """The firmware importable under CPython, with hardware shims and a tick clock.

    Puts firmware/ and tests/firmware/shims/ first on sys.path, sets ticks_ms,
    ticks_diff, ticks_add and sleep_ms on CPython's `time` (which has none of them),
    and takes all of it away again afterwards.
    """
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _ours(name)}
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in firmware/
    monkeypatch.syspath_prepend(str(SHIMS))
    monkeypatch.syspath_prepend(str(FIRMWARE))
    try:
        ticks = importlib.import_module("ticks")
        clock = ticks.TickClock()
        clock.install(time, lambda mod, name, f: monkeypatch.setattr(mod, name, f, raising=False))
        env = FirmwareEnv(clock)
        try:
            yield env
        finally:
            env.close()
    finally:
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture
def firmware_dir() -> Path:
    return FIRMWARE
