"""/healthz and a broker that hangs: frozen with SIGSTOP (connection open, no answers),
then thawed with SIGCONT; on Mosquitto, with production ACLs, and on the embedded broker."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.app import close_app, create_app
from hub.broker_admin import DeviceAccess, device_username
from hub.config import ConfigError, Settings, load_settings
from hub.db import upgrade
from hub.embedded_broker import EmbeddedBroker
from protocol import topics
from tests.conftest import make_settings
from tests.support.clock import ManualClock
from tests.support.dynsec import ADMIN_PASSWORD, ADMIN_USER, DynsecMosquitto, connect
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.net import free_port, wait_for
from tests.support.processes import HttpClient, HubProcess, Response, hub_env, wait_healthy

SITE = "default"
# The bound: /healthz reports a hung broker within 10 s (a polling deadline only).
DEADLINE = 10.0


@contextmanager
def frozen(broker: Mosquitto) -> Iterator[None]:
    """Stop the broker process with SIGSTOP (it hangs, it does not die); SIGCONT on leaving."""
    assert broker.proc is not None and broker.proc.poll() is None
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        broker.proc.send_signal(signal.SIGCONT)


def _health(client: FlaskClient) -> tuple[int, dict]:
    answer = client.get("/healthz")
    return answer.status_code, answer.get_json()


def _assert_broker_down(status: int, body: dict) -> None:
    assert status == 503, body
    assert body["status"] == "degraded"
    assert body["broker"] is False
    assert body["database"] is True
    assert body["failing"] == ["broker"]


def _down(web: HttpClient) -> Response | None:
    answer = web.get("/healthz", timeout=2)
    return answer if answer.status == 503 else None


def test_healthz_names_a_hung_broker_in_every_hub_process_and_recovers(
    app: Flask, settings: Settings, clock: ManualClock, mosquitto: Mosquitto
) -> None:
    second = create_app(settings, clock=clock)  # another hub process: same broker and database
    try:
        assert second.extensions["empfang"].bridge.wait_connected(10)
        clients = [app.test_client(), second.test_client()]
        for client in clients:
            status, body = _health(client)
            assert status == 200, body
            assert body["failing"] == []

        with frozen(mosquitto):
            wait_for(
                lambda: all(_health(c)[0] == 503 for c in clients),
                DEADLINE,
                0.1,
                "/healthz 503 in both hub processes while the broker hangs",
            )
            for client in clients:
                _assert_broker_down(*_health(client))
            # The connection itself is still up: only the missing answers tell.
            assert all(a.extensions["empfang"].bridge.is_connected() for a in (app, second))

        wait_for(
            lambda: all(_health(c)[0] == 200 for c in clients),
            DEADLINE,
            0.1,
            "/healthz 200 in both hub processes once the broker answers again",
        )
        for client in clients:
            status, body = _health(client)
            assert (status, body["broker"], body["failing"]) == (200, True, [])
    finally:
        close_app(second)


@pytest.mark.slow
def test_a_served_hub_with_two_workers_reports_the_hung_broker(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    env = hub_env(
        mqtt_url=mosquitto.url,
        database_url=f"sqlite:///{tmp_path / 'hub.db'}",
        instance_path=tmp_path / "instance",
        secret_key="health-test-secret",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    hub = HubProcess(["run", "--port", str(port), "--workers", "2", "--threads", "4"], env, log)
    try:
        hub.start()
        assert wait_healthy(hub, base, 60)["failing"] == []
        web = HttpClient(base)

        with frozen(mosquitto):
            down = wait_for(
                lambda: _down(web),
                DEADLINE,
                0.1,
                "/healthz 503 from the served hub while the broker hangs",
            )
            _assert_broker_down(down.status, down.json())

        wait_for(
            lambda: web.get("/healthz", timeout=2).status == 200,
            DEADLINE,
            0.1,
            "/healthz 200 from the served hub once the broker answers again",
        )
        # Whichever worker answers: none is left reporting the broker down.
        answers = [web.get("/healthz", timeout=2) for _ in range(20)]
        assert {a.status for a in answers} == {200}, [a.json() for a in answers]
        assert "Traceback" not in hub.log_tail(20000)
    finally:
        hub.cleanup()


def test_the_probe_is_the_hubs_alone_under_production_acls(
    tmp_path: Path, clock: ManualClock
) -> None:
    broker = DynsecMosquitto(tmp_path)
    broker.start()
    app: Flask | None = None
    sessions = []
    try:
        settings = make_settings(tmp_path, broker.admin_url, broker_timeout=2.0)
        assert settings.broker_admin_backend == "dynsec"
        upgrade(settings.database_url)
        app = create_app(settings, clock=clock)
        runtime = app.extensions["empfang"]
        assert runtime.bridge.wait_connected(10)

        device = "tuer-1"
        access = DeviceAccess(SITE, device, "display", device_username(SITE, device), ("raum-1",))
        runtime.broker_admin.add_device(access, "door-secret-1")
        display = connect(broker.port, access.username, "door-secret-1", client_id=access.client_id)
        sessions.append(display)
        assert display.connacks == ["Success"]
        hub_login = connect(broker.port, ADMIN_USER, ADMIN_PASSWORD)  # with the hub's role
        sessions.append(hub_login)

        display.subscribe(topics.hub_probe(SITE))
        display.subscribe(f"{topics.site_prefix(SITE)}/hub/#")
        display.subscribe(topics.hub_state(SITE))  # what a display does read
        hub_login.subscribe(topics.hub_probe(SITE))
        # Each probe leaves only after the broker acknowledged the one before.
        hub_login.wait(
            lambda: len(hub_login.messages) >= 3, 10, "three probes through the hub's ACLs"
        )
        assert {(t, p) for t, p in hub_login.messages} == {(topics.hub_probe(SITE), b"")}
        assert display.suback[:3] == [[128], [128], [1]]
        assert not any(t == topics.hub_probe(SITE) for t, _p in display.messages)
        status, body = _health(app.test_client())
        assert (status, body["broker"]) == (200, True)
    finally:
        for session in sessions:
            session.close()
        if app is not None:
            close_app(app)
        broker.stop()


def test_the_embedded_broker_answers_the_probe(tmp_path: Path, clock: ManualClock) -> None:
    with EmbeddedBroker("127.0.0.1", free_port()) as broker:
        settings = make_settings(tmp_path, broker.url, broker_timeout=2.0)
        upgrade(settings.database_url)
        app = create_app(settings, clock=clock)
        try:
            assert app.extensions["empfang"].bridge.wait_connected(10)
            with Watcher(broker.url, topics.hub_probe(SITE)) as probes:
                # Each probe leaves only after amqtt acknowledged the one before.
                wait_for(lambda: len(probes.messages) >= 4, 15, 0.05, "four probes")
                assert all(m.payload == b"" and not m.retain for m in probes.messages)
            status, body = _health(app.test_client())
            assert (status, body["broker"], body["failing"]) == (200, True, [])
        finally:
            close_app(app)


def test_broker_timeout_setting(tmp_path: Path) -> None:
    default = load_settings(environ={}, instance_path=tmp_path)
    assert default.broker_timeout < DEADLINE
    chosen = load_settings(environ={"EMPFANG_BROKER_TIMEOUT": "2.5"}, instance_path=tmp_path)
    assert chosen.broker_timeout == 2.5
    for bad in ("0", "0.5", "301", "nan", "soon"):
        with pytest.raises(ConfigError, match=r"^EMPFANG_BROKER_TIMEOUT: must be"):
            load_settings(environ={"EMPFANG_BROKER_TIMEOUT": bad}, instance_path=tmp_path)


def test_the_probe_topic_is_part_of_the_contract() -> None:
    assert topics.hub_probe(SITE) == "empfang/v1/default/hub/probe"
    parsed = topics.parse_topic(topics.hub_probe(SITE))
    assert (parsed.site, parsed.kind, parsed.key, parsed.leaf) == (SITE, "hub", None, "probe")
