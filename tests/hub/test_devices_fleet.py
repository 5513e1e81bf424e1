"""The fleet view follows a real display process: online within 2 s of connecting,
offline within 2 s of being killed (its last will), live on the admin page as well."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from display.enroll import dump_toml, enrolled_config, write_private
from hub.config import Settings
from hub.db import upgrade
from tests.conftest import Account, create_room, make_settings
from tests.display.procs import DisplayProcess, display_env
from tests.support.browser import TIMEOUT_MS, PageLog, browser_context
from tests.support.dynsec import DynsecMosquitto
from tests.support.hubserver import LiveServer
from tests.support.net import wait_for
from tests.support.reception_pages import assert_accessible

# The login hashes with argon2: on a busy machine it takes longer than one UI action.
LOGIN_MS = 15_000


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


def _enroll(client: FlaskClient, token: str) -> dict[str, Any]:
    created = client.post(
        "/api/v1/devices",
        json={"kind": "display", "name": "Tür 1", "location": "Haus A", "rooms": ["raum-1"]},
        headers={"X-CSRFToken": token},
    )
    assert created.status_code == 201
    answer = client.post("/api/v1/devices/enroll", json={"code": created.get_json()["code"]})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def log_in(page: Page, base_url: str, account: Account) -> None:
    """Log in through the staff login form, then open the fleet view."""
    page.goto(f"{base_url}/staff/login?next=/admin/devices")
    page.get_by_label("Benutzername").fill(account.username)
    page.get_by_label("Passwort").fill(account.password)
    page.get_by_role("button", name="Anmelden").click(timeout=LOGIN_MS)
    expect(page).to_have_url(f"{base_url}/admin/devices", timeout=LOGIN_MS)


def test_fleet_view_shows_a_display_online_and_offline_within_two_seconds(
    app: Flask,
    admin: Account,
    admin_client: tuple[FlaskClient, str],
    browser: Browser,
    tmp_path: Path,
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    enrolled = _enroll(client, token)
    device = enrolled["device"]
    hardware = {"outputs": ["leds"], "leds": {"red": 17, "green": 27, "blue": 22}}
    config = tmp_path / "display.toml"
    write_private(config, dump_toml(enrolled_config(hardware, "http://hub", enrolled, None)))

    def shown() -> dict[str, Any]:
        return client.get(f"/api/v1/devices/{device}").get_json()

    env = display_env(GPIOZERO_PIN_FACTORY="mock", GPIOZERO_MOCK_PIN_CLASS="mockpwmpin")
    proc = DisplayProcess(["run", "--config", str(config)], env, tmp_path / "display.err")
    server = LiveServer(app).start()
    try:
        with browser_context(browser) as context:
            page = context.new_page()
            log = PageLog().watch(page)
            log_in(page, server.url, admin)
            expect(page.locator("#live")).to_have_text("Live", timeout=TIMEOUT_MS)
            badge = page.locator(f'tr[data-device="{device}"] [data-role="online"]')
            expect(badge).to_have_text("offline")

            proc.start()
            proc.wait_for_line(r"connected to broker", timeout=15)
            connected = time.monotonic()
            wait_for(lambda: shown()["online"], timeout=2, message="the fleet to show online")
            assert time.monotonic() - connected < 2
            expect(badge).to_have_text("online")  # pushed live, no reload
            state = shown()
            assert state["version"] and state["telemetry"]["outputs"] == "leds"
            assert state["last_seen"] is not None
            version = page.locator(f'tr[data-device="{device}"] [data-role="version"]')
            expect(version).to_have_text(state["version"])

            assert proc.proc is not None
            os.killpg(proc.proc.pid, signal.SIGKILL)  # no goodbye: only the will says offline
            killed = time.monotonic()
            wait_for(lambda: not shown()["online"], timeout=2, message="the will to arrive")
            assert time.monotonic() - killed < 2
            expect(badge).to_have_text("offline")
            assert_accessible(page, "the fleet view")
            assert log.errors == []
            assert log.loads[-1] == f"{server.url}/admin/devices"  # never reloaded
            assert log.loads.count(f"{server.url}/admin/devices") == 1
    finally:
        proc.cleanup()
        server.stop()


def test_creating_a_device_in_the_browser_shows_its_code_once(
    app: Flask, admin: Account, admin_client: tuple[FlaskClient, str], browser: Browser
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1", name="Sozialamt 1")
    server = LiveServer(app).start()
    try:
        with browser_context(browser) as context:
            page = context.new_page()
            log_in(page, server.url, admin)
            page.get_by_label("Name", exact=True).fill("Tür Sozialamt")
            page.get_by_label("Standort").last.fill("Haus A")
            page.get_by_label("Sozialamt 1").check()
            page.get_by_role("button", name="Gerät anlegen").click()
            expect(page.get_by_role("heading", name="Gerät angelegt")).to_be_visible()
            code = page.locator("#code").inner_text()
            assert len(code) == 19
            expect(page.locator(".qr svg")).to_be_visible()
            expect(page.locator("#command")).to_contain_text(f"--code {code}")
            assert_accessible(page, "the enrollment code page")
            page.get_by_role("link", name="Zurück zu den Geräten").click()
            row = page.locator("tbody tr", has_text="Tür Sozialamt")
            expect(row).to_contain_text("Code ausgegeben")
            expect(row).to_contain_text("raum-1")
            assert code not in page.content()
    finally:
        server.stop()
