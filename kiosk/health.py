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

from edge.link import DeviceLink
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.errors import PayloadError
from protocol.payloads import DeviceCommand, DeviceState

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
    """The kiosk's device link for its state and commands; callbacks run on paho's thread.

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
        self._telemetry = telemetry
        self._on_command = on_command
        self._every = every
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.cmd_topic = topics.device_cmd(site, device)
        self.link = DeviceLink(
            broker,
            site,
            device,
            "kiosk",
            version=version,
            subscriptions=[self.cmd_topic],
            on_message=self._handle_message,
            telemetry=self._facts,
            keepalive=keepalive,
            reconnect=(1, 30),
            ca_file=ca_file,
        )

    @property
    def state_topic(self) -> str:
        """This kiosk's retained state topic."""
        return self.link.state_topic

    def start(self) -> None:
        """Connect in the background and keep the state fresh."""
        if self._timer is not None or self._stop.is_set():
            return
        self.link.start()
        self._timer = threading.Thread(target=self._refresh, name="kiosk-health", daemon=True)
        self._timer.start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` passed."""
        return self.link.wait_connected(timeout)

    def state(self) -> DeviceState:
        """The online state with fresh telemetry."""
        return self.link.state()

    def publish_state(self) -> None:
        """Publish the online state now (retained, QoS 1), if connected."""
        self.link.publish_state()

    def close(self) -> None:
        """Say offline, disconnect and stop; safe to call twice."""
        self._stop.set()
        self.link.close()
        if self._timer is not None:
            self._timer.join(timeout=2)

    def _facts(self) -> dict[str, object]:
        facts: dict[str, object] = {"uptime_s": int(time.monotonic() - self._started_at)}
        temperature = cpu_temperature()
        if temperature is not None:
            facts["cpu_temp_c"] = temperature
        try:
            facts.update(self._telemetry())
        except Exception:  # the device facts still go out
            log.exception("could not gather telemetry")
        return facts

    def _refresh(self) -> None:
        while not self._stop.wait(self._every):
            self.publish_state()

    def _handle_message(self, topic: str, payload: bytes, _received: float) -> None:
        if topic != self.cmd_topic:
            return
        try:
            command = DeviceCommand.parse(payload)
        except PayloadError as exc:
            log.warning("ignored a malformed command: %s", exc)
            return
        log.info("command from the hub: %s", command.cmd)
        try:
            self._on_command(command)
        except Exception:
            log.exception("the %s command failed", command.cmd)
