"""The hub's MQTT connection: publishes hub and room state, feeds live pages from events."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt

from hub.broker_probe import BrokerProbe
from hub.mqtt_session import close_session, open_session
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.errors import PayloadError, TopicError
from protocol.payloads import (
    DeviceCommand,
    DeviceConfig,
    DeviceState,
    HubEvent,
    HubState,
    Knock,
    RoomStatus,
    Signal,
    home_assistant_discovery,
)

log = logging.getLogger(__name__)

StatusHandler = Callable[[str, RoomStatus | None], None]
KnockHandler = Callable[[str, Knock], None]
EventHandler = Callable[[HubEvent], None]
SignalHandler = Callable[[str, str, Signal], None]
# (device id, its state or None when cleared, whether the broker replayed a retained copy)
DeviceStateHandler = Callable[[str, DeviceState | None, bool], None]


class MqttBridge:
    """Owns one paho client: last will, retained state, subscriptions and reconnects."""

    def __init__(
        self,
        url: str,
        site: str,
        version: str,
        on_status: StatusHandler,
        broker_timeout: float,
        on_connected: Callable[[], None] | None = None,
        on_knock: KnockHandler | None = None,
        on_event: EventHandler | None = None,
        on_signal: SignalHandler | None = None,
        on_device_state: DeviceStateHandler | None = None,
        discovery_prefix: str = "",
    ) -> None:
        self.address = BrokerAddress.parse(url, "EMPFANG_MQTT_URL")
        self.site = site
        self.version = version
        self._on_status = on_status
        self._on_connected = on_connected
        self._on_knock = on_knock
        self._on_event = on_event
        self._on_signal = on_signal
        self._on_device_state = on_device_state
        # Home Assistant discovery under this prefix ("" for none): rooms whose config this
        # connection has published, with the name it carries (a rename publishes it again).
        self.discovery_prefix = discovery_prefix
        self._announced: dict[str, str] = {}
        self._announced_lock = threading.Lock()
        self._connected = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"empfang-hub-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        self._client.max_queued_messages_set(10000)
        self._probe = BrokerProbe(self._send_probe, broker_timeout)
        self._started = False

    def start(self) -> None:
        """Connect in the background; paho reconnects with backoff from then on."""
        if self._started:
            return
        client = self._client
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        # A short cap: displays must show the right state within seconds of a broker restart.
        offline = (topics.hub_state(self.site), HubState.offline_json())
        open_session(client, self.address, will=offline, keepalive=30, reconnect=(1, 2))
        self._probe.start()
        self._started = True

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` seconds passed; True when connected."""
        return self._connected.wait(timeout)

    def is_connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set() and self._client.is_connected()

    def is_answering(self) -> bool:
        """Whether the broker is connected and acknowledged the hub's probe within the bound."""
        return self.is_connected() and self._probe.answering()

    def publish_status(self, status: RoomStatus) -> None:
        """Publish a room's status, retained, QoS 1 (and its discovery config when new)."""
        self._client.publish(
            topics.room_status(self.site, status.room), status.to_json(), qos=1, retain=True
        )
        if self.discovery_prefix:
            self._announce(status)

    def _announce(self, status: RoomStatus) -> None:
        """Publish the room's Home Assistant config, retained, once per connection and name."""
        with self._announced_lock:
            if self._announced.get(status.room) == status.name:
                return
            self._announced[status.room] = status.name
        config = home_assistant_discovery(self.site, status, version=self.version)
        self._client.publish(
            topics.home_assistant_discovery_topic(self.site, status.room, self.discovery_prefix),
            json.dumps(config, ensure_ascii=False).encode(),
            qos=1,
            retain=True,
        )

    def publish_event(self, event: HubEvent) -> None:
        """Tell every hub process (this one included) that shared state changed."""
        self._client.publish(topics.hub_events(self.site), event.to_json(), qos=1)

    def publish_signal(self, session: str, to: str, signal: Signal) -> None:
        """Relay a WebRTC message to a participant, whichever hub process holds them."""
        self._client.publish(topics.signal(self.site, session, to), signal.to_json(), qos=1)

    def publish_device_config(self, device: str, config: DeviceConfig) -> None:
        """Publish a device's configuration, retained, QoS 1; running devices follow it."""
        self._client.publish(
            topics.device_config(self.site, device), config.to_json(), qos=1, retain=True
        )

    def clear_device(self, device: str) -> None:
        """Remove a revoked device's retained configuration and state."""
        for topic in (
            topics.device_config(self.site, device),
            topics.device_state(self.site, device),
        ):
            self._client.publish(topic, b"", qos=1, retain=True)

    def publish_device_command(self, device: str, command: DeviceCommand) -> None:
        """Send a one-off command to a device (QoS 1, not retained)."""
        self._client.publish(topics.device_cmd(self.site, device), command.to_json(), qos=1)

    def clear_status(self, room: str) -> None:
        """Remove a deleted room's retained status (and its discovery config)."""
        self._client.publish(topics.room_status(self.site, room), b"", qos=1, retain=True)
        if self.discovery_prefix:
            with self._announced_lock:
                self._announced.pop(room, None)
            topic = topics.home_assistant_discovery_topic(self.site, room, self.discovery_prefix)
            self._client.publish(topic, b"", qos=1, retain=True)

    def stop(self) -> None:
        """Say offline, then disconnect cleanly; safe to call twice."""
        if not self._started:
            return
        self._started = False
        self._probe.stop()
        close_session(self._client, (topics.hub_state(self.site), HubState.offline_json()))
        self._connected.clear()

    def _send_probe(self) -> mqtt.MQTTMessageInfo | None:
        """Publish one liveness probe on the hub-only topic; None when not connected."""
        if not self.is_connected():
            return None
        return self._client.publish(topics.hub_probe(self.site), b"", qos=1)

    # paho callbacks run on the network thread
    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the hub: %s", reason_code)
            return
        self._probe.connected()
        client.publish(
            topics.hub_state(self.site),
            HubState(state="online", version=self.version).to_json(),
            qos=1,
            retain=True,
        )
        client.subscribe(
            [
                (topics.room_status_filter(self.site), 1),
                (topics.room_knock_filter(self.site), 1),
                (topics.hub_events(self.site), 1),
                (topics.signal_filter(self.site), 1),
                *([(topics.device_state_filter(self.site), 1)] if self._on_device_state else []),
            ]
        )
        with self._announced_lock:
            self._announced.clear()  # a broker without persistence forgot them
        self._connected.set()
        log.info("connected to broker %s:%s", self.address.host, self.address.port)
        if self._on_connected:
            self._on_connected()

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        self._connected.clear()
        if self._started:
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        try:
            topic = topics.parse_topic(msg.topic)
            if topic.site != self.site:
                return
            if topic.kind == "signal":
                if self._on_signal is not None:
                    signal = Signal.parse(msg.payload)
                    self._call(self._on_signal, str(topic.key), str(topic.extra), signal)
                return
            if topic.kind == "hub" and topic.leaf == "events":
                if self._on_event is not None:
                    self._call(self._on_event, HubEvent.parse(msg.payload))
                return
            if topic.kind == "device":
                if topic.leaf == "state" and self._on_device_state is not None:
                    state = DeviceState.parse(msg.payload) if msg.payload else None
                    self._call(self._on_device_state, str(topic.key), state, bool(msg.retain))
                return
            if topic.kind != "room":
                return
            room = str(topic.key)
            if topic.leaf == "knock":
                knock = Knock.parse(msg.payload)
                if self._on_knock is not None:
                    self._call(self._on_knock, room, knock)
                return
            if topic.leaf != "status":
                return
            status = RoomStatus.parse(msg.payload) if msg.payload else None
            if status is not None and status.room != room:
                raise PayloadError(f"room: {status.room!r} does not match the topic")
        except (TopicError, PayloadError) as exc:
            log.warning("ignored message on %s: %s", msg.topic, exc)
            return
        self._call(self._on_status, room, status)

    @staticmethod
    def _call(handler: Callable[..., None], *args: object) -> None:
        try:
            handler(*args)
        except Exception:  # a handler bug must not kill the network thread
            log.exception("handler %r failed", handler)
