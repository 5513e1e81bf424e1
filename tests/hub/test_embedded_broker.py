"""Tests for the embedded amqtt broker used as the hub's zero-setup default."""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from hub.embedded_broker import EmbeddedBroker

HOST = "127.0.0.1"
WAIT = 5.0


def _free_port() -> int:
    """Return a TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    """Return True if something accepts TCP connections on the port."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


class _Client:
    """A paho 2.x client that records every message it receives, from the moment it connects."""

    def __init__(self, port: int, name: str) -> None:
        """Connect to the broker on the port and start the network loop."""
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.paho = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}"
        )
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = self._on_message
        self.paho.connect(HOST, port, keepalive=30)
        self.paho.loop_start()
        if not self._connected.wait(WAIT):
            self.close()
            pytest.fail(f"{name} could not connect to the embedded broker on port {port}")

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if not getattr(reason, "is_failure", True):
            self._connected.set()

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _m: int, _r: object, _p: object) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def subscribe(self, topic: str) -> None:
        """Subscribe with QoS 1 and wait for the SUBACK."""
        self._subscribed.clear()
        result, _mid = self.paho.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self._subscribed.wait(WAIT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Publish with QoS 1 and wait for the PUBACK."""
        info = self.paho.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"QoS 1 publish to {topic} was not acknowledged"

    def next_message(self) -> mqtt.MQTTMessage:
        """Return the next received message, failing after a bounded wait."""
        try:
            return self.messages.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no message received within {WAIT}s")

    def close(self) -> None:
        """Disconnect and stop the network loop."""
        self.paho.disconnect()
        self.paho.loop_stop()


def test_url_and_idempotent_stop_without_start() -> None:
    broker = EmbeddedBroker(port=18830)
    assert broker.url == "mqtt://127.0.0.1:18830"
    broker.stop()
    broker.stop()


def test_retained_and_live_messages() -> None:
    port = _free_port()
    broker = EmbeddedBroker(HOST, port)
    started = time.monotonic()
    broker.start()
    clients: list[_Client] = []
    try:
        assert time.monotonic() - started < WAIT
        assert broker.url == f"mqtt://{HOST}:{port}"

        publisher = _Client(port, "publisher")
        clients.append(publisher)
        publisher.publish("empfang/test/room/state", b"occupied", retain=True)

        late = _Client(port, "late-subscriber")
        clients.append(late)
        late.subscribe("empfang/test/room/#")
        retained = late.next_message()
        assert retained.topic == "empfang/test/room/state"
        assert retained.payload == b"occupied"
        assert retained.retain

        # A client that never subscribes to the room topics must not get their retained
        # message (amqtt 0.12 leaks it on CONNECT without the EmbeddedBroker fix).
        live = _Client(port, "live-subscriber")
        clients.append(live)
        live.subscribe("empfang/test/live")
        publisher.publish("empfang/test/live", b"ping", retain=False)
        message = live.next_message()
        assert (message.topic, message.payload, message.retain) == (
            "empfang/test/live",
            b"ping",
            False,
        )
        assert live.messages.empty()
    finally:
        for client in clients:
            client.close()
        broker.stop()


def test_stop_frees_port_and_start_on_busy_port_fails() -> None:
    port = _free_port()
    first = EmbeddedBroker(HOST, port)
    second = EmbeddedBroker(HOST, port)
    third = EmbeddedBroker(HOST, port)
    try:
        first.start()
        assert first.running
        _Client(port, "first").close()
        with pytest.raises(RuntimeError, match=str(port)):
            third.start()
        assert not third.running

        first.stop()
        first.stop()  # idempotent
        assert not first.running
        assert not _listening(port)

        with second:
            assert second.running
            _Client(port, "after-restart").close()
        assert not second.running
    finally:
        first.stop()
        second.stop()
        third.stop()
