"""A knock button press at the door display reaches the hub and rings on the staff page."""

from __future__ import annotations

import re
import time

from flask import Flask
from flask.testing import FlaskClient
from gpiozero.pins.mock import MockFactory
from playwright.sync_api import expect, sync_playwright

from protocol import topics
from protocol.payloads import Knock
from tests.conftest import Account, create_room
from tests.display.conftest import KNOCK, make_config, running_display
from tests.support.browser import TIMEOUT_MS, browser_context, launch_chromium, log_in_page
from tests.support.clock import ManualClock
from tests.support.hubserver import LiveServer
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher


def test_knock_button_rings_on_the_staff_board(
    app: Flask,
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    staff: Account,
    clock: ManualClock,
    mock_pins: MockFactory,
) -> None:
    client, token = admin_client
    create_room(client, token, "sozialamt-2", name="Sozialamt – Beratung 2")
    config = make_config(
        mosquitto.url, ["sozialamt-2"], knock={"pin": KNOCK, "room": "sozialamt-2"}
    )
    server = LiveServer(app).start()
    try:
        with (
            sync_playwright() as playwright,
            Watcher(mosquitto.url, topics.room_knock("default", "sozialamt-2")) as knocks,
            running_display(config, clock.now, mock_pins),
        ):
            browser = launch_chromium(playwright)
            try:
                with browser_context(browser) as context:
                    page = context.new_page()
                    log_in_page(page, server.url, staff.username, staff.password)
                    expect(page.locator("#live")).to_have_text("Live", timeout=TIMEOUT_MS)
                    card = page.locator("#room-sozialamt-2")

                    button = mock_pins.pin(KNOCK)
                    button.drive_low()  # pressed ...
                    button.drive_high()  # ... and released
                    knock = Knock.parse(knocks.wait(lambda m: True, timeout=5).payload)
                    assert (knock.device, knock.at) == ("tuer-1", clock.now())

                    expect(card).to_have_class(re.compile(r"\bknocking\b"), timeout=TIMEOUT_MS)
                    expect(page.locator("#announce")).to_contain_text("Sozialamt")

                    button.drive_low()  # a second press at once is swallowed by the display
                    button.drive_high()
                    time.sleep(0.5)
                    assert len(knocks.messages) == 1
            finally:
                browser.close()
    finally:
        server.stop()
