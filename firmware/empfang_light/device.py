# Build the real hardware objects from config.json and run the app (device side).
#
# Uses only MicroPython's own modules (machine, network, neopixel, time, ssl, ntptime,
# gc, random, os) and micropython-lib's umqtt.simple, installed with mip.

import time

import machine
import network

from empfang_light.app import App
from empfang_light.button import Button
from empfang_light.config import ConfigError, load_config
from empfang_light.leds import Ring, RgbLed
from empfang_light.net import TlsContext

NTP_RESYNC_MS = 6 * 3600 * 1000
NTP_RETRY_MS = 60 * 1000


class NtpClock:
    """Wall time from ntptime when it is available; quiet hours are ignored until then."""

    def __init__(self, host, clock=time):
        self.clock = clock
        self.synced = False
        self._next = None
        try:
            import ntptime

            ntptime.host = host
            self._ntp = ntptime
        except ImportError:
            self._ntp = None

    def maintain(self):
        """Called on every step while Wi-Fi is up; sets the RTC now and then (1 s timeout)."""
        if self._ntp is None:
            return
        now = self.clock.ticks_ms()
        if self._next is not None and self.clock.ticks_diff(self._next, now) > 0:
            return
        try:
            self._ntp.settime()
            self.synced = True
            self._next = self.clock.ticks_add(now, NTP_RESYNC_MS)
        except Exception:  # no answer: try again in a minute
            self._next = self.clock.ticks_add(now, NTP_RETRY_MS)

    def now(self):
        return time.gmtime()[:6] if self.synced else None


def random_fraction():
    import random

    return random.getrandbits(24) / 16777216


def make_leds(cfg):
    if cfg.led_type == "ws2812":
        import neopixel

        np = neopixel.NeoPixel(machine.Pin(cfg.led_pin, machine.Pin.OUT), cfg.pixels)
        return Ring(np, cfg.pixels, len(cfg.rooms))
    channels = [
        machine.PWM(machine.Pin(pin, machine.Pin.OUT), freq=cfg.led_frequency, duty_u16=0)
        for pin in cfg.led_pins
    ]
    return RgbLed(channels[0], channels[1], channels[2], invert=cfg.led_invert)


def make_button(cfg, clock=time):
    if cfg.knock_pin is None:
        return None
    pull = machine.Pin.PULL_UP if cfg.knock_active_low else machine.Pin.PULL_DOWN
    pin = machine.Pin(cfg.knock_pin, machine.Pin.IN, pull)
    return Button(
        pin,
        clock,
        debounce_ms=cfg.knock_debounce_ms,
        min_interval_ms=cfg.knock_min_interval_s * 1000,
        active_low=cfg.knock_active_low,
    )


def make_tls(cfg):
    if not cfg.tls:
        return None
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cfg.ca_file:
        with open(cfg.ca_file, "rb") as f:
            context.load_verify_locations(cadata=f.read())
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        # Encrypted, but the broker is not authenticated: only for a trusted network.
        context.verify_mode = ssl.CERT_NONE
    return TlsContext(context)


def make_telemetry(wlan):
    def values():
        import gc

        out = {"free_mem": gc.mem_free()}
        try:
            out["rssi"] = wlan.status("rssi")
        except Exception:
            pass
        return out

    return values


def build(cfg, wdt=True):
    from umqtt.simple import MQTTClient

    wlan = network.WLAN(network.STA_IF)
    return App(
        cfg,
        clock=time,
        wlan=wlan,
        mqtt_factory=MQTTClient,
        leds=make_leds(cfg),
        wdt=machine.WDT(timeout=cfg.watchdog_s * 1000) if wdt else None,
        button=make_button(cfg),
        wall=NtpClock(cfg.ntp_host),
        rng=random_fraction,
        telemetry=make_telemetry(wlan),
        tls=make_tls(cfg),
    )


def safe_mode(cfg):
    """Hold the knock button while the board starts to get a REPL without the app."""
    button = make_button(cfg)
    return button is not None and button.pressed_now()


def main(path="config.json"):
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        # No watchdog yet: the REPL stays usable to fix config.json.
        print("empfang-light: config error:", exc)
        return
    if safe_mode(cfg):
        print("empfang-light: knock button held at start: safe mode, app not started")
        return
    app = build(cfg)
    try:
        app.run()
    except KeyboardInterrupt:
        print("empfang-light: stopped; the watchdog resets the board in", cfg.watchdog_s, "s")
        raise
    except Exception as exc:
        print("empfang-light: crashed:", repr(exc))
        time.sleep_ms(2000)
        machine.reset()
