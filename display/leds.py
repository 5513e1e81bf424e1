"""Status LEDs and the knock button, through gpiozero with an injectable pin factory.

Colours: green free, red busy, amber waiting, blue do-not-disturb, off closed, blinking
amber unknown. A traffic light of single LEDs shows do-not-disturb on its blue LED when it
has one, else as red and amber together.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import LED, RGBLED, Button

from display.config import KnockConfig, LedConfig
from display.model import BoardView, Shown

log = logging.getLogger(__name__)

Colour = tuple[float, float, float]
OFF: Colour = (0.0, 0.0, 0.0)
AMBER: Colour = (1.0, 0.5, 0.0)
COLOURS: dict[Shown, Colour] = {
    Shown.FREE: (0.0, 1.0, 0.0),
    Shown.BUSY: (1.0, 0.0, 0.0),
    Shown.WAITING: AMBER,
    Shown.DND: (0.0, 0.0, 1.0),
    Shown.CLOSED: OFF,
}
BLINK_SECONDS = 0.5


def _shown(view: BoardView, room: str | None) -> Shown:
    """The state of the LED's room; without a fixed room, of the first room shown."""
    if room is not None:
        for candidate in view.rooms:
            if candidate.room == room:
                return candidate.shown
    # No fixed room, or the hub no longer assigns it: the first room on the display.
    return view.rooms[0].shown if view.rooms else Shown.UNKNOWN


class RgbStatusLed:
    """One RGB LED showing one room."""

    name = "leds"

    def __init__(self, config: LedConfig, pin_factory: Any = None) -> None:
        self.room = config.room
        # Digital pins cannot mix amber: without PWM it shows as red + green (yellow).
        self._amber = AMBER if config.pwm else (1.0, 1.0, 0.0)
        self._led = RGBLED(
            config.red,
            config.green,
            config.blue,
            active_high=config.active_high,
            pwm=config.pwm,
            pin_factory=pin_factory,
        )
        self._shown: Shown | None = None
        self._closed = False

    def render(self, view: BoardView) -> bool:
        """Set the colour of the LED's room; True when it changed."""
        shown = _shown(view, self.room)
        if shown == self._shown or self._closed:
            return False
        self._shown = shown
        if shown == Shown.UNKNOWN:
            self._led.blink(
                on_time=BLINK_SECONDS, off_time=BLINK_SECONDS, on_color=self._amber, off_color=OFF
            )
        elif shown == Shown.WAITING:
            self._led.color = self._amber
        else:
            self._led.color = COLOURS[shown]
        return True

    def close(self) -> None:
        """Switch off and release the pins; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._led.close()


class TrafficLight:
    """Red, amber and green LEDs (and optionally blue) showing one room."""

    name = "leds"

    def __init__(self, config: LedConfig, pin_factory: Any = None) -> None:
        self.room = config.room

        def led(pin: int | str | None) -> LED | None:
            if pin is None:
                return None
            return LED(pin, active_high=config.active_high, pin_factory=pin_factory)

        self._red, self._amber, self._green = led(config.red), led(config.amber), led(config.green)
        self._blue = led(config.blue)
        self._shown: Shown | None = None
        self._closed = False

    def _lights(self) -> list[LED]:
        return [x for x in (self._red, self._amber, self._green, self._blue) if x is not None]

    def render(self, view: BoardView) -> bool:
        """Light the LEDs for the room's state; True when it changed."""
        shown = _shown(view, self.room)
        if shown == self._shown or self._closed:
            return False
        self._shown = shown
        on: set[LED | None] = {
            Shown.FREE: {self._green},
            Shown.BUSY: {self._red},
            Shown.WAITING: {self._amber},
            Shown.DND: {self._blue} if self._blue is not None else {self._red, self._amber},
            Shown.CLOSED: set(),
            Shown.UNKNOWN: set(),
        }[shown]
        for light in self._lights():
            if light in on:
                light.on()
            else:
                light.off()
        if shown == Shown.UNKNOWN and self._amber is not None:
            self._amber.blink(on_time=BLINK_SECONDS, off_time=BLINK_SECONDS)
        return True

    def close(self) -> None:
        """Switch off and release the pins; safe to call twice."""
        if not self._closed:
            self._closed = True
            for light in self._lights():
                light.close()


def status_light(config: LedConfig, pin_factory: Any = None) -> RgbStatusLed | TrafficLight:
    """The configured kind of status light."""
    if config.kind == "traffic":
        return TrafficLight(config, pin_factory)
    return RgbStatusLed(config, pin_factory)


class KnockButton:
    """A push button that calls ``on_knock`` at most once per ``min_interval`` seconds."""

    def __init__(
        self,
        config: KnockConfig,
        on_knock: Callable[[str], object],
        pin_factory: Any = None,
        monotonic: Callable[[], float] = time.monotonic,
        current_room: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.fixed_room = config.room
        self._current_room = current_room
        self.min_interval = config.min_interval
        self._on_knock = on_knock
        self._monotonic = monotonic
        self._last: float | None = None
        self._lock = threading.Lock()
        self.knocks = 0
        self._button = Button(config.pin, pull_up=config.pull_up, pin_factory=pin_factory)
        self._button.when_pressed = self._pressed
        self._closed = False

    @property
    def room(self) -> str | None:
        """The room this button knocks on: the configured one, else the first assigned."""
        return self.fixed_room or self._current_room()

    def _pressed(self) -> None:
        room = self.room
        if room is None:
            log.info("knock ignored: no room is assigned to this display")
            return
        now = self._monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.min_interval:
                log.info("knock on %s ignored: pressed again within %ss", room, self.min_interval)
                return
            self._last = now
            self.knocks += 1
        log.info("knock on %s", room)
        try:
            self._on_knock(room)
        except Exception:
            log.exception("sending the knock on %s failed", room)

    def close(self) -> None:
        """Release the pin; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._button.close()
