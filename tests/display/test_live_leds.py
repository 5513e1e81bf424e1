"""The display core against a real Mosquitto and the real hub, on gpiozero mock pins."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from gpiozero.pins.mock import MockFactory

from display.model import Reason, Shown
from protocol import topics
from protocol.payloads import DeviceState, RoomState, RoomStatus
from tests.conftest import PASSWORD, create_room
from tests.display.conftest import (
    make_config,
    running_display,
    wait_blinking_amber,
    wait_colour,
)
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.net import free_port, wait_for
from tests.support.processes import HttpClient, HubProcess, hub_env, run_cli, wait_healthy

GREEN, RED_ON, BLUE_ON, OFF = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)


def test_room_states_from_the_hub_on_the_led(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    client, token = admin_client
    headers = {"X-CSRFToken": token}
    create_room(client, token, "raum-1", name="Raum 1")
    config = make_config(mosquitto.url, ["raum-1"])
    with Watcher(mosquitto.url, topics.device_state("default", "tuer-1")) as device:
        with running_display(config, clock.now, mock_pins):
            wait_colour(mock_pins, GREEN, 5)
            online = DeviceState.parse(device.wait(lambda m: bool(m.payload)).payload)
            assert (online.state, online.kind) == ("online", "display")
            assert online.telemetry["rooms"] == 1

            assert client.post("/api/v1/rooms/raum-1/checkin", headers=headers).status_code == 200
            wait_colour(mock_pins, RED_ON, 2)
            response = client.put("/api/v1/rooms/raum-1/dnd", json={"dnd": True}, headers=headers)
            assert response.status_code == 200
            wait_colour(mock_pins, BLUE_ON, 2)
            response = client.put(
                "/api/v1/rooms/raum-1/enabled", json={"enabled": False}, headers=headers
            )
            assert response.status_code == 200
            wait_colour(mock_pins, OFF, 2)
            time.sleep(1.2)  # closed is steady off, never the blinking of unknown
            assert all(mock_pins.pin(p).state == 0 for p in (17, 27, 22))
            device.clear()
        # A clean stop says offline (retained), so the hub knows the display is gone.
        offline = DeviceState.parse(device.wait(lambda m: bool(m.payload)).payload)
        assert offline.state == "offline"


def test_broker_killed_and_restarted(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    client.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": token})
    config = make_config(mosquitto.url, ["raum-1"])
    with running_display(config, clock.now, mock_pins) as display:
        wait_colour(mock_pins, RED_ON, 5)

        mosquitto.kill()
        lost = wait_blinking_amber(mock_pins, timeout=10)
        assert display.board.view().room("raum-1").reason == Reason.BROKER_LOST
        time.sleep(6)  # an outage long enough for both clients' backoff to reach its maximum

        mosquitto.start()  # same port, empty (no persistence): the hub must republish
        back = wait_colour(mock_pins, RED_ON, 5)
        print(f"broker kill -> unknown {lost:.2f}s; broker restart -> busy again {back:.2f}s")


def test_frozen_broker_is_noticed_within_10_seconds(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    config = make_config(mosquitto.url, ["raum-1"])
    with running_display(config, clock.now, mock_pins):
        wait_colour(mock_pins, GREEN, 5)
        assert mosquitto.proc is not None
        mosquitto.proc.send_signal(signal.SIGSTOP)  # the TCP connection stays open, silent
        try:
            lost = wait_blinking_amber(mock_pins, timeout=10)
        finally:
            mosquitto.proc.send_signal(signal.SIGCONT)
        back = wait_colour(mock_pins, GREEN, 5)
        print(f"frozen broker -> unknown {lost:.2f}s; thawed -> free again {back:.2f}s")


def test_hub_offline_then_back(
    mosquitto: Mosquitto,
    app: Flask,
    admin_client: tuple[FlaskClient, str],
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    from hub.app import close_app, create_app

    client, token = admin_client
    create_room(client, token, "raum-1")
    client.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": token})
    config = make_config(mosquitto.url, ["raum-1"])
    with running_display(config, clock.now, mock_pins) as display:
        wait_colour(mock_pins, RED_ON, 5)
        app.extensions["empfang"].close()  # says offline on hub/state
        wait_blinking_amber(mock_pins, timeout=5)
        assert display.board.view().room("raum-1").reason == Reason.HUB_OFFLINE

        started = time.monotonic()
        again = create_app(app.config["EMPFANG"], clock=clock)  # same database, new process
        try:
            back = wait_colour(mock_pins, RED_ON, 5)
            print(f"hub back -> busy again {time.monotonic() - started:.2f}s ({back:.2f}s)")
        finally:
            close_app(again)


def test_stale_status_shows_unknown(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: object,
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    config = make_config(mosquitto.url, ["raum-1"])
    with running_display(config, clock.now, mock_pins) as display:
        wait_colour(mock_pins, GREEN, 5)
        good = display.board.status("raum-1")
        assert good is not None

        clock.advance(seconds=good.ttl + 1)  # nothing new from the hub for longer than ttl
        wait_blinking_amber(mock_pins, timeout=3)
        assert display.board.view().room("raum-1").reason == Reason.STALE
        runtime.republish()  # type: ignore[attr-defined]
        wait_colour(mock_pins, GREEN, 3)

        # Someone publishes a newer seq stamped long ago: it is accepted, and shown as unknown.
        old = RoomStatus(
            "raum-1", "Raum 1", RoomState.BUSY, 1, 0, clock.now() - timedelta(hours=2),
            good.seq + 1, clock.now() - timedelta(hours=1), good.ttl,
        )  # fmt: skip
        with Watcher(mosquitto.url, topics.room_status("default", "raum-1")) as publisher:
            publisher.client.publish(
                topics.room_status("default", "raum-1"), old.to_json(), qos=1, retain=True
            ).wait_for_publish(5)
            wait_for(lambda: display.board.status("raum-1") == old, 3, message="old status")
        wait_blinking_amber(mock_pins, timeout=3)
        assert display.board.view().room("raum-1").shown == Shown.UNKNOWN


def test_hub_process_killed_then_restarted(
    tmp_path: Path, mosquitto: Mosquitto, mock_pins: MockFactory
) -> None:
    """A crashed hub (SIGKILL, no clean goodbye) shows as unknown through its last will."""
    env = hub_env(
        mqtt_url=mosquitto.url,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        instance_path=tmp_path / "instance",
        secret_key="display-test-secret",
        tick_seconds=0.2,
    )
    made = run_cli(["create-user", "boss", "--admin", "--password-stdin"], env, PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["run", "--port", str(port), "--threads", "2"]
    first = HubProcess(args, env, tmp_path / "hub.log")
    second = HubProcess(args, env, tmp_path / "hub.log")
    config = make_config(mosquitto.url, ["raum-1"])
    try:
        first.start()
        wait_healthy(first, base)
        web = HttpClient(base)
        web.log_in("boss", PASSWORD)
        assert web.api("POST", "/api/v1/rooms", {"slug": "raum-1", "name": "Raum 1"}).status == 201
        assert web.api("POST", "/api/v1/rooms/raum-1/checkin").status == 200
        with (
            running_display(config, lambda: datetime.now(UTC), mock_pins) as display,
            Watcher(mosquitto.url, topics.hub_state("default")) as hub_state,
        ):
            wait_colour(mock_pins, RED_ON, 5)
            first.kill_group()
            lost = wait_blinking_amber(mock_pins, timeout=10)
            assert display.board.view().room("raum-1").reason == Reason.HUB_OFFLINE

            hub_state.clear()
            second.start()
            online = hub_state.wait(lambda m: b'"online"' in m.payload, timeout=30)
            wait_colour(mock_pins, RED_ON, 5)
            back = time.monotonic() - online.at
            print(f"hub SIGKILL -> unknown {lost:.2f}s; hub online again -> busy {back:.2f}s")
            assert back < 5
    finally:
        first.cleanup()
        second.cleanup()
