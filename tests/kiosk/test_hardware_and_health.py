"""gpiozero mock pins (call button, motion sensor, status LED) and the kiosk's MQTT health
against a real Mosquitto."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from kiosk.config import GpioConfig
from kiosk.flow import Flow, Screen
from kiosk.hardware import Hardware, LedState
from kiosk.health import Health
from protocol.broker import BrokerAddress
from protocol.payloads import DeviceCommand
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher

BUTTON, MOTION, LED_PIN = 5, 6, 13


@pytest.fixture
def pins() -> Iterator[MockFactory]:
    previous = Device.pin_factory
    factory = MockFactory()
    Device.pin_factory = factory
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = previous


def _until(check: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _toggles(pin: object, seconds: float) -> int:
    """How often the pin changed within `seconds` from now."""
    before = len(pin.states)  # type: ignore[attr-defined]
    time.sleep(seconds)
    return len(pin.states) - before  # type: ignore[attr-defined]


def _hardware(pins: MockFactory, flow: Flow, lock: threading.Lock) -> Hardware:
    def locked(action: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with lock:
                action()

        return run

    return Hardware(
        GpioConfig(call_button=BUTTON, motion_sensor=MOTION, status_led=LED_PIN),
        on_call=locked(flow.start),
        on_motion=locked(flow.motion),
        pin_factory=pins,
    )


def test_the_call_button_starts_a_visit(pins: MockFactory) -> None:
    flow, lock = Flow(time.monotonic), threading.Lock()
    with _hardware(pins, flow, lock):
        button = pins.pin(BUTTON)
        button.drive_low()
        _until(lambda: flow.screen == Screen.CONCERN)
        button.drive_high()
        assert flow.visits == 1 and flow.language == "de"


def test_motion_wakes_the_dimmed_screen(pins: MockFactory) -> None:
    flow, lock = Flow(time.monotonic), threading.Lock()
    flow.dimmed = True
    with _hardware(pins, flow, lock) as hardware:
        assert hardware.motion is not None
        time.sleep(0.3)  # the sensor's first samples: it reports changes, not levels
        pins.pin(MOTION).drive_high()
        _until(lambda: not flow.dimmed)
        assert flow.screen == Screen.ATTRACT


def test_the_led_shows_each_state(pins: MockFactory) -> None:
    with _hardware(pins, Flow(time.monotonic), threading.Lock()) as hardware:
        pin = pins.pin(LED_PIN)
        assert hardware.led is not None
        hardware.show(LedState.READY)
        assert pin.state is True and _toggles(pin, 0.4) == 0  # steady
        hardware.show(LedState.IN_CALL)
        slow = _toggles(pin, 2.1)
        assert 1 <= slow <= 4  # 1 s on, 1 s off
        hardware.show(LedState.FAULT)
        fast = _toggles(pin, 1.2)
        assert fast >= 6  # 0.15 s on, 0.15 s off
        hardware.identify(0.6)
        assert hardware.led.identifying
        assert _toggles(pin, 0.5) >= 3
        _until(lambda: not hardware.led.identifying)
        assert hardware.led.state == LedState.FAULT  # back to the state it showed
        hardware.show(LedState.OFF)
        assert pin.state is False


def test_missing_parts_are_left_out(pins: MockFactory) -> None:
    with Hardware(GpioConfig(), lambda: None, lambda: None, pin_factory=pins) as hardware:
        hardware.show(LedState.READY)
        hardware.identify()
        assert hardware.button is None and hardware.led is None


def test_health_publishes_state_with_a_will_and_obeys_commands(mosquitto: Mosquitto) -> None:
    commands: list[str] = []
    broker = BrokerAddress.parse(mosquitto.url)
    health = Health(
        broker,
        "default",
        "kiosk-rathaus",
        version="1.2.3",
        telemetry=lambda: {"camera_ok": True, "screen": "attract"},
        on_command=lambda c: commands.append(c.cmd),
        keepalive=2,
    )
    with Watcher(mosquitto.url, "empfang/v1/default/devices/kiosk-rathaus/state") as watcher:
        health.start()
        try:
            got = watcher.wait(lambda m: json.loads(m.payload)["state"] == "online")
            state = json.loads(got.payload)
            assert state["kind"] == "kiosk" and state["version"] == "1.2.3"
            assert state["telemetry"]["camera_ok"] is True
            assert isinstance(state["telemetry"]["uptime_s"], int)
            assert "name" not in json.dumps(state)  # device facts only

            sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
            sender.connect("127.0.0.1", broker.port)
            sender.loop_start()
            try:
                topic = "empfang/v1/default/devices/kiosk-rathaus/cmd"
                sender.publish(topic, b"not json", qos=1).wait_for_publish(2)
                sender.publish(topic, DeviceCommand("identify").to_json(), qos=1)
                sender.publish(topic, DeviceCommand("reload").to_json(), qos=1).wait_for_publish(2)
                _until(lambda: commands == ["identify", "reload"])
            finally:
                sender.disconnect()
                sender.loop_stop()
        finally:
            health.close()
        watcher.wait(lambda m: json.loads(m.payload)["state"] == "offline")
