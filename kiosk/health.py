"""The kiosk's health over MQTT: its retained device state and the hub's commands.

Publishes ``devices/<id>/state`` (retained, QoS 1; the last will says ``offline``) with
the version, whether the camera works, the CPU temperature where readable and the uptime,
and follows ``devices/<id>/cmd`` (``reload``, ``identify``, ``reset``). paho-mqtt 2.x: the
subscription is made in ``on_connect`` so a reconnect re-subscribes; ``loop_start()``
reconnects with backoff. No personal data is ever published: no names, no concerns, no
ticket, only device facts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import paho.mqtt.client as mqtt

from protocol import topics
from protocol.broker import BrokerAddress
from protocol.clientid import device_client_id
from protocol.errors import PayloadError
from protocol.payloads import DeviceCommand, DeviceState
from protocol.session import close_session, open_session

log = logging.getLogger(__name__)

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
STATE_EVERY = 30.0  # seconds between state refreshes


def cpu_temperature(path: Path = THERMAL) -> float | None:
    """The CPU temperature in °C, or None where it cannot be read (not a Pi, a container)."""
    try:
        return round(int(path.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


class Health:
    """One paho client for the kiosk's state and commands; callbacks run on paho's thread.

    `telemetry()` is asked for fresh facts at every publish (every `every` seconds and on
    `publish_state()`); `on_command` receives each valid command.
    """

    def __init__(
        self,
        broker: BrokerAddress,
        site: str,
        device: str,
        *,
        version: str,
        telemetry: Callable[[], Mapping[str, object]],
        on_command: Callable[[DeviceCommand], None],
        ca_file: str | None = None,
        every: float = STATE_EVERY,
        keepalive: int = 15,
    ) -> None:
        self.broker = broker
        self.site = topics.check_slug(site, "site")
        self.device = topics.check_slug(device, "device")
        self.version = version
        self._telemetry = telemetry
        self._on_command = on_command
        self._ca_file = ca_file
        self._every = every
        self._keepalive = keepalive
        self._started_at = time.monotonic()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._started = False
        self._closed = False
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device_client_id(self.site, self.device),  # the login's only one
            protocol=mqtt.MQTTv311,
        )
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message

    @property
    def state_topic(self) -> str:
        """This kiosk's retained state topic."""
        return topics.device_state(self.site, self.device)

    @property
    def cmd_topic(self) -> str:
        """Where the hub sends this kiosk commands."""
        return topics.device_cmd(self.site, self.device)

    def start(self) -> None:
        """Connect in the background and keep the state fresh."""
        if self._started or self._closed:
            return
        open_session(
            self._client,
            self.broker,
            will=self._offline(),
            keepalive=self._keepalive,
            reconnect=(1, 30),
            ca_file=self._ca_file,
        )
        self._timer = threading.Thread(target=self._refresh, name="kiosk-health", daemon=True)
        self._timer.start()
        self._started = True

    def _offline(self) -> tuple[str, bytes]:
        """The retained offline state: topic and payload (also the last will)."""
        return self.state_topic, DeviceState.offline_json("kiosk", self.version)

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` passed."""
        return self._connected.wait(timeout)

    def state(self) -> DeviceState:
        """The online state with fresh telemetry."""
        facts: dict[str, object] = {"uptime_s": int(time.monotonic() - self._started_at)}
        temperature = cpu_temperature()
        if temperature is not None:
            facts["cpu_temp_c"] = temperature
        try:
            facts.update(self._telemetry())
        except Exception:
            log.exception("could not gather telemetry")
        return DeviceState("online", "kiosk", self.version, facts)

    def publish_state(self) -> None:
        """Publish the online state now (retained, QoS 1), if connected."""
        if not self._connected.is_set():
            return
        self._client.publish(self.state_topic, self.state().to_json(), qos=1, retain=True)

    def close(self) -> None:
        """Say offline, disconnect and stop; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if not self._started:
            return
        close_session(self._client, self._offline())
        if self._timer is not None:
            self._timer.join(timeout=2)

    def _refresh(self) -> None:
        while not self._stop.wait(self._every):
            self.publish_state()

    # ---- paho callbacks (network thread) ------------------------------------------------
    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        if reason_code.is_failure:
            log.error("the broker refused the kiosk's connection: %s", reason_code)
            return
        log.info("connected to broker %s:%s", self.broker.host, self.broker.port)
        client.subscribe(self.cmd_topic, qos=1)
        self._connected.set()
        self.publish_state()

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        self._connected.clear()
        if not self._closed:
            log.warning("broker connection lost (%s); paho reconnects", reason_code)

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        if message.topic != self.cmd_topic:
            return
        try:
            command = DeviceCommand.parse(message.payload)
        except PayloadError as exc:
            log.warning("ignored a malformed command: %s", exc)
            return
        log.info("command from the hub: %s", command.cmd)
        try:
            self._on_command(command)
        except Exception:
            log.exception("the %s command failed", command.cmd)
