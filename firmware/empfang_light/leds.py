# Colours of the door-display issue, on a single RGB LED or a WS2812 ring.
#
#   free green   busy red   waiting amber   dnd blue   closed off   unknown blinking amber
#
# A ring is split into one segment per room, in the order of config "rooms"
# (pixels // rooms each; the first segments get one pixel less when it does not divide).
# A single RGB LED shows the most important state of all its rooms (status.PRIORITY).
# Hardware is written only when the picture changes.

from empfang_light.status import UNKNOWN, most_important

PALETTE = {
    "green": (0, 255, 0),
    "red": (255, 0, 0),
    "amber": (255, 110, 0),
    "blue": (0, 0, 255),
    "off": (0, 0, 0),
}
COLOURS = {
    "free": "green",
    "busy": "red",
    "waiting": "amber",
    "dnd": "blue",
    "closed": "off",
    UNKNOWN: "amber",
}
BLINK_MS = 500  # unknown: 500 ms amber, 500 ms off


def colour_of(state, blink_on):
    if state not in COLOURS or state == UNKNOWN:
        return "amber" if blink_on else "off"
    return COLOURS[state]


def blink_phase(ticks):
    return (ticks // BLINK_MS) % 2 == 0


def scale(rgb, level):
    """An (r, g, b) colour at `level` percent."""
    return (rgb[0] * level // 100, rgb[1] * level // 100, rgb[2] * level // 100)


def segments(pixels, count):
    """Split `pixels` into `count` consecutive (start, end) ranges, none empty."""
    return [(i * pixels // count, (i + 1) * pixels // count) for i in range(count)]


class Ring:
    """A WS2812 ring or strip: `np` is a neopixel.NeoPixel of `pixels` pixels."""

    def __init__(self, np, pixels, rooms):
        self.np = np
        self.pixels = pixels
        self.segments = segments(pixels, rooms)
        self.shown = None
        self._key = None

    def render(self, states, level, blink_on):
        names = [colour_of(state, blink_on) for state in states]
        key = (tuple(names), level)
        if key != self._key:
            for (start, end), name in zip(self.segments, names):
                rgb = scale(PALETTE[name], level)
                for i in range(start, end):
                    self.np[i] = rgb
            self.np.write()
            self._key = key
            self.shown = names
        return names

    def off(self):
        for i in range(self.pixels):
            self.np[i] = (0, 0, 0)
        self.np.write()
        self._key = None


class RgbLed:
    """One RGB LED on three PWM channels (machine.PWM with duty_u16)."""

    def __init__(self, red, green, blue, invert=False):
        self.channels = (red, green, blue)
        self.invert = invert  # common-anode LEDs light up at low duty
        self.shown = None
        self._key = None

    def _write(self, rgb):
        for pwm, value in zip(self.channels, rgb):
            duty = value * 65535 // 255
            pwm.duty_u16(65535 - duty if self.invert else duty)

    def render(self, states, level, blink_on):
        name = colour_of(most_important(states), blink_on)
        key = (name, level)
        if key != self._key:
            self._write(scale(PALETTE[name], level))
            self._key = key
            self.shown = [name]
        return [name]

    def off(self):
        self._write((0, 0, 0))
        self._key = None
