"""Configuration sources, the OpenAPI document, health, and hostile MQTT input."""

from __future__ import annotations

import re
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.config import ConfigError, ensure_secret_key, load_settings
from hub.runtime import HubRuntime
from protocol import topics
from tests.conftest import create_room
from tests.support.mosquitto import Mosquitto
from tests.support.net import wait_for


def test_environment_wins_over_toml(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nsite = "landkreis"\nstatus_ttl = 60\ntimezone = "Europe/Vienna"\n')
    settings = load_settings(
        environ={"EMPFANG_CONFIG": str(toml), "EMPFANG_SITE": "kreis-nord"},
        instance_path=tmp_path,
    )
    assert settings.site == "kreis-nord"
    assert settings.status_ttl == 60
    assert settings.timezone == "Europe/Vienna"
    assert settings.database_url == f"sqlite:///{tmp_path / 'empfang.db'}"
    assert settings.embedded_broker
    assert settings.effective_mqtt_url == "mqtt://127.0.0.1:1883"


def test_embedded_port_setting(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"EMPFANG_EMBEDDED_MQTT_PORT": "18999"}, instance_path=tmp_path
    )
    assert settings.effective_mqtt_url == "mqtt://127.0.0.1:18999"


@pytest.mark.parametrize(
    ("environ", "name"),
    [
        ({"EMPFANG_SITE": "Bad Site"}, "EMPFANG_SITE"),
        ({"EMPFANG_TIMEZONE": "Mars/Olympus"}, "EMPFANG_TIMEZONE"),
        ({"EMPFANG_STATUS_TTL": "soon"}, "EMPFANG_STATUS_TTL"),
        ({"EMPFANG_STATUS_TTL": "1"}, "EMPFANG_STATUS_TTL"),
        ({"EMPFANG_MQTT_URL": "http://broker"}, "EMPFANG_MQTT_URL"),
        ({"EMPFANG_EMBEDDED_MQTT_PORT": "70000"}, "EMPFANG_EMBEDDED_MQTT_PORT"),
        ({"EMPFANG_CONFIG": "/nonexistent/hub.toml"}, "EMPFANG_CONFIG"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path: Path, environ: dict, name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ=environ, instance_path=tmp_path)
    assert name in str(err.value)


def test_secret_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(environ={}, instance_path=tmp_path / "inst")
    first = ensure_secret_key(settings)
    second = ensure_secret_key(settings)
    assert first.secret_key and first.secret_key == second.secret_key
    assert ((tmp_path / "inst" / "secret_key").stat().st_mode & 0o777) == 0o600


def test_openapi_describes_every_api_route(app: Flask) -> None:
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    described = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        if getattr(rule, "websocket", False):
            continue  # live channels are described in the operations that hand them out
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in described, (
                f"{method} {rule.rule} is not in the OpenAPI document"
            )


def test_healthz_reports_database_and_broker(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] is True
    assert response.get_json()["broker"] is True


def test_rooms_api_shape(admin_client: tuple[FlaskClient, str]) -> None:
    client, token = admin_client
    create_room(
        client,
        token,
        "raum",
        name="Raum",
        kind="meeting",
        policy="open",
        opening_hours={"weekly": {"mon": ["08:00-12:00"]}, "closed_days": ["2026-12-24"]},
    )
    room = client.get("/api/v1/rooms/raum").get_json()
    assert room["kind"] == "meeting" and room["policy"] == "open"
    assert room["opening_hours"] == {
        "weekly": {"mon": ["08:00-12:00"]},
        "closed_days": ["2026-12-24"],
    }
    assert room["status"]["room"] == "raum"
    changed = client.patch(
        "/api/v1/rooms/raum", json={"name": "Raum Neu"}, headers={"X-CSRFToken": token}
    ).get_json()
    assert changed["name"] == "Raum Neu"
    assert changed["status"]["name"] == "Raum Neu"
    assert changed["opening_hours"]["weekly"] == {"mon": ["08:00-12:00"]}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"v":1,"room":"raum","state":"busy"}',
        b'{"v":1,"room":"other","name":"x","state":"busy","occupants":1,"waiting":0,'
        b'"since":"2026-11-25T09:00:00Z","seq":99999,"updated":"2026-11-25T09:00:00Z","ttl":90}',
        b"{" * 5000,
        b"x" * 100_000,
    ],
)
def test_hostile_mqtt_messages_never_crash_the_hub(
    mosquitto: Mosquitto,
    app: Flask,
    runtime: HubRuntime,
    admin_client: tuple[FlaskClient, str],
    payload: bytes,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum")
    attacker = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    attacker.connect("127.0.0.1", mosquitto.port)
    attacker.loop_start()
    try:
        for topic in (
            topics.room_status("default", "raum"),
            "empfang/v1/default/rooms/BAD ROOM/status",
        ):
            attacker.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        attacker.disconnect()
        attacker.loop_stop()
    # The hub is still connected and serving; its own republish repairs the retained state.
    runtime.republish()
    wait_for(lambda: client.get("/healthz").status_code == 200, message="healthy hub")
    assert (
        client.post("/api/v1/rooms/raum/checkin", headers={"X-CSRFToken": token}).status_code == 200
    )
    assert client.get("/api/v1/rooms/raum").get_json()["status"]["state"] == "busy"
