"""Creating devices, enrollment codes and their abuse, the admin API and the fleet page.

These run against a plain anonymous Mosquitto, where the hub keeps no broker logins
(the no-op broker admin); the broker rules themselves are in test_devices_broker.py.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.config import ConfigError, load_settings
from hub.runtime import HubRuntime
from hub.services.devices import CODE_ALPHABET, normalize_code
from protocol import topics
from protocol.payloads import DeviceCommand, DeviceConfig, DeviceState
from tests.conftest import create_room, csrf_from
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.net import wait_for

SITE = "default"
ROOT = Path(__file__).resolve().parents[2]


def new_device(client: FlaskClient, token: str, **fields: Any) -> dict[str, Any]:
    """Create a device through the admin API; its JSON with the one-time code."""
    body = {"kind": "display", "name": "Tür 1", "location": "Haus A", "rooms": [], **fields}
    response = client.post("/api/v1/devices", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def enroll(app: Flask, code: str, **extra: Any) -> Any:
    """Call the enroll endpoint as a device does: no session, no CSRF token."""
    return app.test_client().post("/api/v1/devices/enroll", json={"code": code, **extra})


def test_a_code_enrolls_once_and_never_shows_again(
    app: Flask, admin_client: tuple[FlaskClient, str], mosquitto: Mosquitto
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    device = new_device(client, token, rooms=["raum-1"])
    code = device["code"]
    assert re.fullmatch(r"[A-Z2-9]{4}(-[A-Z2-9]{4}){3}", code)
    assert device["enrollment"] == "pending" and device["code_expires"] == "2026-11-26T09:00:00Z"
    listed = client.get("/api/v1/devices").get_json()["devices"]
    assert code not in json.dumps(listed)  # only its hash is kept

    with Watcher(mosquitto.url, topics.device_config(SITE, device["id"])) as configs:
        # Typed by hand: lower case, spaces instead of hyphens.
        answer = enroll(app, code.lower().replace("-", " "), kind="display")
        assert answer.status_code == 200, answer.get_json()
        assert answer.headers["Cache-Control"] == "no-store"
        body = answer.get_json()
        assert body["device"] == device["id"] and body["site"] == SITE
        assert body["broker"]["host"] == "127.0.0.1" and body["broker"]["port"] == mosquitto.port
        assert body["broker"]["username"] == f"{SITE}.{device['id']}"
        assert len(body["broker"]["password"]) >= 24 and body["ca_cert"] == ""
        retained = configs.wait(lambda m: bool(m.payload))
        assert DeviceConfig.parse(retained.payload).rooms == ("raum-1",)

    again = enroll(app, code)
    assert again.status_code == 403
    assert "unknown, expired or already used" in again.get_json()["error"]
    shown = client.get(f"/api/v1/devices/{device['id']}").get_json()
    assert shown["enrollment"] == "enrolled" and shown["code_expires"] is None


def test_expired_guessed_and_mismatched_codes(
    app: Flask, admin_client: tuple[FlaskClient, str], clock: ManualClock
) -> None:
    client, token = admin_client
    kiosk_code = new_device(client, token, kind="kiosk", name="Kiosk")["code"]
    # The wrong program: refused before the code is spent.
    wrong = enroll(app, kiosk_code, kind="display")
    assert wrong.status_code == 409 and wrong.get_json()["field"] == "kind"
    assert enroll(app, kiosk_code, kind="kiosk").status_code == 200
    late = new_device(client, token, name="Tür 2")
    clock.advance(hours=24)
    expired = enroll(app, late["code"])
    assert expired.status_code == 403
    assert client.get(f"/api/v1/devices/{late['id']}").get_json()["enrollment"] == "expired"
    # A fresh code works again.
    fresh = client.post(f"/api/v1/devices/{late['id']}/code", headers={"X-CSRFToken": token})
    assert fresh.status_code == 200 and fresh.get_json()["code"] != late["code"]
    assert enroll(app, fresh.get_json()["code"]).status_code == 200

    # Malformed requests are refused as such (they reveal nothing about any code).
    for bad in ({"code": 12}, {"code": "x" * 5000}, {"code": ""}, {}):
        assert app.test_client().post("/api/v1/devices/enroll", json=bad).status_code == 400
    not_json = app.test_client().post("/api/v1/devices/enroll", data={"code": "ABCD"})
    assert not_json.status_code == 400
    # 6 attempts within the last 10 minutes (the first two are a day old); the limit is
    # 10 per address and 10 minutes, and every attempt counts.
    guesses = ["".join(CODE_ALPHABET[(i + j) % 32] for j in range(16)) for i in range(5)]
    statuses = [enroll(app, guess).status_code for guess in guesses]
    assert statuses == [403, 403, 403, 403, 429]
    # Once limited, even a valid code is turned away until the window has passed.
    valid = new_device(client, token, name="Tür 3")["code"]
    assert enroll(app, valid).status_code == 429
    clock.advance(minutes=11)
    assert enroll(app, valid).status_code == 200


def test_revoked_devices_cannot_enroll_and_commands_reach_enrolled_ones(
    app: Flask, admin_client: tuple[FlaskClient, str], mosquitto: Mosquitto
) -> None:
    client, token = admin_client
    doomed = new_device(client, token)
    gone = client.delete(f"/api/v1/devices/{doomed['id']}", headers={"X-CSRFToken": token})
    assert gone.status_code == 200 and gone.get_json()["enrollment"] == "revoked"
    assert enroll(app, doomed["code"]).status_code == 403

    device = new_device(client, token, name="Tür 2")
    url = f"/api/v1/devices/{device['id']}/cmd"
    early = client.post(url, json={"cmd": "reload"}, headers={"X-CSRFToken": token})
    assert early.status_code == 409  # not enrolled yet
    assert enroll(app, device["code"]).status_code == 200
    with Watcher(mosquitto.url, topics.device_cmd(SITE, device["id"])) as commands:
        for cmd in ("identify", "reload"):
            sent = client.post(url, json={"cmd": cmd}, headers={"X-CSRFToken": token})
            assert sent.status_code == 202
        commands.wait(lambda m: len(commands.messages) >= 2)
        assert [DeviceCommand.parse(m.payload).cmd for m in commands.messages] == [
            "identify",
            "reload",
        ]
    bad = client.post(url, json={"cmd": "reset"}, headers={"X-CSRFToken": token})
    assert bad.status_code == 400 and bad.get_json()["field"] == "cmd"


def test_room_rules_and_validation(admin_client: tuple[FlaskClient, str]) -> None:
    client, token = admin_client
    create_room(client, token, "empfang", kind="reception")
    create_room(client, token, "raum-1")
    headers = {"X-CSRFToken": token}

    def create(**fields: Any) -> Any:
        body = {"kind": "display", "name": "Gerät", **fields}
        return client.post("/api/v1/devices", json=body, headers=headers)

    # 400: not what the document allows; 422: well-formed, but against a rule of the hub.
    cases = [
        ({"rooms": ["nope"]}, 422, "rooms"),
        ({"rooms": "raum-1"}, 400, "rooms"),
        ({"rooms": ["Raum 1"]}, 400, "rooms"),
        ({"kind": "kiosk", "rooms": ["raum-1"]}, 422, "rooms"),
        ({"kind": "kiosk", "rooms": ["empfang", "raum-1"]}, 422, "rooms"),
        ({"kind": "toaster"}, 400, "kind"),
        ({"name": ""}, 400, "name"),
        ({"name": "x" * 201}, 400, "name"),
        ({"location": "a\nb"}, 400, "location"),
        ({"id": "Bad Id"}, 400, "id"),
    ]
    for fields, status, field in cases:
        response = create(**fields)
        assert (response.status_code, response.get_json().get("field")) == (status, field), fields
    assert create(kind="kiosk", rooms=["empfang"]).status_code == 201
    assert create(id="tuer-1").status_code == 201
    assert create(id="tuer-1").status_code == 409
    assert client.get("/api/v1/devices?kind=kiosk").get_json()["devices"][0]["rooms"] == ["empfang"]
    assert client.get("/api/v1/devices/nope").status_code == 404
    changed = client.patch(
        "/api/v1/devices/tuer-1", json={"rooms": ["raum-1"], "location": "Haus B"}, headers=headers
    )
    assert changed.status_code == 200
    assert (changed.get_json()["rooms"], changed.get_json()["location"]) == (["raum-1"], "Haus B")
    listed = client.get("/api/v1/devices?location=Haus B").get_json()["devices"]
    assert [d["id"] for d in listed] == ["tuer-1"]


def test_only_admins_with_a_csrf_token_manage_devices(
    app: Flask, admin_client: tuple[FlaskClient, str], staff_client: tuple[FlaskClient, str]
) -> None:
    client, _token = admin_client
    anonymous = app.test_client()
    assert anonymous.get("/api/v1/devices").status_code == 401
    assert anonymous.get("/admin/devices").status_code == 302  # to the login page
    staff, staff_token = staff_client
    assert staff.get("/api/v1/devices").status_code == 403
    denied = staff.post(
        "/api/v1/devices",
        json={"kind": "display", "name": "x"},
        headers={"X-CSRFToken": staff_token},
    )
    assert denied.status_code == 403
    no_token = client.post("/api/v1/devices", json={"kind": "display", "name": "x"})
    assert no_token.status_code == 403 and no_token.get_json()["field"] == "csrf_token"


def test_the_fleet_page_creates_a_device_with_code_and_qr(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1", name="Sozialamt 1")
    page = client.get("/admin/devices")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Neues Gerät" in html and "Sozialamt 1" in html
    created = client.post(
        "/admin/devices",
        data={
            "csrf_token": csrf_from(html),
            "name": "Tür Sozialamt",
            "kind": "display",
            "location": "Haus A, 2. OG",
            "rooms": ["raum-1"],
        },
    )
    assert created.status_code == 200
    shown = created.get_data(as_text=True)
    code = re.search(r'<code class="secret" id="code">([A-Z2-9-]+)</code>', shown)
    assert code and normalize_code(code.group(1))
    assert '<svg width="' in shown and "<title>Anmeldecode als QR-Code</title>" in shown
    assert f"empfang-display enroll --hub http://localhost --code {code.group(1)}" in shown
    fleet = client.get("/admin/devices?kind=display&location=Haus A, 2. OG").get_data(as_text=True)
    assert "Tür Sozialamt" in fleet and "Code ausgegeben" in fleet
    assert code.group(1) not in fleet
    other = client.get("/admin/devices?kind=kiosk").get_data(as_text=True)
    assert "Tür Sozialamt" not in other
    # A bad form shows the page again with the reason, in German.
    bad = client.post(
        "/admin/devices", data={"csrf_token": csrf_from(fleet), "name": "", "kind": "display"}
    )
    assert bad.status_code == 400
    assert "Bitte füllen Sie das Feld „Name“ aus." in bad.get_data(as_text=True)


def test_reported_state_is_recorded_and_malformed_state_ignored(
    runtime: HubRuntime,
    admin_client: tuple[FlaskClient, str],
    mosquitto: Mosquitto,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = admin_client
    device = new_device(client, token)
    topic = topics.device_state(SITE, device["id"])

    def shown() -> dict[str, Any]:
        return client.get(f"/api/v1/devices/{device['id']}").get_json()

    with Watcher(mosquitto.url, topic) as link, caplog.at_level(logging.INFO):
        online = DeviceState("online", "display", "1.2.3", {"uptime_s": 5, "outputs": "leds"})
        link.client.publish(topic, online.to_json(), qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: shown()["online"], message="the device to show online")
        state = shown()
        assert (state["version"], state["telemetry"]) == (
            "1.2.3",
            {"outputs": "leds", "uptime_s": 5},
        )
        assert state["last_seen"] == "2026-11-25T09:00:00Z"
        for bad in (
            b"not json",
            b'{"state":"online"}',  # kind missing while online
            json.dumps({"state": "online", "kind": "display", "telemetry": {"a": [1]}}).encode(),
            json.dumps({"state": "online", "kind": "kiosk"}).encode(),  # not what it is
        ):
            link.client.publish(topic, bad, qos=1).wait_for_publish(5)
        offline = DeviceState.offline_json("display", "1.2.3")
        link.client.publish(topic, offline, qos=1).wait_for_publish(5)
        wait_for(lambda: not shown()["online"], message="the device to show offline")
    assert shown()["telemetry"] == {"outputs": "leds", "uptime_s": 5}
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 4, ignored
    # The no-op broker admin said once that this broker keeps no device logins.
    warnings = [r for r in caplog.records if "no broker login" in r.getMessage()]
    assert len(warnings) <= 1


def test_a_light_enrollment_feeds_the_firmware_provisioning(
    app: Flask, admin_client: tuple[FlaskClient, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    light = new_device(client, token, kind="light", name="Flurlicht", rooms=["raum-1"])
    answer = enroll(app, light["code"], kind="light")
    assert answer.status_code == 200
    credentials = tmp_path / "enrolled.json"
    credentials.write_text(answer.get_data(as_text=True), encoding="utf-8")
    out = tmp_path / "config.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "firmware" / "provision.py"), "--credentials",
         str(credentials), "--wifi-ssid", "Rathaus-IoT", "--wifi-password", "wlan-geheim",
         "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(out.read_text(encoding="utf-8"))
    assert config["device_id"] == light["id"] and config["rooms"] == ["raum-1"]
    assert config["broker"]["host"] == "127.0.0.1" and config["broker"]["port"] == mosquitto.port
    assert config["broker"]["username"] == f"{SITE}.{light['id']}"


@pytest.mark.parametrize(
    ("values", "backend"),
    [
        ({}, "none"),  # the embedded broker
        ({"mqtt_url": "mqtt://127.0.0.1:1883"}, "none"),  # an anonymous broker
        ({"mqtt_url": "mqtts://hub:pw@broker:8883"}, "dynsec"),
        ({"mqtt_url": "mqtts://hub:pw@broker:8883", "broker_admin": "none"}, "none"),
    ],
)
def test_the_broker_admin_follows_the_settings(
    tmp_path: Path, values: dict[str, str], backend: str
) -> None:
    settings = load_settings(environ={}, overrides=values, instance_path=tmp_path)
    assert settings.broker_admin_backend == backend


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"broker_admin": "acl-file"}, "EMPFANG_BROKER_ADMIN: must be"),
        ({"broker_admin": "dynsec", "mqtt_url": "mqtt://b:1883"}, "dynsec needs"),
        ({"device_broker_url": "http://b"}, "EMPFANG_DEVICE_BROKER_URL"),
        ({"enroll_rate": "0"}, "EMPFANG_ENROLL_RATE"),
    ],
)
def test_bad_device_settings_are_refused(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ={}, overrides=values, instance_path=tmp_path)
