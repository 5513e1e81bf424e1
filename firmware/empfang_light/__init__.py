# empfang status light: MicroPython application for ESP32 boards.
#
# Modules (all but device.py run unchanged under CPython for the host tests):
#   config   load and validate config.json
#   status   parse room status / hub state payloads, staleness, colour priority
#   backoff  exponential backoff with jitter
#   clock    UTC dates, quiet hours, EU summer time (no time zone database on the device)
#   leds     colours on a single RGB LED (PWM) or a WS2812 ring
#   button   debounced, rate-limited knock button
#   net      socket guard for umqtt.simple (timeouts, inbound traffic counter)
#   app      the main loop: Wi-Fi, MQTT, watchdog, rendering
#   device   builds the real hardware objects and runs the app (device only)

VERSION = "0.1.0"
