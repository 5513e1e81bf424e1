"""The kiosk's GPIO parts through gpiozero, with an injectable pin factory.

- a "call reception" button: starts a visit from the attract screen;
- a motion sensor (PIR): wakes the dimmed attract screen;
- a status LED: steady when ready, blinking slowly in a call, blinking fast on a fault;
  ``identify()`` flashes a distinct pattern for a few seconds, then shows the state again.

Every part is optional (its pin None in the configuration). Callbacks run on gpiozero's
threads; the caller hands them on to its own loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from gpiozero import LED, Button, MotionSensor

from kiosk.config import GpioConfig

log = logging.getLogger(__name__)

# (on seconds, off seconds) of each blinking pattern.
SLOW = (1.0, 1.0)
FAST = (0.15, 0.15)
IDENTIFY = (0.05, 0.2)
IDENTIFY_SECONDS = 5.0


class LedState(StrEnum):
    """What the status LED shows."""

    OFF = "off"
    READY = "ready"
    IN_CALL = "in-call"
    FAULT = "fault"


class StatusLed:
    """One LED: steady (ready), slow blink (in call), fast blink (fault), off."""

    def __init__(self, pin: Any, pin_factory: Any = None) -> None:
        self._led = LED(pin, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self.state = LedState.OFF
        self.identifying = False
        self._timer: threading.Timer | None = None
        self._closed = False

    @property
    def led(self) -> LED:
        """The gpiozero device (for tests and diagnostics)."""
        return self._led

    def show(self, state: LedState) -> None:
        """Show `state` (at once, or after a running identify pattern)."""
        with self._lock:
            if self._closed:
                return
            changed = state != self.state
            self.state = state
            if not self.identifying and changed:
                self._apply()

    def identify(self, seconds: float = IDENTIFY_SECONDS) -> None:
        """Flash the identify pattern for `seconds`, then show the state again."""
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self.identifying = True
            self._led.blink(*IDENTIFY)
            self._timer = threading.Timer(seconds, self._end_identify)
            self._timer.daemon = True
            self._timer.start()

    def _end_identify(self) -> None:
        with self._lock:
            self.identifying = False
            self._timer = None
            if not self._closed:
                self._apply()

    def _apply(self) -> None:
        if self.state == LedState.READY:
            self._led.on()
        elif self.state == LedState.IN_CALL:
            self._led.blink(*SLOW)
        elif self.state == LedState.FAULT:
            self._led.blink(*FAST)
        else:
            self._led.off()

    def close(self) -> None:
        """Switch off and release the pin; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        self._led.close()


class Hardware:
    """The kiosk's button, motion sensor and LED; parts without a pin are left out.

    `on_call` runs when the button is pressed, `on_motion` when motion starts.
    """

    def __init__(
        self,
        config: GpioConfig,
        on_call: Callable[[], None],
        on_motion: Callable[[], None],
        pin_factory: Any = None,
    ) -> None:
        self.button: Button | None = None
        self.motion: MotionSensor | None = None
        self.led: StatusLed | None = None
        try:
            if config.call_button is not None:
                self.button = Button(
                    config.call_button,
                    pull_up=config.pull_up,
                    bounce_time=0.05,
                    pin_factory=pin_factory,
                )
                self.button.when_pressed = lambda: self._safely(on_call, "call button")
            if config.motion_sensor is not None:
                self.motion = MotionSensor(
                    config.motion_sensor, queue_len=1, sample_rate=20, pin_factory=pin_factory
                )
                self.motion.when_motion = lambda: self._safely(on_motion, "motion sensor")
            if config.status_led is not None:
                self.led = StatusLed(config.status_led, pin_factory=pin_factory)
        except Exception:
            self.close()
            raise

    @staticmethod
    def _safely(callback: Callable[[], None], what: str) -> None:
        try:
            callback()
        except Exception:
            log.exception("the %s handler failed", what)

    def show(self, state: LedState) -> None:
        """Show `state` on the LED, if there is one."""
        if self.led is not None:
            self.led.show(state)

    def identify(self, seconds: float = IDENTIFY_SECONDS) -> None:
        """Flash the LED's identify pattern, if there is an LED."""
        if self.led is not None:
            self.led.identify(seconds)

    def close(self) -> None:
        """Release every pin; safe to call twice."""
        for part in (self.button, self.motion, self.led):
            if part is not None:
                part.close()
        self.button = self.motion = None
        self.led = None

    def __enter__(self) -> Hardware:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
