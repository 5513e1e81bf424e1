"""Helpers for the firmware host tests: build the app on shims, drive it, read the LEDs."""

from __future__ import annotations

import contextlib
import copy
import importlib
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
SHIMS = Path(__file__).resolve().parent / "shims"

T = TypeVar("T")

# Short timings so outages and recoveries happen within seconds.
FAST_TIMING = {
    "watchdog_s": 3,
    "socket_timeout_s": 1,
    "ping_s": 1,
    "ping_timeout_s": 1,
    "backoff_base_ms": 100,
    "backoff_cap_ms": 800,
    "wifi_timeout_s": 1,
    "loop_ms": 20,
    "telemetry_s": 60,
}


def light_config(port: int, rooms: list[str], **overrides: Any) -> dict[str, Any]:
    """A config.json object for a light on 127.0.0.1:port (no TLS, no auth).

    Overrides of "timing", "broker" and "wifi" are merged in; others replace.
    """
    data: dict[str, Any] = {
        "device_id": "light-test",
        "site": "default",
        "rooms": rooms,
        "wifi": {"ssid": "Rathaus-IoT", "password": "geheim"},
        "broker": {"host": "127.0.0.1", "port": port, "keepalive_s": 10},
        "led": {"type": "ws2812", "pin": 5, "pixels": 12, "brightness": 100},
        "timing": dict(FAST_TIMING),
    }
    for key, value in overrides.items():
        if key in ("timing", "broker", "wifi") and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def colour_name(rgb: tuple[int, ...]) -> str:
    """Classify a pixel by hue, independent of brightness."""
    r, g, b = rgb[:3]
    if r == g == b == 0:
        return "off"
    if r and not g and not b:
        return "red"
    if g and not r and not b:
        return "green"
    if b and not r and not g:
        return "blue"
    if r and g and not b and r > g:
        return "amber"
    return f"?{rgb}"


class FirmwareEnv:
    """Access to the firmware modules and shims of one test."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.apps: list[Any] = []
        for name in ("machine", "network", "neopixel"):
            importlib.import_module(name).reset_shim()

    def module(self, name: str) -> ModuleType:
        """A shim (machine, network, neopixel, umqtt.simple) or a firmware module."""
        if name in ("machine", "network", "neopixel", "umqtt.simple"):
            return importlib.import_module(name)
        return importlib.import_module(f"empfang_light.{name}")

    def config(self, data: dict[str, Any]) -> Any:
        return self.module("config").parse_config(copy.deepcopy(data))

    def build(self, data: dict[str, Any], wdt: bool = True) -> Any:
        """The app as the device builds it (device.build), on the shims."""
        device = self.module("device")
        app = device.build(self.config(data), wdt=wdt)
        app.log_lines = []
        app.log = app.log_lines.append
        self.apps.append(app)
        return app

    def wdt(self) -> Any:
        return self.module("machine").WDT.instances[-1]

    def wlan(self) -> Any:
        return self.module("network").WLAN.instances[-1]

    def pixels(self) -> Any:
        return self.module("neopixel").NeoPixel.instances[-1]

    def segment_colours(self, app: Any) -> list[str]:
        """What each room's ring segment shows now, read back from the NeoPixel shim."""
        shown = self.pixels().shown
        out = []
        for start, end in app.leds.segments:
            names = {colour_name(px) for px in shown[start:end]}
            assert len(names) == 1, f"segment {start}-{end} is not one colour: {names}"
            out.append(names.pop())
        return out

    def rgb_colour(self) -> str:
        """What the single RGB LED shows now, read back from the PWM shim duties."""
        machine = self.module("machine")
        channels = machine.PWM.instances[-3:]
        return colour_name(tuple(pwm.duty_u16() * 255 // 65535 for pwm in channels))

    def close(self) -> None:
        for app in self.apps:
            client = app.client
            app.client = None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.sock.close()


def pump(
    app: Any,
    until: Callable[[], T],
    timeout: float = 5.0,
    message: str = "condition",
) -> T:
    """Run the app's loop until `until()` is truthy; fail after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while True:
        app.run_once()
        result = until()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message}; shown={app.shown} "
                f"states={app.board.states()} error={app.last_error} stats={app.stats}"
            )


def run_for(app: Any, seconds: float, sample: Callable[[], T] | None = None) -> list[T]:
    """Run the app's loop for `seconds`, collecting `sample()` after every step."""
    seen: list[T] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.run_once()
        if sample is not None:
            seen.append(sample())
    return seen
