"""Knocks from door displays and lights reach the live staff pages; floods are dampened."""

from __future__ import annotations

from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from flask.testing import FlaskClient

from hub.live import Subscription
from hub.runtime import ROOMS_TOPIC, HubRuntime
from protocol import topics
from protocol.payloads import Knock
from tests.conftest import create_room
from tests.support.mosquitto import Mosquitto


def _knock(port: int, room: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topics.room_knock("default", room), payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _events(sub: Subscription, count: int, timeout: float = 5.0) -> list[dict]:
    events = []
    while len(events) < count:
        event = sub.get(timeout=timeout)
        if event is None:
            break
        if event["type"] == "knock":
            events.append(event)
    return events


def test_knock_reaches_live_pages_once_per_interval(
    mosquitto: Mosquitto, runtime: HubRuntime, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "sozialamt-2")
    knock = Knock(device="tuer-3og", at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC)).to_json()
    with runtime.live.subscribe(ROOMS_TOPIC) as sub:
        _knock(mosquitto.port, "sozialamt-2", b"{not json")  # ignored, no crash
        for _ in range(3):
            _knock(mosquitto.port, "sozialamt-2", knock)
        events = _events(sub, 2, timeout=1.5)
    assert events == [
        {"type": "knock", "room": "sozialamt-2", "device": "tuer-3og", "at": "2026-11-25T09:00:00Z"}
    ]
    assert runtime.health()["broker"]
