"""The same hub code on a real PostgreSQL server (production's database)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from hub.app import close_app, create_app
from hub.db import upgrade
from protocol import topics
from protocol.payloads import RoomStatus
from tests.conftest import add_user, create_room, log_in, make_settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.postgres import PostgresServer, postgres_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def test_room_checkin_on_postgres(
    tmp_path: Path, mosquitto: Mosquitto, postgres: PostgresServer
) -> None:
    url = postgres.url
    upgrade(url)
    upgrade(url)  # a second run finds nothing to do
    settings = make_settings(tmp_path, mosquitto.url, database_url=url)
    assert settings.database_url.startswith("postgresql+psycopg://")
    app = create_app(settings)
    try:
        runtime = app.extensions["empfang"]
        assert runtime.engine.dialect.name == "postgresql"
        assert runtime.bridge.wait_connected(10)
        client = app.test_client()
        token = log_in(client, add_user(runtime, "pgadmin", admin=True))
        created = create_room(client, token, "pg-raum", name="Raum auf PostgreSQL")
        assert created["slug"] == "pg-raum"
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.get_json()["database"] is True

        topic = topics.room_status("default", "pg-raum")
        with Watcher(mosquitto.url, topic) as live:
            free = RoomStatus.parse(
                live.wait(lambda m: RoomStatus.parse(m.payload).state == "free", 10).payload
            )
            answer = client.post("/api/v1/rooms/pg-raum/checkin", headers={"X-CSRFToken": token})
            assert answer.status_code == 200, answer.get_json()
            busy = RoomStatus.parse(
                live.wait(lambda m: RoomStatus.parse(m.payload).state == "busy", 10).payload
            )
        assert busy.occupants == 1
        assert busy.seq > free.seq
        assert busy.name == "Raum auf PostgreSQL"

        room = client.get("/api/v1/rooms/pg-raum")
        assert room.status_code == 200
        body = room.get_json()
        assert body["status"]["state"] == "busy"
        assert body["status"]["occupants"] == 1
        assert body["status"]["seq"] == busy.seq
    finally:
        close_app(app)

    # The rows really live in PostgreSQL (not in a SQLite file that slipped in).
    with psycopg.connect(
        host="127.0.0.1", port=postgres.port, user="postgres", dbname="postgres"
    ) as conn:
        row = conn.execute("SELECT state, seq FROM rooms WHERE slug = 'pg-raum'").fetchone()
    assert row == ("busy", busy.seq)
    assert not (tmp_path / "hub.db").exists()
