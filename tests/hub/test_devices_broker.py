"""Per-device broker logins on a Mosquitto set up as in production (dynamic-security plugin,
no anonymous access): what an enrolled display may read and write, and revocation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from hub.config import Settings
from hub.db import upgrade
from hub.runtime import HubRuntime
from protocol import topics
from protocol.payloads import DeviceConfig, RoomStatus
from tests.conftest import create_room, make_settings
from tests.support.dynsec import DynsecMosquitto, Session, connect

SITE = "default"
SPY, SPY_PASSWORD = "spy", "spy-secret"


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
    """The hub logs in as the plugin's admin (EMPFANG_MQTT_URL with credentials)."""
    result = make_settings(tmp_path, dynsec.admin_url)
    assert result.broker_admin_backend == "dynsec"
    upgrade(result.database_url)
    return result


def enroll(client: FlaskClient, token: str, rooms: list[str], name: str = "Tür") -> dict[str, Any]:
    """Create a display through the admin API and enroll it through the device endpoint."""
    created = client.post(
        "/api/v1/devices",
        json={"kind": "display", "name": name, "location": "Haus A", "rooms": rooms},
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201, created.get_json()
    answer = client.post("/api/v1/devices/enroll", json={"code": created.get_json()["code"]})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def spy(runtime: HubRuntime, port: int) -> Session:
    """A privileged login that may read and write every topic (to check what gets through)."""
    runtime.broker_admin.request(  # type: ignore[attr-defined]
        [
            {
                "command": "createRole",
                "rolename": "test-spy",
                "acls": [
                    {"acltype": t, "topic": "#", "allow": True}
                    for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
                ],
            },
            {
                "command": "createClient",
                "username": SPY,
                "password": SPY_PASSWORD,
                "roles": [{"rolename": "test-spy"}],
            },
        ]
    )
    return connect(port, SPY, SPY_PASSWORD)


def test_a_display_reads_its_site_and_writes_only_its_own_topics(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str], dynsec: DynsecMosquitto
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    create_room(client, token, "raum-2")
    mine = enroll(client, token, ["raum-1"], "Tür 1")
    other = enroll(client, token, ["raum-2"], "Tür 2")
    assert mine["broker"]["username"] != other["broker"]["username"]
    assert mine["broker"]["port"] == dynsec.port and mine["ca_cert"] == ""

    watcher = spy(runtime, dynsec.port)
    device = connect(dynsec.port, mine["broker"]["username"], mine["broker"]["password"])
    try:
        assert device.connacks == ["Success"]
        # Another site's retained topics exist on the same broker.
        for topic in (topics.room_status("nachbar", "x"), topics.hub_state("nachbar")):
            watcher.client.publish(topic, b'{"secret":1}', qos=1, retain=True).wait_for_publish(5)

        forbidden = [
            "#",
            "empfang/v1/nachbar/#",
            "empfang/v1/+/rooms/+/status",
            f"{topics.site_prefix(SITE)}/#",
            f"{topics.site_prefix(SITE)}/devices/{other['device']}/#",
            topics.device_config(SITE, other["device"]),
            topics.signal_filter(SITE),
        ]
        for topic_filter in forbidden:
            device.subscribe(topic_filter)
        # Allowed last: the broker answers subscriptions in order, so the retained copies
        # of anything forbidden would have arrived before these.
        device.subscribe(topics.room_status_filter(SITE))
        device.subscribe(topics.device_config(SITE, mine["device"]))
        own_config = topics.device_config(SITE, mine["device"])
        device.wait(
            lambda: {own_config, topics.room_status(SITE, "raum-1")} <= device.topics(),
            what="own config and the room status",
        )
        assert device.suback[: len(forbidden)] == [[128]] * len(forbidden)
        seen = device.topics()
        assert topics.room_status(SITE, "raum-2") in seen  # the whole site's rooms
        assert all(t.startswith(topics.site_prefix(SITE)) for t in seen), seen
        assert not any(other["device"] in t for t in seen), seen
        config = DeviceConfig.parse(dict(device.messages)[own_config])
        assert config.rooms == ("raum-1",)
        status = RoomStatus.parse(dict(device.messages)[topics.room_status(SITE, "raum-1")])
        assert status.room == "raum-1"

        # What the display sends: only its own state and its own room's knock get through.
        watcher.subscribe("empfang/#")
        fake = b'{"fake":true}'
        for topic in (
            topics.room_status(SITE, "raum-1"),
            topics.room_knock(SITE, "raum-2"),
            topics.device_state(SITE, other["device"]),
            topics.device_config(SITE, other["device"]),
            topics.device_config(SITE, mine["device"]),
            topics.device_cmd(SITE, mine["device"]),
            topics.hub_state(SITE),
            topics.hub_events(SITE),
            topics.signal(SITE, "s-1", "p-1"),
            topics.room_status("nachbar", "x"),
        ):
            device.client.publish(topic, fake, qos=1).wait_for_publish(5)
        sentinels = {topics.room_knock(SITE, "raum-1"), topics.device_state(SITE, mine["device"])}
        for topic in sentinels:
            device.client.publish(topic, b'{"sentinel":1}', qos=1).wait_for_publish(5)
        watcher.wait(lambda: sentinels <= watcher.topics(), what="the allowed publishes")
        assert [t for t, p in watcher.messages if p == fake] == []
    finally:
        device.close()
        watcher.close()


def test_revoking_ends_the_session_and_the_login_at_once(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str], dynsec: DynsecMosquitto
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    mine = enroll(client, token, ["raum-1"])
    device = connect(dynsec.port, mine["broker"]["username"], mine["broker"]["password"])
    try:
        assert device.connacks == ["Success"]
        revoked_at = time.monotonic()
        response = client.delete(
            f"/api/v1/devices/{mine['device']}", headers={"X-CSRFToken": token}
        )
        assert response.status_code == 200 and response.get_json()["revoked"] is True
        device.wait(lambda: device.disconnects, timeout=2, what="the broker to end the session")
        assert device.disconnects[0] - revoked_at < 2
        # paho tries again at once; the deleted login is refused.
        device.wait(lambda: "Not authorized" in device.connacks, timeout=5, what="a refusal")
    finally:
        device.close()
    # A second revocation changes nothing and still succeeds (the login is gone already).
    again = client.delete(f"/api/v1/devices/{mine['device']}", headers={"X-CSRFToken": token})
    assert again.status_code == 200
    # Its enrollment cannot be repeated with a new code.
    fresh = client.post(f"/api/v1/devices/{mine['device']}/code", headers={"X-CSRFToken": token})
    assert fresh.status_code == 409


def test_changing_rooms_moves_the_knock_permission(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str], dynsec: DynsecMosquitto
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    create_room(client, token, "raum-2")
    mine = enroll(client, token, ["raum-1"])
    watcher = spy(runtime, dynsec.port)
    device = connect(dynsec.port, mine["broker"]["username"], mine["broker"]["password"])
    try:
        watcher.subscribe(topics.room_knock_filter(SITE))
        changed = client.patch(
            f"/api/v1/devices/{mine['device']}",
            json={"rooms": ["raum-2"]},
            headers={"X-CSRFToken": token},
        )
        assert changed.status_code == 200 and changed.get_json()["rooms"] == ["raum-2"]
        device.client.publish(topics.room_knock(SITE, "raum-1"), b"old", qos=1).wait_for_publish(5)
        device.client.publish(topics.room_knock(SITE, "raum-2"), b"new", qos=1).wait_for_publish(5)
        watcher.wait(lambda: b"new" in dict(watcher.messages).values(), what="the new knock")
        assert [p for _t, p in watcher.messages] == [b"new"]
        assert device.disconnects == []  # changing the rules kept the session
    finally:
        device.close()
        watcher.close()
