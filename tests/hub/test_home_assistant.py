"""Home Assistant discovery against a real Mosquitto: one retained config per room.

Building automation subscribes to ``homeassistant/#`` and learns every room's occupancy
sensor from the retained configs; a rename republishes the room's config, deleting a room
clears it, and a hub set to publish none leaves the prefix empty.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from hub.config import Settings
from hub.db import upgrade
from protocol import topics
from tests.conftest import create_room, make_settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Received, Watcher

SITE = "default"


def _configs(watcher: Watcher, rooms: set[str]) -> dict[str, dict[str, object]]:
    """Wait until a non-empty config of each room arrived; the latest of each, by room."""
    wanted = {topics.home_assistant_discovery_topic(SITE, room): room for room in rooms}
    latest: dict[str, dict[str, object]] = {}

    def complete(message: Received) -> bool:
        if message.topic in wanted and message.payload:
            latest[wanted[message.topic]] = json.loads(message.payload)
        return set(latest) == rooms

    watcher.wait(complete)
    return latest


def test_each_room_has_one_retained_occupancy_config(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "sozialamt-2", name="Sozialamt – Beratung 2")
    create_room(client, token, "bauamt")
    with Watcher(mosquitto.url, "homeassistant/#") as first:
        _configs(first, {"sozialamt-2", "bauamt"})
    # A subscriber that arrives later gets every config from the broker's retained store.
    with Watcher(mosquitto.url, "homeassistant/#") as late:
        configs = _configs(late, {"sozialamt-2", "bauamt"})
        for message in late.messages:
            assert message.retain and message.topic.startswith(
                "homeassistant/binary_sensor/empfang_default/"
            )
    config = configs["sozialamt-2"]
    assert config["name"] == "Sozialamt – Beratung 2"
    assert config["device_class"] == "occupancy"
    assert config["unique_id"] == "empfang_default_sozialamt-2"
    assert config["state_topic"] == topics.room_status(SITE, "sozialamt-2")
    assert config["availability_topic"] == topics.hub_state(SITE)
    assert configs["bauamt"]["unique_id"] == "empfang_default_bauamt"
    # Only rooms, no person: the configs name no one who is in a room.
    assert set(configs["bauamt"]) >= {"value_template", "expire_after", "device"}


def test_a_rename_republishes_and_a_deletion_clears_the_config(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    headers = {"X-CSRFToken": token}
    create_room(client, token, "raum-1", name="Raum 1")
    create_room(client, token, "raum-2", name="Raum 2")
    topic = topics.home_assistant_discovery_topic(SITE, "raum-1")
    with Watcher(mosquitto.url, "homeassistant/#") as watch:
        _configs(watch, {"raum-1", "raum-2"})
        renamed = client.patch("/api/v1/rooms/raum-1", json={"name": "Bürgerbüro"}, headers=headers)
        assert renamed.status_code == 200, renamed.get_json()
        watch.wait(
            lambda m: m.topic == topic and bool(m.payload)
            and json.loads(m.payload)["name"] == "Bürgerbüro"
        )  # fmt: skip
        assert client.delete("/api/v1/rooms/raum-1", headers=headers).status_code == 204
        watch.wait(lambda m: m.topic == topic and m.payload == b"")
    with Watcher(mosquitto.url, "homeassistant/#") as late:
        _configs(late, {"raum-2"})
        assert topic not in {m.topic for m in late.messages}


class TestWithoutDiscovery:
    """A hub whose prefix is empty (building automation not wanted)."""

    @pytest.fixture
    def settings(self, tmp_path: Path, mosquitto: Mosquitto) -> Settings:
        """The test's hub settings with discovery switched off."""
        result = make_settings(tmp_path, mosquitto.url, home_assistant_prefix="")
        upgrade(result.database_url)
        return result

    def test_no_config_is_published(
        self, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
    ) -> None:
        client, token = admin_client
        with Watcher(mosquitto.url, "homeassistant/#") as watch:
            create_room(client, token, "still")
            with Watcher(mosquitto.url, topics.room_status(SITE, "still")) as status:
                status.wait(lambda m: bool(m.payload))
            # The hub publishes a config just after the room's status, on the same
            # connection, so it would have reached the broker before this round trip.
            with Watcher(mosquitto.url, topics.room_status(SITE, "still")) as again:
                again.wait(lambda m: bool(m.payload))
            assert watch.messages == []
