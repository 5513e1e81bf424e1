"""The display's broker link: paho 2.x with last will, retained device state, subscriptions
made on every connect, fast dead-broker detection, backoff reconnects and knocks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import paho.mqtt.client as mqtt

from display.config import MqttConfig
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.clientid import device_client_id
from protocol.payloads import DeviceState, Knock
from protocol.session import close_session, open_session

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, float], None]
ConnectionHandler = Callable[[bool], None]
# CONNACK reasons that mean "this login is not (or no longer) valid": enroll again.
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})


class DisplayLink:
    """Owns one paho client; callbacks run on paho's network thread."""

    def __init__(
        self,
        broker: BrokerAddress,
        site: str,
        device: str,
        subscriptions: Sequence[str],
        on_message: MessageHandler,
        on_connection: ConnectionHandler,
        *,
        timing: MqttConfig | None = None,
        version: str = "0",
        telemetry: Callable[[], Mapping[str, object]] | None = None,
        announce: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ca_file: str | None = None,
        on_refused: Callable[[bool], None] | None = None,
    ) -> None:
        self.broker = broker
        self.site = topics.check_slug(site, "site")
        self.device = topics.check_slug(device, "device")
        self.subscriptions = tuple(subscriptions)
        self.ca_file = ca_file
        self._on_refused = on_refused
        self._refused = False
        self._subs_lock = threading.Lock()
        self.timing = timing or MqttConfig()
        self.version = version
        self._on_message = on_message
        self._on_connection = on_connection
        self._telemetry = telemetry
        self._announce = announce
        self._clock = clock
        self._connected = threading.Event()
        self._started = False
        self._closed = False
        # The broker binds the device's login to this one id, so a preview uses it as well
        # (and takes over the session of a display running with the same login).
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device_client_id(self.site, self.device),
            protocol=mqtt.MQTTv311,
        )
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_connect_fail = self._handle_connect_fail

    @property
    def state_topic(self) -> str:
        """This device's retained state topic (its last will goes here)."""
        return topics.device_state(self.site, self.device)

    def start(self) -> None:
        """Connect in the background; paho retries and reconnects with backoff from then on."""
        if self._started or self._closed:
            return
        open_session(
            self._client,
            self.broker,
            will=self._offline(),
            keepalive=self.timing.keepalive,
            reconnect=(self.timing.reconnect_min, self.timing.reconnect_max),
            ca_file=self.ca_file,
        )
        self._started = True

    def _offline(self) -> tuple[str, bytes] | None:
        """The retained offline state (topic, payload); None for a preview, which says nothing."""
        if not self._announce:
            return None
        return self.state_topic, DeviceState.offline_json("display", self.version)

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or ``timeout`` passed; True when connected."""
        return self._connected.wait(timeout)

    def is_connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set() and self._client.is_connected()

    def set_subscriptions(self, subscriptions: Sequence[str]) -> None:
        """Follow other topics from now on (new rooms); also kept across reconnects."""
        with self._subs_lock:
            old, new = set(self.subscriptions), tuple(dict.fromkeys(subscriptions))
            self.subscriptions = new
            if not self.is_connected():
                return  # on_connect subscribes to the new list
            gone = [t for t in old if t not in new]
            added = [(t, 1) for t in new if t not in old]
            if gone:
                self._client.unsubscribe(gone)
            if added:
                self._client.subscribe(added)

    @property
    def refused(self) -> bool:
        """Whether the broker refused this display's login at the last attempt."""
        return self._refused

    def publish_state(self) -> None:
        """Publish this device's online state with fresh telemetry, retained."""
        if not self._announce or not self.is_connected():
            return
        telemetry = dict(self._telemetry()) if self._telemetry is not None else {}
        state = DeviceState("online", "display", self.version, telemetry)
        self._client.publish(self.state_topic, state.to_json(), qos=1, retain=True)

    def publish_knock(self, room: str) -> bool:
        """Knock on a room's door (QoS 1, not retained); False while disconnected."""
        knock = Knock(device=self.device, at=self._clock())
        if not self.is_connected():
            log.warning("knock on %s not sent: no broker connection", room)
            return False
        info = self._client.publish(topics.room_knock(self.site, room), knock.to_json(), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        """Say offline, disconnect and stop the network thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        close_session(self._client, self._offline())
        self._connected.clear()

    # --- paho callbacks (network thread) -------------------------------------------------
    def _handle_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value in _LOGIN_REFUSED:
                if not self._refused:
                    log.error(
                        "the broker refused this display's login (%s): it needs enrolling "
                        "(empfang-display enroll --hub URL --code CODE)",
                        reason_code,
                    )
                self._set_refused(True)
            else:
                log.error("the broker refused the connection: %s", reason_code)
            return
        log.info("connected to broker %s:%s", self.broker.host, self.broker.port)
        self._set_refused(False)
        with self._subs_lock:
            for topic in self.subscriptions:
                client.subscribe(topic, qos=1)
            self._connected.set()
        self.publish_state()
        self._safely(self._on_connection, True)

    def _handle_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason_code: mqtt.ReasonCode,
        _props: object,
    ) -> None:
        was_up = self._connected.is_set()
        self._connected.clear()
        if not self._closed:
            log.warning("lost the broker (%s); reconnecting", reason_code)
        if was_up:
            self._safely(self._on_connection, False)

    def _set_refused(self, refused: bool) -> None:
        if refused == self._refused:
            return
        self._refused = refused
        if self._on_refused is not None:
            self._safely(self._on_refused, refused)

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        log.warning("cannot reach broker %s:%s; retrying", self.broker.host, self.broker.port)

    def _handle_message(
        self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage
    ) -> None:
        received = time.perf_counter()
        self._safely(self._on_message, msg.topic, bytes(msg.payload), received)

    @staticmethod
    def _safely(handler: Callable[..., None], *args: object) -> None:
        try:
            handler(*args)
        except Exception:  # a handler bug must not kill the network thread
            log.exception("display handler failed")
