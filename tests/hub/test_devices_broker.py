"""Per-device broker logins on a Mosquitto set up as in production (dynamic-security plugin,
no anonymous access): what an enrolled display may read and write, that each login works
only with its own client id (no session takeover), and revocation."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from display.mqtt_client import DisplayLink
from edge.enrollment import broker_url
from hub.config import Settings
from hub.db import upgrade
from hub.runtime import HubRuntime
from kiosk.health import Health
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.clientid import device_client_id
from protocol.payloads import DeviceConfig, DeviceState, RoomStatus
from tests.conftest import create_room, make_settings
from tests.support.dynsec import ADMIN_PASSWORD, ADMIN_USER, DynsecMosquitto, Session, connect

SITE = "default"
SPY, SPY_PASSWORD = "spy", "spy-secret"
PROVISION = Path(__file__).resolve().parents[2] / "firmware" / "provision.py"


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


def enroll(
    client: FlaskClient, token: str, rooms: list[str], name: str = "Tür", kind: str = "display"
) -> dict[str, Any]:
    """Create a device through the admin API and enroll it through the device endpoint."""
    created = client.post(
        "/api/v1/devices",
        json={"kind": kind, "name": name, "location": "Haus A", "rooms": rooms},
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201, created.get_json()
    answer = client.post(
        "/api/v1/devices/enroll", json={"code": created.get_json()["code"], "kind": kind}
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def login(port: int, answer: dict[str, Any]) -> Session:
    """Connect as the enrolled device: its own login and the client id bound to it."""
    broker = answer["broker"]
    return connect(port, broker["username"], broker["password"], client_id=broker["client_id"])


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
    device = login(dynsec.port, mine)
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
    device = login(dynsec.port, mine)
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
    device = login(dynsec.port, mine)
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


def display_link(answer: dict[str, Any], connections: list[bool]) -> DisplayLink:
    """The display's own broker link, configured as enrollment left it."""
    broker = BrokerAddress.parse(broker_url(answer["broker"]))
    return DisplayLink(
        broker, answer["site"], answer["device"], [], lambda *_args: None, connections.append
    )


def states_of(session: Session, device: str) -> list[str]:
    """The states `session` saw on the device's state topic, in order."""
    topic = topics.device_state(SITE, device)
    with session.cond:
        return [DeviceState.parse(p).state for t, p in session.messages if t == topic]


def test_a_display_cannot_take_over_another_displays_session(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str], dynsec: DynsecMosquitto
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    victim = enroll(client, token, ["raum-1"], "Tür 1")
    intruder = enroll(client, token, ["raum-1"], "Tür 2")
    victim_id = device_client_id(SITE, victim["device"])
    # The hub tells the device the id it bound (the flat copy is for provision.py).
    assert victim["broker"]["client_id"] == victim["client_id"] == victim_id
    assert intruder["broker"]["client_id"] != victim_id

    watcher = spy(runtime, dynsec.port)
    watcher.subscribe(topics.device_state_filter(SITE))
    connections: list[bool] = []
    display = display_link(victim, connections)
    attempts: list[Session] = []
    try:
        display.start()
        assert display.wait_connected(10)
        watcher.wait(lambda: states_of(watcher, victim["device"]) == ["online"], what="online")

        # Another display's login with the victim's client id, and the victim's own login
        # with any other client id: both refused before the broker touches the session.
        stolen = intruder["broker"]
        attempts.append(
            connect(dynsec.port, stolen["username"], stolen["password"], client_id=victim_id)
        )
        attempts.append(
            connect(dynsec.port, victim["broker"]["username"], victim["broker"]["password"])
        )
        for attempt in attempts:
            assert attempt.connacks == ["Not authorized"]
            attempt.close()
        # A will fired by a takeover would reach the watcher before its own sentinel.
        sentinel = topics.device_state(SITE, "sentinel")
        watcher.client.publish(sentinel, b"sentinel", qos=1)
        watcher.wait(lambda: sentinel in watcher.topics(), what="the sentinel")
        assert states_of(watcher, victim["device"]) == ["online"]
        assert display.is_connected() and connections == [True]

        # The retained state a newcomer reads still says online.
        reader = connect(dynsec.port, SPY, SPY_PASSWORD)
        try:
            reader.subscribe(topics.device_state(SITE, victim["device"]))
            reader.wait(lambda: states_of(reader, victim["device"]), what="the retained state")
            assert states_of(reader, victim["device"]) == ["online"]
        finally:
            reader.close()

        # The intruder's display itself, with its own login and client id, connects.
        others: list[bool] = []
        own = display_link(intruder, others)
        try:
            own.start()
            assert own.wait_connected(10) and own.is_connected()
            watcher.wait(
                lambda: states_of(watcher, intruder["device"]) == ["online"], what="its state"
            )
        finally:
            own.close()
        assert display.is_connected() and connections == [True]
    finally:
        for attempt in attempts:
            attempt.close()
        display.close()
        watcher.close()


def test_a_kiosk_and_a_light_connect_with_the_client_id_bound_to_them(
    runtime: HubRuntime,
    admin_client: tuple[FlaskClient, str],
    dynsec: DynsecMosquitto,
    tmp_path: Path,
) -> None:
    client, token = admin_client
    create_room(client, token, "empfang", kind="reception")
    create_room(client, token, "raum-1")
    kiosk = enroll(client, token, ["empfang"], "Kiosk", kind="kiosk")
    light = enroll(client, token, ["raum-1"], "Flurlicht", kind="light")

    health = Health(
        BrokerAddress.parse(broker_url(kiosk["broker"])),
        kiosk["site"],
        kiosk["device"],
        version="1",
        telemetry=dict,
        on_command=lambda _cmd: None,
    )
    try:
        health.start()
        assert health.wait_connected(10)
    finally:
        health.close()

    # The light: the hub's answer goes through firmware/provision.py into config.json.
    credentials = tmp_path / "enrolled.json"
    credentials.write_text(json.dumps(light), encoding="utf-8")
    out = tmp_path / "config.json"
    result = subprocess.run(
        [sys.executable, str(PROVISION), "--credentials", str(credentials),
         "--wifi-ssid", "Rathaus-IoT", "--wifi-password", "wlan-geheim", "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config = json.loads(out.read_text(encoding="utf-8"))
    assert config["client_id"] == device_client_id(SITE, light["device"])
    broker = config["broker"]
    board = connect(
        dynsec.port, broker["username"], broker["password"], client_id=config["client_id"]
    )
    try:
        assert board.connacks == ["Success"]
    finally:
        board.close()
    # The kiosk's login cannot borrow the light's client id.
    borrowed = connect(
        dynsec.port,
        kiosk["broker"]["username"],
        kiosk["broker"]["password"],
        client_id=config["client_id"],
    )
    try:
        assert borrowed.connacks == ["Not authorized"]
    finally:
        borrowed.close()


def test_the_hub_may_publish_its_own_sites_discovery_and_no_other(
    runtime: HubRuntime, admin_client: tuple[FlaskClient, str], dynsec: DynsecMosquitto
) -> None:
    client, token = admin_client
    watcher = spy(runtime, dynsec.port)
    try:
        watcher.subscribe("homeassistant/#")
        create_room(client, token, "raum-1")
        mine = topics.home_assistant_discovery_topic(SITE, "raum-1")
        watcher.wait(lambda: mine in watcher.topics(), what="the room's discovery config")
        # The hub's login reaches only its own site's node, not a neighbour's.
        hub = connect(dynsec.port, ADMIN_USER, ADMIN_PASSWORD)
        try:
            other = topics.home_assistant_discovery_topic("nachbar", "raum-1")
            hub.client.publish(other, b"{}", qos=1, retain=True).wait_for_publish(5)
            watcher.client.publish(mine, b"", qos=1)  # a marker after the refused one
            watcher.wait(lambda: (mine, b"") in watcher.messages, what="the marker")
            assert other not in watcher.topics()
        finally:
            hub.close()
    finally:
        watcher.close()
