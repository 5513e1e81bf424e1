"""Room status over a real Mosquitto: retained, QoS 1, seq, will, republish."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from flask.testing import FlaskClient

from hub.app import close_app, create_app
from hub.db import session_scope, upgrade
from hub.runtime import HubRuntime
from hub.schedule import Schedule
from hub.services.rooms import RoomInput
from protocol import topics
from protocol.payloads import HubState, RoomStatus
from tests.conftest import create_room, make_settings
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher


def _status(msg_payload: bytes) -> RoomStatus:
    return RoomStatus.parse(msg_payload)


def test_checkin_publishes_retained_busy_status(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str], runtime: HubRuntime
) -> None:
    client, token = admin_client
    create_room(client, token, "sozialamt-2", name="Sozialamt – Beratung 2")
    topic = topics.room_status("default", "sozialamt-2")
    with Watcher(mosquitto.url, topic) as live:
        free = _status(live.wait(lambda m: _status(m.payload).state == "free").payload)
        response = client.post("/api/v1/rooms/sozialamt-2/checkin", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        busy_msg = live.wait(lambda m: _status(m.payload).state == "busy")
        busy = _status(busy_msg.payload)
        assert busy.occupants == 1
        assert busy.seq > free.seq
        assert busy.name == "Sozialamt – Beratung 2"
        assert busy.ttl == runtime.settings.status_ttl
    # A subscriber connecting afterwards gets the retained state at once.
    with Watcher(mosquitto.url, topic) as late:
        msg = late.wait(lambda m: True)
        assert msg.retain
        assert _status(msg.payload).state == "busy"
        assert _status(msg.payload).seq == busy.seq


def test_payload_carries_no_personal_data(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    with Watcher(mosquitto.url, topics.room_status("default", "raum-1")) as live:
        client.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": token})
        msg = live.wait(lambda m: _status(m.payload).state == "busy")
    body = json.loads(msg.payload)
    assert set(body) == {
        "v",
        "room",
        "name",
        "state",
        "occupants",
        "waiting",
        "since",
        "seq",
        "updated",
        "ttl",
    }
    assert "chefin" not in msg.payload.decode().lower()


def test_dnd_and_disable_change_state(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-2")
    headers = {"X-CSRFToken": token}
    with Watcher(mosquitto.url, topics.room_status("default", "raum-2")) as live:
        assert (
            client.put("/api/v1/rooms/raum-2/dnd", json={"dnd": True}, headers=headers).status_code
            == 200
        )
        live.wait(lambda m: _status(m.payload).state == "dnd")
        client.put("/api/v1/rooms/raum-2/enabled", json={"enabled": False}, headers=headers)
        closed = _status(live.wait(lambda m: _status(m.payload).state == "closed").payload)
        client.put("/api/v1/rooms/raum-2/enabled", json={"enabled": True}, headers=headers)
        reopened = _status(live.wait(lambda m: _status(m.payload).seq > closed.seq).payload)
        assert reopened.state == "free"


def test_delete_clears_retained_status(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "weg")
    topic = topics.room_status("default", "weg")
    with Watcher(mosquitto.url, topic) as live:
        live.wait(lambda m: bool(m.payload))
        assert client.delete("/api/v1/rooms/weg", headers={"X-CSRFToken": token}).status_code == 204
        live.wait(lambda m: m.payload == b"")


def test_hub_state_online_and_offline_on_clean_close(
    mosquitto: Mosquitto, runtime: HubRuntime
) -> None:
    with Watcher(mosquitto.url, topics.hub_state("default")) as watch:
        online = watch.wait(lambda m: bool(m.payload))
        assert HubState.parse(online.payload).state == "online"
        watch.clear()
        runtime.close()
        offline = watch.wait(lambda m: bool(m.payload))
        assert HubState.parse(offline.payload).state == "offline"


def test_republish_refreshes_updated_with_same_seq(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
    clock: ManualClock,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-3")
    with Watcher(mosquitto.url, topics.room_status("default", "raum-3")) as live:
        first = _status(live.wait(lambda m: True).payload)
        clock.advance(seconds=31)
        runtime.republish()
        again = _status(live.wait(lambda m: _status(m.payload).updated > first.updated).payload)
    assert again.seq == first.seq
    assert again.state == first.state


def test_periodic_republish_within_ttl_over_3(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = make_settings(tmp_path, mosquitto.url, status_ttl=3, tick_seconds=0.1)
    upgrade(settings.database_url)
    real_clock = ManualClock(datetime.now(UTC))
    app = create_app(settings, clock=real_clock)
    try:
        runtime = app.extensions["empfang"]
        with session_scope(runtime.sessions) as db:
            runtime.rooms.create(
                db, "takt", RoomInput("Takt", "meeting", "open", None, True, Schedule())
            )
        with Watcher(mosquitto.url, topics.room_status("default", "takt")) as live:
            live.wait(lambda m: True)
            live.clear()
            real_clock.advance(seconds=1)
            msg = live.wait(lambda m: True, timeout=3)  # ttl/3 = 1 s
            assert not msg.retain
    finally:
        close_app(app)
