"""`empfang-hub` as real processes: crash and restart, embedded demo, health, CLI errors."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from protocol import topics
from protocol.payloads import HubState, RoomStatus
from tests.conftest import PASSWORD, create_room
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Received, Watcher
from tests.support.net import free_port, wait_for
from tests.support.processes import HttpClient, HubProcess, hub_env, run_cli, wait_healthy

SITE = "default"
DEMO_ROOMS = {"empfang", "sozialamt-1", "sozialamt-2", "buergerbuero-1", "besprechung"}


def _hub_state(msg: Received) -> str:
    return HubState.parse(msg.payload).state if msg.payload else ""


def _status(msg: Received) -> RoomStatus:
    return RoomStatus.parse(msg.payload)


def _run_env(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    return hub_env(
        mqtt_url=mosquitto.url,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        instance_path=tmp_path / "instance",
        secret_key="process-test-secret",
        tick_seconds=0.2,
    )


@pytest.mark.slow
def test_run_survives_sigkill_with_last_will_and_growing_seq(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    env = _run_env(tmp_path, mosquitto)
    made = run_cli(["create-user", "boss", "--admin", "--password-stdin"], env, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "Created admin account boss." in made.stdout
    assert PASSWORD not in made.stdout  # a given password is never echoed

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    room_topic = topics.room_status(SITE, "sozialamt-2")
    log = tmp_path / "hub.log"
    first = HubProcess(["run", "--port", str(port), "--threads", "4"], env, log)
    second = HubProcess(["run", "--port", str(port), "--threads", "4"], env, log)
    with (
        Watcher(mosquitto.url, topics.hub_state(SITE)) as hub_state,
        Watcher(mosquitto.url, room_topic) as room,
    ):
        try:
            first.start()
            health = wait_healthy(first, base)
            assert health["database"] is True
            assert health["broker"] is True
            online = hub_state.wait(lambda m: _hub_state(m) == "online", 10)
            assert HubState.parse(online.payload).version == health["version"]

            web = HttpClient(base)
            token = web.log_in("boss", PASSWORD)
            created = web.api(
                "POST", "/api/v1/rooms", {"slug": "sozialamt-2", "name": "Sozialamt – Beratung 2"}
            )
            assert created.status == 201, created.text
            checkin = web.api("POST", "/api/v1/rooms/sozialamt-2/checkin")
            assert checkin.status == 200, checkin.text
            assert checkin.json()["state"] == "busy"
            assert token

            busy = _status(room.wait(lambda m: _status(m).state == "busy", 10))
            assert busy.occupants == 1
            assert busy.name == "Sozialamt – Beratung 2"
            seq_before_kill = busy.seq
            assert seq_before_kill >= 2  # created (free), then busy

            # A crash: no clean shutdown, so only the broker's last will can say offline.
            hub_state.clear()
            killed_at = time.monotonic()
            first.kill_group()
            offline = hub_state.wait(lambda m: _hub_state(m) == "offline", 10)
            assert offline.at - killed_at < 10
            assert not first.running()
            with Watcher(mosquitto.url, topics.hub_state(SITE)) as late:  # the will is retained
                retained = late.wait(lambda m: bool(m.payload), 5)
                assert retained.retain
                assert _hub_state(retained) == "offline"

            # Same database, fresh process: seq continues from what was stored.
            hub_state.clear()
            room.clear()
            second.start()
            health = wait_healthy(second, base)
            assert health == {**health, "database": True, "broker": True}
            hub_state.wait(lambda m: _hub_state(m) == "online", 10)
            republished = _status(room.wait(lambda m: bool(m.payload), 10))
            assert republished.state == "busy"  # the presence survived the crash
            assert republished.seq == seq_before_kill

            web = HttpClient(base)
            web.log_in("boss", PASSWORD)
            checkout = web.api("POST", "/api/v1/rooms/sozialamt-2/checkout")
            assert checkout.status == 200, checkout.text
            free = _status(room.wait(lambda m: _status(m).state == "free", 10))
            assert free.seq > seq_before_kill
            assert free.occupants == 0
            assert _hub_state(hub_state.messages[-1]) == "online"
        finally:
            first.cleanup()
            second.cleanup()


@pytest.mark.slow
def test_demo_with_embedded_broker(tmp_path: Path) -> None:
    mqtt_port = free_port()
    http_port = free_port()
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = hub_env(
        instance_path=tmp_path / "instance", embedded_mqtt_port=mqtt_port, tick_seconds=0.2
    )
    assert "EMPFANG_MQTT_URL" not in env
    demo = HubProcess(
        ["demo", "--port", str(http_port), "--threads", "4"],
        env,
        tmp_path / "demo.log",
        cwd=workdir,
    )
    try:
        demo.start()
        opened = demo.wait_for_line(r"Open (http://\S+)", 60)
        assert opened.group(1) == f"http://127.0.0.1:{http_port}/"
        stdout = "\n".join(demo.lines)
        assert f"Embedded MQTT broker on mqtt://127.0.0.1:{mqtt_port}" in stdout
        assert "Demo data created." in stdout
        admin = re.search(r"Admin login: admin / (\S+)", stdout)
        staff = re.search(r"Staff login: staff / (\S+)", stdout)
        assert admin and staff, stdout

        base = f"http://127.0.0.1:{http_port}"
        health = wait_healthy(demo, base, 30)
        assert health["broker"] is True
        assert health["database"] is True
        assert (tmp_path / "instance" / "empfang.db").exists()  # the default SQLite file
        assert (tmp_path / "instance" / "secret_key").exists()  # generated once

        with Watcher(f"mqtt://127.0.0.1:{mqtt_port}", topics.room_status_filter(SITE)) as rooms:
            wait_for(
                lambda: {_status(m).room for m in list(rooms.messages) if m.payload} >= DEMO_ROOMS,
                15,
                0.1,
                f"statuses of {sorted(DEMO_ROOMS)} on the embedded broker",
            )
            statuses = {_status(m).room: _status(m) for m in list(rooms.messages) if m.payload}
        assert {s.state for s in statuses.values()} <= {"free", "closed"}
        assert statuses["empfang"].state == "free"  # no opening hours: always open
        assert all(s.seq >= 1 for s in statuses.values())

        web = HttpClient(base)
        web.log_in("admin", admin.group(1))
        listed = web.get("/api/v1/rooms")
        assert listed.status == 200
        assert {r["slug"] for r in listed.json()["rooms"]} == DEMO_ROOMS
        assert HttpClient(base).log_in("staff", staff.group(1))

        # A graceful stop: the worker says offline itself before the embedded broker goes.
        with Watcher(f"mqtt://127.0.0.1:{mqtt_port}", topics.hub_state(SITE)) as hub_state:
            hub_state.wait(lambda m: _hub_state(m) == "online", 10)
            hub_state.clear()
            stopping = time.monotonic()
            demo.terminate()
            hub_state.wait(lambda m: _hub_state(m) == "offline", 15)
            code = demo.wait(15)
        assert code == 0, demo.log_tail()
        assert time.monotonic() - stopping < 15
        assert "Traceback" not in demo.log_tail(20000)
    finally:
        demo.cleanup()


@pytest.mark.slow
def test_healthz_follows_the_broker(
    app: Flask, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    staff, token = admin_client
    create_room(staff, token, "raum-7")
    with Watcher(mosquitto.url, topics.room_status(SITE, "raum-7")) as before:
        published = _status(before.wait(lambda m: bool(m.payload), 5))
    client = app.test_client()
    ok = client.get("/healthz")
    assert ok.status_code == 200
    assert ok.get_json() == {**ok.get_json(), "status": "ok", "database": True, "broker": True}

    mosquitto.kill()
    wait_for(lambda: client.get("/healthz").status_code == 503, 10, 0.05, "/healthz 503")
    down = client.get("/healthz").get_json()
    assert down["status"] == "degraded"
    assert down["broker"] is False
    assert down["database"] is True

    mosquitto.start()  # same port
    restarted = time.monotonic()
    wait_for(
        lambda: client.get("/healthz").status_code == 200,
        15,
        0.1,
        "/healthz 200 after the broker came back",
    )
    assert time.monotonic() - restarted < 15
    assert client.get("/healthz").get_json()["broker"] is True
    # Back online means the hub said so again on the restarted (empty) broker.
    with Watcher(mosquitto.url, topics.hub_state(SITE)) as state:
        msg = state.wait(lambda m: bool(m.payload), 5)
        assert msg.retain
        assert _hub_state(msg) == "online"
    # The restarted broker kept nothing (persistence false): the hub republished the room.
    with Watcher(mosquitto.url, topics.room_status(SITE, "raum-7")) as after:
        again = _status(after.wait(lambda m: bool(m.payload), 5))
        assert again.seq == published.seq
        assert again.state == published.state


def test_create_user_rejects_bad_and_duplicate_names(tmp_path: Path) -> None:
    env = hub_env(
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        instance_path=tmp_path / "instance",
        secret_key="cli-test-secret",
    )
    bad = run_cli(["create-user", "Bad Name!"], env)
    assert bad.returncode != 0
    assert "username" in bad.stderr
    assert "Created" not in bad.stdout
    assert "Traceback" not in bad.stderr

    made = run_cli(["create-user", "erika", "--name", "Erika Mustermann"], env)
    assert made.returncode == 0, made.stderr
    assert "Created staff account erika." in made.stdout
    generated = re.search(r"Password: (\S+)", made.stdout)
    assert generated and len(generated.group(1)) >= 10

    again = run_cli(["create-user", "erika", "--password-stdin"], env, PASSWORD + "\n")
    assert again.returncode != 0
    assert "taken" in again.stderr
    assert "username" in again.stderr
    assert "Traceback" not in again.stderr
