# Load and validate config.json.
#
# Every problem raises ConfigError with the offending key path, e.g.
#   ConfigError("led.pixels: must be an integer from 1 to 1024")
# Unknown keys are rejected too, so a typo never silently falls back to a default.
# Imports only json, so it runs on the device, under CPython (host tests) and in
# provision.py.

import json


class ConfigError(ValueError):
    pass


def _fail(path, message):
    raise ConfigError("%s: %s" % (path, message))


def _is_int(value):
    return type(value) is int


def _int(obj, key, path, low, high, default=None):
    value = obj.get(key, default)
    where = path + key
    if not _is_int(value) or not low <= value <= high:
        _fail(where, "must be an integer from %d to %d" % (low, high))
    return value


def _bool(obj, key, path, default):
    value = obj.get(key, default)
    if type(value) is not bool:
        _fail(path + key, "must be true or false")
    return value


def _text(obj, key, path, low, high, default=None, required=False):
    if key not in obj:
        if required:
            _fail(path + key, "required")
        return default
    value = obj[key]
    if value is None and not required:
        return None
    if not isinstance(value, str) or not low <= len(value) <= high:
        _fail(path + key, "must be a string of %d to %d characters" % (low, high))
    for ch in value:
        if ord(ch) < 32 or ord(ch) == 127:
            _fail(path + key, "must not contain control characters")
    return value


def is_slug(value):
    """A lower-case slug of 1-64 characters a-z, 0-9 and '-', not starting or ending with '-'."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        return False
    if value[0] == "-" or value[-1] == "-":
        return False
    for ch in value:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "-"):
            return False
    return True


def _slug(value, where):
    if not is_slug(value):
        _fail(where, "must be a slug of 1-64 characters a-z, 0-9 and '-'")
    return value


def _object(obj, key, path, required=True):
    if key not in obj or obj[key] is None:
        if required:
            _fail(path + key, "required")
        return None
    value = obj[key]
    if not isinstance(value, dict):
        _fail(path + key, "must be a JSON object")
    return value


def _known(obj, path, allowed):
    for key in obj:
        if key not in allowed:
            _fail(path + str(key), "unknown key (allowed: %s)" % ", ".join(sorted(allowed)))


def parse_hhmm(value, where):
    """'HH:MM' -> minutes after midnight."""
    ok = isinstance(value, str) and len(value) == 5 and value[2] == ":"
    if ok:
        digits = value[:2] + value[3:]
        ok = all("0" <= ch <= "9" for ch in digits)
    if ok:
        hours, minutes = int(value[:2]), int(value[3:])
        ok = hours < 24 and minutes < 60
    if not ok:
        _fail(where, 'must be a time like "22:00"')
    return hours * 60 + minutes


TOP_KEYS = (
    "device_id",
    "client_id",
    "site",
    "rooms",
    "wifi",
    "broker",
    "led",
    "quiet_hours",
    "quiet_brightness",
    "utc_offset_minutes",
    "dst",
    "ntp_host",
    "knock",
    "ttl_fallback_s",
    "timing",
)
BROKER_KEYS = ("host", "port", "tls", "username", "password", "ca_file", "keepalive_s")
WIFI_KEYS = ("ssid", "password")
RGB_KEYS = ("type", "pins", "invert", "brightness", "frequency")
RING_KEYS = ("type", "pin", "pixels", "brightness")
KNOCK_KEYS = ("pin", "room", "active_low", "debounce_ms", "min_interval_s")
TIMING_KEYS = (
    "watchdog_s",
    "socket_timeout_s",
    "ping_s",
    "ping_timeout_s",
    "backoff_base_ms",
    "backoff_cap_ms",
    "wifi_timeout_s",
    "loop_ms",
    "telemetry_s",
)
MAX_ROOMS = 16
MAX_PIN = 48


class Config:
    """Validated settings; attribute names follow the JSON keys."""

    def __init__(self, data):
        if not isinstance(data, dict):
            _fail("config", "must be a JSON object")
        _known(data, "", TOP_KEYS)

        self.device_id = _slug(data.get("device_id"), "device_id")
        # Enrollment hands out "empfang.<site>.<device_id>": up to 137 characters.
        self.client_id = _text(data, "client_id", "", 1, 160, default=self.device_id)
        self.site = _slug(data.get("site", "default"), "site")

        rooms = data.get("rooms")
        if not isinstance(rooms, list) or not 1 <= len(rooms) <= MAX_ROOMS:
            _fail("rooms", "must be a list of 1 to %d room slugs" % MAX_ROOMS)
        for i, room in enumerate(rooms):
            _slug(room, "rooms[%d]" % i)
        if len(set(rooms)) != len(rooms):
            _fail("rooms", "lists a room twice")
        self.rooms = list(rooms)

        wifi = _object(data, "wifi", "")
        _known(wifi, "wifi.", WIFI_KEYS)
        self.wifi_ssid = _text(wifi, "ssid", "wifi.", 1, 32, required=True)
        self.wifi_password = _text(wifi, "password", "wifi.", 0, 64, default="")

        broker = _object(data, "broker", "")
        _known(broker, "broker.", BROKER_KEYS)
        self.broker_host = _text(broker, "host", "broker.", 1, 253, required=True)
        self.tls = _bool(broker, "tls", "broker.", False)
        self.broker_port = _int(broker, "port", "broker.", 1, 65535, 8883 if self.tls else 1883)
        self.username = _text(broker, "username", "broker.", 1, 128)
        self.password = _text(broker, "password", "broker.", 0, 256)
        if self.password is not None and self.username is None:
            _fail("broker.password", "given without broker.username")
        self.ca_file = _text(broker, "ca_file", "broker.", 1, 64)
        if self.ca_file is not None and not self.tls:
            _fail("broker.ca_file", "only makes sense with broker.tls true")
        self.keepalive_s = _int(broker, "keepalive_s", "broker.", 5, 3600, 30)

        led = _object(data, "led", "")
        self.led_type = led.get("type")
        if self.led_type == "rgb":
            _known(led, "led.", RGB_KEYS)
            pins = led.get("pins")
            if (
                not isinstance(pins, list)
                or len(pins) != 3
                or not all(_is_int(p) and 0 <= p <= MAX_PIN for p in pins)
                or len(set(pins)) != 3
            ):
                _fail("led.pins", "must be three different GPIO numbers [red, green, blue]")
            self.led_pins = list(pins)
            self.led_invert = _bool(led, "invert", "led.", False)
            self.led_frequency = _int(led, "frequency", "led.", 100, 40000, 1000)
            self.led_pin = None
            self.pixels = 1
        elif self.led_type == "ws2812":
            _known(led, "led.", RING_KEYS)
            self.led_pin = _int(led, "pin", "led.", 0, MAX_PIN)
            self.pixels = _int(led, "pixels", "led.", 1, 1024)
            if self.pixels < len(self.rooms):
                _fail("led.pixels", "fewer pixels than rooms (each room needs at least one)")
            self.led_pins = None
            self.led_invert = False
            self.led_frequency = None
        else:
            _fail("led.type", 'must be "rgb" or "ws2812"')
        self.brightness = _int(led, "brightness", "led.", 0, 100, 50)

        quiet = data.get("quiet_hours")
        if quiet is None:
            self.quiet_hours = None
        else:
            if not isinstance(quiet, list) or len(quiet) != 2:
                _fail("quiet_hours", 'must be null or ["HH:MM", "HH:MM"]')
            start = parse_hhmm(quiet[0], "quiet_hours[0]")
            end = parse_hhmm(quiet[1], "quiet_hours[1]")
            if start == end:
                _fail("quiet_hours", "start and end must differ")
            self.quiet_hours = (start, end)
        self.quiet_brightness = _int(data, "quiet_brightness", "", 0, 100, 10)
        self.utc_offset_minutes = _int(data, "utc_offset_minutes", "", -720, 840, 60)
        self.dst = data.get("dst", "eu")
        if self.dst not in ("eu", "none"):
            _fail("dst", 'must be "eu" (European summer time) or "none"')
        self.ntp_host = _text(data, "ntp_host", "", 1, 253, default="pool.ntp.org")

        knock = _object(data, "knock", "", required=False)
        if knock is None:
            self.knock_pin = None
            self.knock_room = None
            self.knock_active_low = True
            self.knock_debounce_ms = 50
            self.knock_min_interval_s = 10
        else:
            _known(knock, "knock.", KNOCK_KEYS)
            self.knock_pin = _int(knock, "pin", "knock.", 0, MAX_PIN)
            if self.led_type == "ws2812" and self.knock_pin == self.led_pin:
                _fail("knock.pin", "is the LED pin")
            if self.led_type == "rgb" and self.knock_pin in self.led_pins:
                _fail("knock.pin", "is one of the LED pins")
            self.knock_room = _slug(knock.get("room", self.rooms[0]), "knock.room")
            if self.knock_room not in self.rooms:
                _fail("knock.room", "must be one of rooms")
            self.knock_active_low = _bool(knock, "active_low", "knock.", True)
            self.knock_debounce_ms = _int(knock, "debounce_ms", "knock.", 5, 1000, 50)
            self.knock_min_interval_s = _int(knock, "min_interval_s", "knock.", 1, 3600, 10)

        self.ttl_fallback_s = _int(data, "ttl_fallback_s", "", 3, 86400, 90)

        timing = _object(data, "timing", "", required=False) or {}
        _known(timing, "timing.", TIMING_KEYS)
        t = "timing."
        self.watchdog_s = _int(timing, "watchdog_s", t, 2, 120, 30)
        self.socket_timeout_s = _int(timing, "socket_timeout_s", t, 1, 30, 5)
        self.ping_s = _int(timing, "ping_s", t, 1, 3600, 10)
        self.ping_timeout_s = _int(timing, "ping_timeout_s", t, 1, 60, 5)
        self.backoff_base_ms = _int(timing, "backoff_base_ms", t, 10, 60000, 1000)
        self.backoff_cap_ms = _int(timing, "backoff_cap_ms", t, 10, 3600000, 60000)
        self.wifi_timeout_s = _int(timing, "wifi_timeout_s", t, 1, 120, 20)
        self.loop_ms = _int(timing, "loop_ms", t, 5, 1000, 50)
        self.telemetry_s = _int(timing, "telemetry_s", t, 10, 86400, 300)
        if self.watchdog_s < 2 * self.socket_timeout_s:
            _fail(
                "timing.watchdog_s",
                "must be at least twice timing.socket_timeout_s, so one blocking "
                "socket operation can never trip the watchdog",
            )
        if self.backoff_cap_ms < self.backoff_base_ms:
            _fail("timing.backoff_cap_ms", "must not be smaller than timing.backoff_base_ms")
        if self.ping_s >= self.keepalive_s:
            _fail("timing.ping_s", "must be shorter than broker.keepalive_s")
        if self.loop_ms * 2 > self.watchdog_s * 1000:
            _fail("timing.loop_ms", "must be far below the watchdog timeout")


def parse_config(data):
    """Validate an already decoded JSON object; returns a Config or raises ConfigError."""
    return Config(data)


def loads(text):
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError("config.json: not valid JSON (%s)" % exc)
    return Config(data)


def load_config(path="config.json"):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("%s: cannot be read; copy config.example.json and fill it in" % path)
    return loads(text)
