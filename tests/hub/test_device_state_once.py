"""Two hub processes on one database hear every device state; only one records it.

Both feed their own fleet pages from the same broker message, but the database is
written once: the second process finds the same state recorded moments ago.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from hub.app import close_app, create_app
from hub.config import Settings
from hub.runtime import DEVICES_TOPIC, HubRuntime
from protocol import topics
from protocol.payloads import DeviceState
from tests.conftest import create_room
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def second(settings: Settings, app: Flask) -> Iterator[HubRuntime]:
    """Another hub process on the same database and broker."""
    other = create_app(settings)
    runtime: HubRuntime = other.extensions["empfang"]
    assert runtime.bridge.wait_connected(10)
    try:
        yield runtime
    finally:
        close_app(other)


def _updates(runtime: HubRuntime, seen: list[str]) -> None:
    """Record each write that changed a row of the devices table in `runtime`'s database."""

    def count(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVICES") and cursor.rowcount > 0:
            seen.append(statement)

    event.listen(runtime.engine, "after_cursor_execute", count)


def test_a_state_heard_by_two_processes_is_written_once(
    runtime: HubRuntime,
    second: HubRuntime,
    admin_client: tuple[FlaskClient, str],
    mosquitto: Mosquitto,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    created = client.post(
        "/api/v1/devices",
        json={"kind": "display", "name": "Tür 1", "location": "Haus A", "rooms": ["raum-1"]},
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201, created.get_json()
    device = created.get_json()["id"]
    writes: list[str] = []
    _updates(runtime, writes)
    _updates(second, writes)
    pages = [hub.live.subscribe(DEVICES_TOPIC) for hub in (runtime, second)]
    inboxes = [page.__enter__() for page in pages]
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        state = DeviceState("online", "display", "1.0", {"rooms": 1})
        publisher.publish(
            topics.device_state("default", device), state.to_json(), qos=1
        ).wait_for_publish(5)
        heard = [inbox.get(timeout=10) for inbox in inboxes]
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        for page in pages:
            page.__exit__(None, None, None)
    # Both processes' fleet pages learn of it ...
    for event_ in heard:
        assert event_ is not None and event_["device"]["online"] is True
        assert event_["device"]["version"] == "1.0"
    # ... and the database was written once, with what the device said.
    assert len(writes) == 1, writes
    shown = client.get(f"/api/v1/devices/{device}").get_json()
    assert shown["online"] is True and shown["telemetry"] == {"rooms": 1}
