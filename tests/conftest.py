"""Shared fixtures: a real Mosquitto, a hub on a fresh SQLite database, logged-in clients."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.app import close_app, create_app
from hub.config import Settings, load_settings
from hub.db import session_scope, upgrade
from hub.runtime import HubRuntime
from tests.support.clock import ManualClock
from tests.support.hashing import light_password_hashing
from tests.support.mosquitto import Mosquitto

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _light_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts made in a test hash with light Argon2 parameters (tests/support/hashing.py)."""
    light_password_hashing(monkeypatch)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free port."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def clock() -> ManualClock:
    """A clock standing on a Wednesday at 10:00 in Berlin (09:00 UTC)."""
    return ManualClock(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))


def make_settings(tmp_path: Path, mqtt_url: str, **overrides: object) -> Settings:
    """Settings for a hub on its own SQLite file under tmp_path."""
    values = {
        "database_url": f"sqlite:///{tmp_path / 'hub.db'}",
        "mqtt_url": mqtt_url,
        "secret_key": "test-secret",
        "tick_seconds": 0.2,
        **overrides,
    }
    return load_settings(environ={}, overrides=values, instance_path=tmp_path / "instance")


@pytest.fixture
def settings(tmp_path: Path, mosquitto: Mosquitto) -> Settings:
    """Hub settings on a fresh, migrated database and the test's broker."""
    result = make_settings(tmp_path, mosquitto.url)
    upgrade(result.database_url)
    return result


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[Flask]:
    """A started hub (connected to the broker) with a controllable clock."""
    application = create_app(settings, clock=clock)
    assert application.extensions["empfang"].bridge.wait_connected(10)
    try:
        yield application
    finally:
        close_app(application)


@pytest.fixture
def runtime(app: Flask) -> HubRuntime:
    """The hub's runtime (services, bridge, sessions)."""
    return app.extensions["empfang"]


@dataclass
class Account:
    """A test account's credentials."""

    username: str
    password: str


def add_user(runtime: HubRuntime, username: str, admin: bool = False) -> Account:
    """Create an account through the service layer."""
    with session_scope(runtime.sessions) as db:
        runtime.users.create(db, username, username.title(), PASSWORD, is_admin=admin)
    return Account(username, PASSWORD)


@pytest.fixture
def staff(runtime: HubRuntime) -> Account:
    """A staff member."""
    return add_user(runtime, "erika")


@pytest.fixture
def admin(runtime: HubRuntime) -> Account:
    """An admin."""
    return add_user(runtime, "chefin", admin=True)


def csrf_from(html: str) -> str:
    """The CSRF token embedded in a page's form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def log_in(client: FlaskClient, account: Account) -> str:
    """Log `client` in through the form; returns a CSRF token for further posts."""
    page = client.get("/staff/login")
    token = csrf_from(page.get_data(as_text=True))
    response = client.post(
        "/staff/login",
        data={"username": account.username, "password": account.password, "csrf_token": token},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client.get("/api/v1/session").get_json()["csrf_token"]


@pytest.fixture
def staff_client(app: Flask, staff: Account) -> tuple[FlaskClient, str]:
    """A test client logged in as staff, with its CSRF token."""
    client = app.test_client()
    return client, log_in(client, staff)


@pytest.fixture
def admin_client(app: Flask, admin: Account) -> tuple[FlaskClient, str]:
    """A test client logged in as admin, with its CSRF token."""
    client = app.test_client()
    return client, log_in(client, admin)


def create_room(client: FlaskClient, token: str, slug: str, **fields: object) -> dict:
    """Create a room through the admin API and return its JSON."""
    body = {"slug": slug, "name": fields.pop("name", slug.title()), **fields}
    response = client.post("/api/v1/rooms", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.get_json()
    return response.get_json()
