# The optional knock button, polled from the main loop (no interrupt handler needed).
#
# Debounced: the pin must read "pressed" for `debounce_ms` before a press counts, and
# "released" for as long before the next press can count. Rate-limited: a press within
# `min_interval_ms` of the last knock that was sent is swallowed, so holding or hammering
# the button never floods the broker or the staff board.


class Button:
    def __init__(self, pin, clock, debounce_ms=50, min_interval_ms=10000, active_low=True):
        self.pin = pin
        self.clock = clock
        self.debounce_ms = debounce_ms
        self.min_interval_ms = min_interval_ms
        self.active_low = active_low
        self._raw = False
        self._since = clock.ticks_ms()
        self._stable = False
        self._last_knock = None
        self.presses = 0
        self.swallowed = 0

    def pressed_now(self):
        value = self.pin.value()
        return (value == 0) if self.active_low else (value == 1)

    def poll(self):
        """True once per accepted press."""
        now = self.clock.ticks_ms()
        raw = self.pressed_now()
        if raw != self._raw:
            self._raw = raw
            self._since = now
            return False
        if raw == self._stable or self.clock.ticks_diff(now, self._since) < self.debounce_ms:
            return False
        self._stable = raw
        if not raw:
            return False
        self.presses += 1
        # A negative difference means the tick counter wrapped: that knock was long ago.
        if (
            self._last_knock is not None
            and 0 <= self.clock.ticks_diff(now, self._last_knock) < self.min_interval_ms
        ):
            self.swallowed += 1
            return False
        self._last_knock = now
        return True
