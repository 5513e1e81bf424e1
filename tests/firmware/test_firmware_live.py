"""The firmware's app on host shims, over a real Mosquitto while the real hub publishes.

Only the hardware is shimmed (machine, network, neopixel, time.ticks_*); umqtt.simple is
the host adapter in shims/umqtt (same API and blocking behaviour, on paho-mqtt).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from flask.testing import FlaskClient

from hub.runtime import HubRuntime
from protocol import topics
from protocol.payloads import DeviceState, Knock, RoomState, RoomStatus
from tests.conftest import create_room
from tests.firmware.helpers import FirmwareEnv, light_config, pump, run_for
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher


@contextmanager
def publisher(broker: Mosquitto) -> Iterator[mqtt.Client]:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="firmware-test-pub")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def send(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def waiting_status(room: str, seq: int = 1) -> bytes:
    now = datetime.now(UTC)
    return RoomStatus(
        room=room,
        name="Wartezone",
        state=RoomState.WAITING,
        occupants=0,
        waiting=2,
        since=now,
        seq=seq,
        updated=now,
        ttl=90,
    ).to_json()


def steady(fw: FirmwareEnv, light: object, seconds: float = 1.2) -> set[tuple[str, ...]]:
    """Every picture the ring showed over `seconds` (at least two blink phases)."""
    return set(run_for(light, seconds, lambda: tuple(fw.segment_colours(light))))


def blinking_amber(samples: list[str]) -> bool:
    return set(samples) == {"amber", "off"}


def test_ring_shows_every_state_the_hub_publishes(
    fw: FirmwareEnv, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    headers = {"X-CSRFToken": token}
    create_room(client, token, "raum-a")
    light = fw.build(light_config(mosquitto.port, ["raum-a", "warte"]))

    pump(light, lambda: light.board.states()[0] == "free", message="free from the hub")
    assert steady(fw, light) == {("green", "amber"), ("green", "off")}, (
        "raum-a green; warte has no status yet: blinking amber"
    )

    with publisher(mosquitto) as pub:
        send(pub, topics.room_status("default", "warte"), waiting_status("warte"), retain=True)
    pump(light, lambda: light.board.states() == ["free", "waiting"], message="waiting")
    assert steady(fw, light) == {("green", "amber")}, "waiting is steady amber"

    assert client.post("/api/v1/rooms/raum-a/checkin", headers=headers).status_code == 200
    pump(light, lambda: fw.segment_colours(light) == ["red", "amber"], message="busy → red")

    response = client.put("/api/v1/rooms/raum-a/dnd", json={"dnd": True}, headers=headers)
    assert response.status_code == 200
    pump(light, lambda: fw.segment_colours(light) == ["blue", "amber"], message="dnd → blue")

    response = client.put("/api/v1/rooms/raum-a/enabled", json={"enabled": False}, headers=headers)
    assert response.status_code == 200
    pump(light, lambda: light.board.states()[0] == "closed", message="closed")
    assert steady(fw, light) == {("off", "amber")}, "closed is dark, not blinking"

    client.put("/api/v1/rooms/raum-a/enabled", json={"enabled": True}, headers=headers)
    # Switching a room off empties it, so it comes back free.
    pump(light, lambda: fw.segment_colours(light) == ["green", "amber"], message="free again")

    wdt = fw.wdt()
    assert wdt.timeout_ms == 3000
    assert len(wdt.feeds) > 100, "the watchdog is fed on every step"
    assert wdt.longest_gap() < 1.5, "half the watchdog timeout at most"
    assert light.stats["lost"] == 0 and light.stats["connects"] == 1


def test_single_led_shows_the_most_important_room(
    fw: FirmwareEnv, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    headers = {"X-CSRFToken": token}
    create_room(client, token, "raum-a")
    create_room(client, token, "raum-b")
    rgb = {"type": "rgb", "pins": [25, 26, 27], "brightness": 100}
    light = fw.build(light_config(mosquitto.port, ["raum-a", "raum-b"], led=rgb))

    pump(light, lambda: light.board.states() == ["free", "free"], message="both free")
    assert fw.rgb_colour() == "green"
    client.post("/api/v1/rooms/raum-b/checkin", headers=headers)
    pump(light, lambda: fw.rgb_colour() == "red", message="busy beats free")
    client.put("/api/v1/rooms/raum-a/dnd", json={"dnd": True}, headers=headers)
    pump(light, lambda: fw.rgb_colour() == "blue", message="dnd beats busy")
    client.put("/api/v1/rooms/raum-a/enabled", json={"enabled": False}, headers=headers)
    client.put("/api/v1/rooms/raum-b/enabled", json={"enabled": False}, headers=headers)
    pump(light, lambda: light.board.states() == ["closed", "closed"], message="all closed")
    assert set(run_for(light, 1.2, fw.rgb_colour)) == {"off"}
    client.put("/api/v1/rooms/raum-b/enabled", json={"enabled": True}, headers=headers)
    pump(light, lambda: fw.rgb_colour() == "green", message="free beats closed")
    client.post("/api/v1/rooms/raum-b/checkin", headers=headers)
    pump(light, lambda: fw.rgb_colour() == "red", message="busy again")


def test_unknown_after_broker_kill_then_recovery_with_bounded_backoff(
    fw: FirmwareEnv, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-a")
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    pump(light, lambda: fw.segment_colours(light) == ["green"], message="green")
    pump(light, lambda: light.stats["pongs"] >= 1, message="a ping answered")

    mosquitto.kill()
    pump(light, lambda: light.board.states() == ["unknown"], timeout=3, message="unknown")
    samples = run_for(light, 2.5, lambda: fw.segment_colours(light)[0])
    assert blinking_amber(samples), set(samples)

    # Reconnect delays: 100 ms doubling to the 800 ms cap, each cut by up to 50 % jitter.
    delays = list(light.delays)
    assert len(delays) >= 4, delays
    for attempt, delay in enumerate(delays):
        nominal = min(800, 100 * 2**attempt)
        assert nominal // 2 <= delay <= nominal, (attempt, delays)
    assert max(delays) <= 800
    assert light.stats["attempts"] >= len(delays)
    # A dead broker never stalls the loop: the watchdog (3 s) was fed all along.
    assert fw.wdt().longest_gap() < 1.5

    mosquitto.start()  # same port; the hub reconnects and republishes
    pump(light, lambda: fw.segment_colours(light) == ["green"], timeout=15, message="recovery")
    assert light.stats["connects"] >= 2
    assert steady(fw, light) == {("green",)}


def test_stale_status_turns_unknown_until_the_hub_republishes(
    fw: FirmwareEnv,
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-a")
    client.post("/api/v1/rooms/raum-a/checkin", headers={"X-CSRFToken": token})
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    pump(light, lambda: fw.segment_colours(light) == ["red"], message="busy")
    ttl = light.board.rooms[0].status.ttl
    assert ttl == runtime.settings.status_ttl
    # The hub's own republish (every ttl/3 s of real time) could land inside the window
    # watched below; here it comes when the test says so.
    runtime.ticker.stop()

    # Advance the light's clock past ttl. A jump while a ping is in flight would look
    # like a broker that stopped answering, so jump only between ping and answer.
    pump(light, lambda: light.ping_sent is None, message="no ping in flight")
    fw.clock.advance(ttl * 1000 - 2000)
    light.run_once()
    assert light.board.states() == ["busy"], "not stale before ttl"
    pump(light, lambda: light.ping_sent is None, message="no ping in flight")
    fw.clock.advance(3000)
    light.run_once()
    assert light.board.states() == ["unknown"], "stale after ttl"
    assert light.connected, "stale without any connection problem"
    samples = run_for(light, 1.2, lambda: fw.segment_colours(light)[0])
    assert blinking_amber(samples)

    runtime.republish()  # what the hub does every ttl/3 seconds
    pump(light, lambda: fw.segment_colours(light) == ["red"], message="fresh again")
    assert light.stats["lost"] == 0 and light.stats["connects"] == 1


def test_ping_answer_swallowed_by_a_publish_still_counts(
    fw: FirmwareEnv, mosquitto: Mosquitto
) -> None:
    # umqtt.simple's publish(qos=1) reads past a PINGRESP while it waits for its PUBACK.
    # The light must not take that for a dead broker.
    light = fw.build(light_config(mosquitto.port, ["raum-a"], timing={"telemetry_s": 10}))
    pump(light, lambda: light.stats["pongs"] >= 1, message="a ping answered")
    pump(light, lambda: light.ping_sent is None, message="no ping in flight")
    pongs = light.stats["pongs"]
    fw.clock.advance(10_000)  # ping and telemetry are both due in the same step
    light.run_once()
    assert light.ping_sent is not None, "the ping went out"
    pump(light, lambda: light.stats["pongs"] > pongs, timeout=3, message="the answer")
    assert light.stats["lost"] == 0 and light.stats["connects"] == 1


def test_malformed_and_older_payloads_are_ignored(
    fw: FirmwareEnv, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    headers = {"X-CSRFToken": token}
    create_room(client, token, "raum-a")
    client.post("/api/v1/rooms/raum-a/checkin", headers=headers)
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    pump(light, lambda: fw.segment_colours(light) == ["red"], message="busy")
    current = light.board.rooms[0].status
    good = RoomStatus.parse(waiting_status("raum-a", seq=current.seq)).to_dict()

    malformed = [
        b"not json",
        b"[]",
        b"\xff\xfe\x00",
        b'{"v":1}',
        RoomStatus.parse(waiting_status("raum-b")).to_json(),  # another room's status
        str({**good, "state": "purple"}).encode(),
        b'{"v":1,"room":"raum-a","name":"x","state":"free","seq":"9","ttl":90}',
        b'{"state":"free","padding":"' + b"x" * 6000 + b'"}',
    ]
    older = RoomStatus.parse(waiting_status("raum-a", seq=current.seq - 1)).to_json()
    topic = topics.room_status("default", "raum-a")
    with publisher(mosquitto) as pub:
        for payload in malformed:
            send(pub, topic, payload)
        send(pub, topic, older)
        send(pub, topics.hub_state("default"), b"{broken")
    pump(
        light,
        lambda: light.board.malformed == len(malformed) + 1 and light.board.ignored_old == 1,
        message="all test payloads processed",
    )
    assert light.board.states() == ["busy"]
    assert steady(fw, light) == {("red",)}, "the last good status stays on"
    assert light.stats["lost"] == 0, "bad payloads never cost the connection"

    client.put("/api/v1/rooms/raum-a/dnd", json={"dnd": True}, headers=headers)
    pump(light, lambda: fw.segment_colours(light) == ["blue"], message="later updates apply")


def test_hub_offline_means_unknown(
    fw: FirmwareEnv,
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-a")
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    pump(light, lambda: fw.segment_colours(light) == ["green"], message="green")
    assert light.board.hub == "online"
    runtime.close()  # the hub says offline (its last will does the same on a crash)
    pump(light, lambda: light.board.hub == "offline", message="hub offline")
    samples = run_for(light, 1.2, lambda: fw.segment_colours(light)[0])
    assert blinking_amber(samples)
    assert light.board.rooms[0].status.state == "free", "the status itself is still there"


def test_device_state_online_on_connect_and_offline_will(
    fw: FirmwareEnv, mosquitto: Mosquitto
) -> None:
    topic = topics.device_state("default", "light-test")
    with Watcher(mosquitto.url, topic) as watch:
        light = fw.build(light_config(mosquitto.port, ["raum-a"]))
        pump(light, lambda: light.connected, message="connected")
        online = DeviceState.parse(watch.wait(lambda m: b"online" in m.payload).payload)
        assert online.kind == "light"
        assert online.version == fw.module("app").VERSION
        assert online.telemetry["rooms"] == 1
        assert {"uptime_s", "connects", "malformed"} <= set(online.telemetry)
    with Watcher(mosquitto.url, topic) as late:
        retained = late.wait(lambda m: True)
        assert retained.retain and DeviceState.parse(retained.payload).state == "online"
        late.clear()
        light.client.sock.close()  # power cut: the TCP connection drops, no DISCONNECT
        offline = late.wait(lambda m: True)
        assert DeviceState.parse(offline.payload).state == "offline"
        assert offline.payload == b'{"state":"offline"}'


def test_knock_button_publishes_once_per_interval(
    fw: FirmwareEnv, mosquitto: Mosquitto, runtime: HubRuntime
) -> None:
    data = light_config(mosquitto.port, ["raum-a", "raum-b"], knock={"pin": 9, "room": "raum-b"})
    with Watcher(mosquitto.url, topics.room_knock_filter("default")) as watch:
        light = fw.build(data)
        pump(light, lambda: light.connected, message="connected")
        pin = fw.module("machine").Pin.instances[9]
        for _ in range(2):
            pin.drive(0)
            run_for(light, 0.2)
            pin.drive(1)
            run_for(light, 0.2)
        msg = watch.wait(lambda m: True)
        assert msg.topic == topics.room_knock("default", "raum-b")
        assert not msg.retain
        knock = Knock.parse(msg.payload)
        assert knock.device == "light-test"
        run_for(light, 0.5)
        assert len(watch.messages) == 1, "the second press within 10 s is swallowed"
        assert light.stats["knocks"] == 1 and light.button.swallowed == 1


def test_frozen_broker_is_noticed_by_ping_and_never_stalls_the_loop(
    fw: FirmwareEnv, mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-a")
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    pump(light, lambda: fw.segment_colours(light) == ["green"], message="green")
    assert mosquitto.proc is not None
    pid = mosquitto.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the TCP connection stays open, nothing answers
    try:
        frozen = time.monotonic()
        pump(light, lambda: light.board.states() == ["unknown"], timeout=5, message="unknown")
        assert time.monotonic() - frozen < 3.5, "ping_s 1 + ping_timeout_s 1 (+ a step)"
        assert "PINGREQ" in (light.last_error or "")
        # Reconnecting to a frozen broker: TCP connects, CONNACK never comes.
        run_for(light, 3.0)
        assert light.stats["attempts"] >= 2
        wdt = fw.wdt()
        assert wdt.longest_gap() < 2.5 < wdt.timeout_ms / 1000, "each attempt ends after 1 s"
    finally:
        os.kill(pid, signal.SIGCONT)
    pump(light, lambda: fw.segment_colours(light) == ["green"], timeout=10, message="recovery")


def test_wifi_connects_with_backoff_and_recovers(fw: FirmwareEnv, mosquitto: Mosquitto) -> None:
    fw.module("network").WLAN.fail_connects = 2
    light = fw.build(light_config(mosquitto.port, ["raum-a"]))
    wlan = fw.wlan()
    pump(light, lambda: light.connected, timeout=6, message="Wi-Fi and MQTT up")
    assert wlan.connects == [("Rathaus-IoT", "geheim")] * 3
    assert wlan.disconnects == 2, "a stuck association is reset before the next try"
    wlan.drop()
    light.run_once()
    assert not light.connected and light.board.states() == ["unknown"]
    pump(light, lambda: light.connected, timeout=5, message="back after the Wi-Fi drop")
    assert light.stats["wifi_connects"] == 2 and light.stats["connects"] == 2
