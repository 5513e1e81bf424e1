# The status light's main loop.
#
# One step() never blocks longer than one socket timeout (config timing.socket_timeout_s,
# which the config loader keeps below half the watchdog timeout) and feeds the watchdog
# at its start, between blocking socket operations and at its end. Nothing waits in a
# loop: Wi-Fi association, reconnect backoff and ping answers are deadlines checked on
# every step, so the LEDs keep blinking while the light is offline.
#
# Everything the app touches is passed in, so the host tests can run it under CPython:
#   clock         ticks_ms, ticks_diff, ticks_add, sleep_ms (the time module on the device)
#   wlan          network.WLAN(network.STA_IF)
#   mqtt_factory  umqtt.simple.MQTTClient (or anything with its API)
#   leds          leds.Ring or leds.RgbLed
#   wdt           machine.WDT (optional)
#   button        button.Button (optional)
#   wall          object with now() -> UTC tuple or None, maintain() (NTP; optional)
#   rng           callable -> float in [0, 1) for backoff jitter
#   telemetry     callable -> dict of extra scalar telemetry (rssi, free memory, ...)
#   tls           net.TlsContext or None

import json

from empfang_light import VERSION
from empfang_light.backoff import Backoff
from empfang_light.clock import format_utc, in_window, local_minutes, seconds
from empfang_light.leds import blink_phase
from empfang_light.net import guard
from empfang_light.status import Board

WIFI_DOWN = "down"
WIFI_CONNECTING = "connecting"
WIFI_UP = "up"

MAX_MESSAGES_PER_STEP = 20
JITTER = 0.5
NO_CLOCK = "2000-01-01T00:00:00Z"  # knock time when NTP never set the clock
OFFLINE = b'{"state":"offline"}'


class App:
    def __init__(
        self,
        cfg,
        clock,
        wlan,
        mqtt_factory,
        leds,
        wdt=None,
        button=None,
        wall=None,
        rng=None,
        telemetry=None,
        tls=None,
        log=print,
    ):
        self.cfg = cfg
        self.clock = clock
        self.wlan = wlan
        self.mqtt_factory = mqtt_factory
        self.leds = leds
        self.wdt = wdt
        self.button = button
        self.wall = wall
        self.telemetry = telemetry
        self.tls = tls
        self.log = log
        self.board = Board(cfg.rooms, cfg.ttl_fallback_s, clock)
        self.mqtt_backoff = Backoff(cfg.backoff_base_ms, cfg.backoff_cap_ms, JITTER, rng)
        self.wifi_backoff = Backoff(cfg.backoff_base_ms, cfg.backoff_cap_ms, JITTER, rng)

        prefix = "empfang/v1/%s/" % cfg.site
        self.topic_hub = prefix + "hub/state"
        self.topic_state = prefix + "devices/%s/state" % cfg.device_id
        self.topic_rooms = {}
        for room in cfg.rooms:
            self.topic_rooms[prefix + "rooms/%s/status" % room] = room
        self.topic_knock = prefix + "rooms/%s/knock" % cfg.knock_room if cfg.knock_room else None

        now = clock.ticks_ms()
        self.client = None
        self.sock = None
        self.wifi = WIFI_DOWN
        self.wifi_at = now
        self.wifi_started = now
        self.mqtt_at = now
        self.ping_sent = None
        self.ping_reads = 0
        self.last_ping = now
        self.last_telemetry = now
        self.uptime_ms = 0
        self._last_tick = now
        self.shown = None
        self.last_error = None
        self.delays = []  # the most recent reconnect delays (ms), newest last
        self.stats = {
            "connects": 0,
            "attempts": 0,
            "lost": 0,
            "wifi_connects": 0,
            "pongs": 0,
            "knocks": 0,
            "knocks_dropped": 0,
        }

    # --- helpers ---------------------------------------------------------------------

    def _feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def _due(self, now, deadline):
        return self.clock.ticks_diff(now, deadline) >= 0

    def _say(self, message):
        if self.log is not None:
            self.log("empfang-light: " + message)

    def _wall(self):
        return self.wall.now() if self.wall is not None else None

    @property
    def connected(self):
        return self.client is not None

    # --- the loop --------------------------------------------------------------------

    def run(self):
        try:
            while True:
                self.run_once()
        finally:
            self.shutdown()

    def run_once(self):
        self.step()
        self.clock.sleep_ms(self.cfg.loop_ms)

    def step(self):
        self._feed()
        now = self.clock.ticks_ms()
        self.uptime_ms += max(0, self.clock.ticks_diff(now, self._last_tick))
        self._last_tick = now
        self._wifi_step(now)
        if self.wifi == WIFI_UP:
            if self.wall is not None:
                self.wall.maintain()
                self._feed()
            if self.client is None:
                if self._due(now, self.mqtt_at):
                    self._connect(now)
            else:
                self._poll(now)
        self._knock()
        self._feed()
        now = self.clock.ticks_ms()
        wall = self._wall()
        self.board.refresh(now, seconds(wall) if wall is not None else None)
        self._render(now, wall)

    # --- Wi-Fi -----------------------------------------------------------------------

    def _wifi_step(self, now):
        wlan = self.wlan
        if self.wifi == WIFI_UP:
            if not wlan.isconnected():
                self._say("Wi-Fi lost")
                if self.client is not None:
                    self._lost("Wi-Fi lost")
                self.wifi = WIFI_DOWN
                self.wifi_backoff.reset()
                self.wifi_at = now
            return
        if self.wifi == WIFI_CONNECTING:
            if wlan.isconnected():
                self.wifi = WIFI_UP
                self.wifi_backoff.reset()
                self.stats["wifi_connects"] += 1
                self.mqtt_at = now
                self._say("Wi-Fi up")
            elif self.clock.ticks_diff(now, self.wifi_started) > self.cfg.wifi_timeout_s * 1000:
                try:
                    wlan.disconnect()
                except OSError:
                    pass
                self.wifi = WIFI_DOWN
                delay = self.wifi_backoff.next()
                self.wifi_at = self.clock.ticks_add(now, delay)
                self._say("Wi-Fi did not connect; next try in %d ms" % delay)
            return
        if not self._due(now, self.wifi_at):
            return
        if wlan.isconnected():
            self.wifi = WIFI_CONNECTING  # becomes UP on the next step
            return
        try:
            wlan.active(True)
            wlan.connect(self.cfg.wifi_ssid, self.cfg.wifi_password)
        except OSError as exc:
            delay = self.wifi_backoff.next()
            self.wifi_at = self.clock.ticks_add(now, delay)
            self._say("Wi-Fi error %r; next try in %d ms" % (exc, delay))
            return
        self.wifi = WIFI_CONNECTING
        self.wifi_started = now

    # --- MQTT ------------------------------------------------------------------------

    def _connect(self, now):
        cfg = self.cfg
        self.stats["attempts"] += 1
        client = None
        try:
            client = self.mqtt_factory(
                cfg.client_id,
                cfg.broker_host,
                port=cfg.broker_port,
                user=cfg.username,
                password=cfg.password,
                keepalive=cfg.keepalive_s,
                ssl=self.tls,
            )
            client.set_callback(self._on_message)
            client.set_last_will(self.topic_state, OFFLINE, retain=True, qos=1)
            client.connect(clean_session=True, timeout=cfg.socket_timeout_s)
            self.stats["connects"] += 1
            self.sock = guard(client, cfg.socket_timeout_s, self.tls)
            self.client = client
            self.board.connection(True)
            self._feed()
            client.subscribe(self.topic_hub, 1)
            for topic in self.topic_rooms:
                self._feed()
                client.subscribe(topic, 1)
            self._feed()
            self._publish_state()
        except Exception as exc:  # OSError, MQTTException, or a short read
            self.client = client
            self._lost(exc)
            return
        self.ping_sent = None
        self.last_ping = now
        self.last_telemetry = now
        self._say("connected to %s:%d" % (cfg.broker_host, cfg.broker_port))

    def _lost(self, reason):
        """Drop the connection (if any), show UNKNOWN, and schedule the next attempt."""
        client = self.client
        self.client = None
        self.sock = None
        self.ping_sent = None
        self.board.connection(False)
        if client is not None:
            try:
                # Just close: a DISCONNECT packet would cancel the "offline" last will.
                client.sock.close()
            except Exception:  # the socket may be half gone already, or never made
                pass
        self.stats["lost"] += 1
        self.last_error = repr(reason)
        delay = self.mqtt_backoff.next()
        self.delays.append(delay)
        if len(self.delays) > 20:
            self.delays.pop(0)
        # Counted from now, not from the start of the step: a connect attempt may have
        # used up a whole socket timeout already.
        self.mqtt_at = self.clock.ticks_add(self.clock.ticks_ms(), delay)
        self._say("no broker connection (%r); next try in %d ms" % (reason, delay))

    def _poll(self, now):
        client = self.client
        sock = self.sock
        try:
            for _ in range(MAX_MESSAGES_PER_STEP):
                if client.check_msg() is None:
                    break
            if self.ping_sent is not None:
                # umqtt.simple swallows the PINGRESP (check_msg() returns None for it, and
                # publish()/subscribe() skip it while they wait for their own ack), so
                # any data read from the broker since the PINGREQ counts as the answer.
                if sock.reads > self.ping_reads:
                    self._pong()
                elif self.clock.ticks_diff(now, self.ping_sent) > self.cfg.ping_timeout_s * 1000:
                    raise OSError("no answer to PINGREQ within %d s" % self.cfg.ping_timeout_s)
            elif self.clock.ticks_diff(now, self.last_ping) >= self.cfg.ping_s * 1000:
                self.ping_reads = sock.reads
                client.ping()
                self.ping_sent = now
                self.last_ping = now
            if self.clock.ticks_diff(now, self.last_telemetry) >= self.cfg.telemetry_s * 1000:
                self.last_telemetry = now
                self._feed()
                self._publish_state()
        except Exception as exc:
            self._lost(exc)

    def _pong(self):
        self.ping_sent = None
        self.stats["pongs"] += 1
        # The link has carried a full round trip: start the next outage's backoff afresh.
        self.mqtt_backoff.reset()

    def _on_message(self, topic, msg):
        # Called from inside check_msg()/subscribe(); must never raise.
        try:
            if not isinstance(topic, str):
                topic = bytes(topic).decode()
            if topic == self.topic_hub:
                self.board.on_hub_state(msg)
                return
            room = self.topic_rooms.get(topic)
            if room is not None:
                self.board.on_status(room, msg, self.clock.ticks_ms())
        except Exception:
            self.board.malformed += 1

    def telemetry_values(self):
        values = {
            "uptime_s": self.uptime_ms // 1000,
            "rooms": len(self.cfg.rooms),
            "connects": self.stats["connects"],
            "lost": self.stats["lost"],
            "malformed": self.board.malformed,
        }
        if self.telemetry is not None:
            try:
                values.update(self.telemetry())
            except Exception:  # telemetry is a nicety; never let it break the light
                pass
        return values

    def _publish_state(self):
        body = {
            "state": "online",
            "kind": "light",
            "version": VERSION,
            "telemetry": self.telemetry_values(),
        }
        self.client.publish(self.topic_state, json.dumps(body).encode(), retain=True, qos=1)

    # --- knock -----------------------------------------------------------------------

    def _knock(self):
        if self.button is None or not self.button.poll():
            return
        if self.client is None:
            self.stats["knocks_dropped"] += 1
            self._say("knock dropped: not connected")
            return
        wall = self._wall()
        body = {"device": self.cfg.device_id, "at": format_utc(wall) if wall else NO_CLOCK}
        try:
            self.client.publish(self.topic_knock, json.dumps(body).encode(), retain=False, qos=1)
            self.stats["knocks"] += 1
        except Exception as exc:
            self.stats["knocks_dropped"] += 1
            self._lost(exc)

    # --- LEDs ------------------------------------------------------------------------

    def quiet(self, wall):
        window = self.cfg.quiet_hours
        if window is None or wall is None:
            return False  # without a clock, quiet hours are ignored
        minute = local_minutes(wall, self.cfg.utc_offset_minutes, self.cfg.dst)
        return in_window(minute, window)

    def level(self, wall):
        level = self.cfg.brightness
        if self.quiet(wall):
            level = level * self.cfg.quiet_brightness // 100
        return level

    def _render(self, now, wall):
        self.shown = self.leds.render(self.board.states(), self.level(wall), blink_phase(now))

    def shutdown(self):
        """A clean stop (Ctrl-C): say offline, disconnect, switch the LEDs off."""
        client = self.client
        self.client = None
        if client is not None:
            try:
                client.publish(self.topic_state, OFFLINE, retain=True, qos=0)
                client.disconnect()
            except Exception:
                pass
        self.board.connection(False)
        try:
            self.leds.off()
        except Exception:
            pass
