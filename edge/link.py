"""A device's broker link, the same for the kiosk and the door display.

One paho 2.x client per device, logged in with the device's own credentials and the one
client id the broker binds to them. Its retained state topic says ``online`` with fresh
telemetry on every connect and ``offline`` as the last will and on a clean close, so
nobody waits for the will. Subscriptions are made on every connect (a reconnect follows
the same topics); paho reconnects with backoff; a refused login is reported once, with
the command that enrolls the device again. Callbacks run on paho's network thread.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import paho.mqtt.client as mqtt

from protocol import topics
from protocol.broker import BrokerAddress
from protocol.clientid import device_client_id
from protocol.payloads import DeviceKind, DeviceState

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, float], None]
ConnectionHandler = Callable[[bool], None]
Telemetry = Callable[[], Mapping[str, object]]
# CONNACK reasons that mean "this login is not (or no longer) valid": enroll again.
LOGIN_REFUSED = frozenset({4, 5, 134, 135})
OFFLINE_WAIT = 2.0  # seconds to wait for the broker to take the offline state


def _ignore(*_args: object) -> None:
    """A handler for what a device does not follow."""


class DeviceLink:
    """Owns one paho client for a device of `kind`; safe to close twice."""

    def __init__(
        self,
        broker: BrokerAddress,
        site: str,
        device: str,
        kind: DeviceKind,
        *,
        version: str = "0",
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler = _ignore,
        on_connection: ConnectionHandler = _ignore,
        on_refused: Callable[[bool], None] | None = None,
        telemetry: Telemetry | None = None,
        announce: bool = True,
        keepalive: int = 15,
        reconnect: tuple[int, int] = (1, 30),
        ca_file: str | None = None,
    ) -> None:
        self.broker = broker
        self.site = topics.check_slug(site, "site")
        self.device = topics.check_slug(device, "device")
        self.kind: DeviceKind = kind
        self.version = version
        self.subscriptions = tuple(subscriptions)
        self.keepalive = keepalive
        self.reconnect = reconnect
        self.ca_file = ca_file
        self._on_message = on_message
        self._on_connection = on_connection
        self._on_refused = on_refused or _ignore
        self._telemetry = telemetry
        self._announce = announce
        self._subs_lock = threading.Lock()
        self._connected = threading.Event()
        self._refused = False
        self._started = False
        self._closed = False
        # The broker binds the device's login to this one id, so a preview uses it as well
        # (and takes over the session of a device running with the same login).
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

    @property
    def refused(self) -> bool:
        """Whether the broker refused this device's login at the last attempt."""
        return self._refused

    def start(self) -> None:
        """Connect in the background; paho retries and reconnects with backoff from then on."""
        if self._started or self._closed:
            return
        client, broker = self._client, self.broker
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=self.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        offline = self._offline()
        if offline is not None:
            client.will_set(self.state_topic, offline, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=self.reconnect[0], max_delay=self.reconnect[1])
        client.connect_async(broker.host, broker.port, keepalive=self.keepalive)
        client.loop_start()
        self._started = True

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or `timeout` passed; True when connected."""
        return self._connected.wait(timeout)

    def is_connected(self) -> bool:
        """Whether the broker connection is up now."""
        return self._connected.is_set() and self._client.is_connected()

    def set_subscriptions(self, subscriptions: Sequence[str]) -> None:
        """Follow other topics from now on; also kept across reconnects."""
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

    def state(self) -> DeviceState:
        """The online state with fresh telemetry (a failing source sends none)."""
        facts: dict[str, object] = {}
        if self._telemetry is not None:
            try:
                facts.update(self._telemetry())
            except Exception:
                log.exception("could not gather telemetry")
        return DeviceState("online", self.kind, self.version, facts)

    def publish_state(self) -> None:
        """Publish this device's online state with fresh telemetry, retained."""
        if not self._announce or not self.is_connected():
            return
        self._client.publish(self.state_topic, self.state().to_json(), qos=1, retain=True)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Publish at QoS 1; False while disconnected or when paho refuses it."""
        if not self.is_connected():
            return False
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def close(self) -> None:
        """Say offline, disconnect and stop the network thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._started:
            return
        offline = self._offline()
        if offline is not None and self._client.is_connected():
            info = self._client.publish(self.state_topic, offline, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=OFFLINE_WAIT)
            except (RuntimeError, ValueError):
                log.warning("could not publish the offline state to %s", self.state_topic)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    def _offline(self) -> bytes | None:
        """The retained offline state; None for a preview, which says nothing."""
        if not self._announce:
            return None
        return DeviceState.offline_json(self.kind, self.version)

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
            if reason_code.value in LOGIN_REFUSED:
                if not self._refused:
                    log.error(
                        "the broker refused this %s's login (%s): it needs enrolling "
                        "(empfang-%s enroll --hub URL --code CODE)",
                        self.kind,
                        reason_code,
                        self.kind,
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
            log.exception("device handler failed")
