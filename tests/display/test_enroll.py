"""`empfang-display enroll` against a real hub and a Mosquitto set up as in production;
the enrolled display takes its rooms from the hub, follows changes, and shows that it
needs enrolling once revoked."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from gpiozero.pins.mock import MockFactory

from display.config import load_config
from display.enroll import enroll
from display.model import Reason
from hub.app import close_app, create_app
from hub.config import Settings
from hub.db import upgrade
from tests.conftest import add_user, create_room, log_in, make_settings
from tests.display.conftest import (
    BLUE,
    GREEN,
    RED,
    running_display,
    wait_blinking_amber,
    wait_colour,
)
from tests.display.procs import display_env, display_executable
from tests.support.clock import ManualClock
from tests.support.dynsec import DynsecMosquitto
from tests.support.hubserver import LiveServer
from tests.support.mosquitto import Mosquitto
from tests.support.net import free_port, wait_for

HARDWARE = f"""# written by the provisioning
outputs = ["leds"]
rooms = ["alt"]   # from before the hub managed this display

[leds]
red = {RED}
green = {GREEN}
blue = {BLUE}
"""


@pytest.fixture
def dynsec(tmp_path: Path) -> Iterator[DynsecMosquitto]:
    """Mosquitto with the dynamic-security plugin and anonymous access off."""
    broker = DynsecMosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def settings(tmp_path: Path, dynsec: DynsecMosquitto) -> Settings:
    """The hub logs in as the plugin's admin."""
    result = make_settings(tmp_path, dynsec.admin_url)
    upgrade(result.database_url)
    return result


@pytest.fixture
def hub_url(app: Flask) -> Iterator[str]:
    """The hub served over real HTTP (the enroll command uses urllib)."""
    server = LiveServer(app).start()
    try:
        yield server.url
    finally:
        server.stop()


def new_display(client: FlaskClient, token: str, rooms: list[str]) -> dict[str, Any]:
    """A display created through the admin API, with its one-time code."""
    response = client.post(
        "/api/v1/devices",
        json={"kind": "display", "name": "Tür", "rooms": rooms},
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def run_enroll(hub: str, code: str, config: Path) -> subprocess.CompletedProcess[str]:
    """The real command, as the provisioning runs it."""
    return subprocess.run(
        [
            str(display_executable()),
            "enroll",
            "--hub",
            hub,
            "--code",
            code,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=display_env(),
        check=False,
    )


def test_an_enrolled_display_shows_the_rooms_the_hub_assigns(
    hub_url: str,
    admin_client: tuple[FlaskClient, str],
    clock: ManualClock,
    mock_pins: MockFactory,
    tmp_path: Path,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")  # always open, nobody in: free
    create_room(client, token, "raum-2")
    dnd = client.put("/api/v1/rooms/raum-2/dnd", json={"dnd": True}, headers={"X-CSRFToken": token})
    assert dnd.status_code == 200
    device = new_display(client, token, ["raum-1"])
    path = tmp_path / "etc" / "display.toml"
    path.parent.mkdir()
    path.write_text(HARDWARE, encoding="utf-8")

    result = run_enroll(hub_url, device["code"], path)
    assert result.returncode == 0, result.stderr
    assert f"enrolled as {device['id']}" in result.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = tomllib.loads(path.read_text(encoding="utf-8"))
    assert written["device"] == device["id"] and written["hub"] == hub_url
    assert written["broker"].startswith(f"mqtt://default.{device['id']}:")
    assert "rooms" not in written and "ca_file" not in written  # plain TCP: no CA
    assert written["leds"] == {"red": RED, "green": GREEN, "blue": BLUE}
    assert [p.name for p in path.parent.iterdir()] == ["display.toml"]  # no temporary left

    config = load_config(path)
    assert config.rooms == () and config.broker.username == f"default.{device['id']}"
    with running_display(config, clock.now, mock_pins) as display:
        wait_colour(mock_pins, (0.0, 1.0, 0.0), timeout=5)  # raum-1 is free
        assert display.board.rooms == ("raum-1",)

        changed_at = time.monotonic()
        response = client.patch(
            f"/api/v1/devices/{device['id']}",
            json={"rooms": ["raum-2"]},
            headers={"X-CSRFToken": token},
        )
        assert response.status_code == 200
        took = wait_colour(mock_pins, (0.0, 0.0, 1.0), timeout=2)  # raum-2: do not disturb
        assert time.monotonic() - changed_at < 2, took
        assert display.board.rooms == ("raum-2",)

        revoked = client.delete(f"/api/v1/devices/{device['id']}", headers={"X-CSRFToken": token})
        assert revoked.status_code == 200
        wait_for(
            lambda: display.board.view().rooms[0].reason == Reason.NOT_ENROLLED,
            timeout=5,
            message="the display to say it needs enrolling",
        )
        wait_blinking_amber(mock_pins, timeout=3)
        assert display.link is not None and display.link.refused


def test_enroll_failures_write_nothing_and_keep_the_code(
    hub_url: str, admin_client: tuple[FlaskClient, str], tmp_path: Path
) -> None:
    client, token = admin_client
    device = new_display(client, token, [])
    path = tmp_path / "display.toml"

    wrong = run_enroll(hub_url, "AAAA-BBBB-CCCC-DDDD", path)
    assert wrong.returncode == 1
    assert "unknown, expired or already used (HTTP 403)" in wrong.stderr
    assert not path.exists()

    nowhere = run_enroll(f"http://127.0.0.1:{free_port()}", device["code"], path)
    assert nowhere.returncode == 1 and "cannot reach the hub" in nowhere.stderr

    bad_hub = run_enroll("hub.example", device["code"], path)
    assert bad_hub.returncode == 1 and "--hub" in bad_hub.stderr

    path.write_text("outputs = [", encoding="utf-8")  # broken: refused before the code is spent
    broken = run_enroll(hub_url, device["code"], path)
    assert broken.returncode == 1 and "not valid TOML" in broken.stderr
    assert path.read_text(encoding="utf-8") == "outputs = ["

    path.unlink()
    ok = run_enroll(hub_url, device["code"], path)  # the code still works
    assert ok.returncode == 0, ok.stderr
    assert "fix the file" not in ok.stderr
    again = run_enroll(hub_url, device["code"], tmp_path / "other.toml")
    assert again.returncode == 1 and "HTTP 403" in again.stderr


def test_a_tls_broker_comes_with_its_ca_certificate(
    tmp_path: Path, mosquitto: Mosquitto, clock: ManualClock
) -> None:
    pem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(pem, encoding="utf-8")
    settings = make_settings(
        tmp_path,
        mosquitto.url,
        device_broker_url="mqtts://broker.kreis.example:8883",
        device_ca_file=str(tmp_path / "ca.pem"),
    )
    upgrade(settings.database_url)
    app = create_app(settings, clock=clock)
    server = LiveServer(app).start()
    try:
        runtime = app.extensions["empfang"]
        client = app.test_client()
        token = log_in(client, add_user(runtime, "chefin", admin=True))
        code = new_display(client, token, [])["code"]
        path = tmp_path / "etc" / "display.toml"
        data = enroll(server.url, code, path)
    finally:
        server.stop()
        close_app(app)
    ca_file = tmp_path / "etc" / "display-ca.pem"
    assert data["ca_file"] == str(ca_file) and ca_file.read_text(encoding="utf-8") == pem
    assert stat.S_IMODE(ca_file.stat().st_mode) == 0o600
    config = load_config(path)
    assert (config.broker.tls, config.broker.host, config.broker.port) == (
        True,
        "broker.kreis.example",
        8883,
    )
    assert config.ca_file == str(ca_file) and config.hub == server.url


def test_enrolling_pulls_in_neither_flask_nor_the_hub() -> None:
    code = (
        "import sys, display.enroll, display.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'hub', 'werkzeug', 'sqlalchemy', 'segno'))\n"
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
