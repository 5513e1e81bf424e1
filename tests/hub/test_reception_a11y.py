"""axe-core in Chromium on the reception's pages: no serious or critical violation (WCAG 2.1 AA)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect

from hub.runtime import HubRuntime
from tests.conftest import add_user, log_in
from tests.support.browser import TIMEOUT_MS, PageLog, browser_context
from tests.support.hubserver import serve_http
from tests.support.reception import join_queues, setup_reception
from tests.support.reception_pages import (
    assert_accessible,
    headline,
    open_queue,
    public_id,
    register,
    staff_api,
    ticket_card,
)

pytestmark = pytest.mark.browser

# The texts each language must show, so the check runs on the page in that language.
TEXTS = {
    "de": {
        "open": "Geöffnet",
        "next": "Sie sind als Nächstes an der Reihe.",
        "forwarded": "Sie wurden weitergeleitet zum Fachbereich Bürgerbüro.",
        "closed": "Geschlossen",
        "goodbye": "Sie haben die Warteschlange verlassen",
        "unknown": "Diese Wartenummer kennen wir nicht",
    },
    "en": {
        "open": "Open",
        "next": "You are next.",
        "forwarded": "You were forwarded to the department Bürgerbüro.",
        "closed": "Closed",
        "goodbye": "You have left the queue",
        "unknown": "We do not know this ticket",
    },
}


def close_reception(client: FlaskClient, csrf: str) -> None:
    """Opening hours that exclude the test clock's Wednesday 10:00."""
    response = client.patch(
        "/api/v1/rooms/empfang",
        json={"opening_hours": {"weekly": {"wed": ["14:00-16:00"]}}},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 200, response.get_json()


def check_language(page: Page, lang: str) -> None:
    """The page is served in `lang` (axe checks the lang attribute's validity)."""
    expect(page.locator("html")).to_have_attribute("lang", lang)


@pytest.mark.parametrize("lang", ["de", "en"])
def test_citizen_pages_have_no_serious_violations(
    browser: Browser,
    app: Flask,
    runtime: HubRuntime,
    admin_client: tuple[FlaskClient, str],
    lang: str,
) -> None:
    setup_reception(runtime)
    texts = TEXTS[lang]
    client, csrf = admin_client
    staff = app.test_client()
    erika = add_user(runtime, "erika")
    join_queues(runtime, "erika", "sozialamt")
    staff_csrf = log_in(staff, erika)

    with serve_http(app) as server, browser_context(browser) as context:
        page = context.new_page()
        log = PageLog().watch(page)

        # The open landing page, then the same form refused (no consent) with its error.
        page.goto(f"{server.url}/empfang/?lang={lang}")
        check_language(page, lang)
        expect(page.locator(".status-card .big")).to_contain_text(texts["open"])
        assert_accessible(page, f"landing, open, {lang}")
        page.locator("#name").fill("Anna")
        page.locator("form.form button[type=submit]").click()
        expect(page.locator("#form-error")).to_be_visible(timeout=TIMEOUT_MS)
        assert_accessible(page, f"landing with a form error, {lang}")

        # The waiting page as it first appears ...
        register(page, server.url, "Anna", description="Wohngeld-Antrag", lang=lang)
        check_language(page, lang)
        expect(headline(page)).to_have_text(texts["next"])
        assert_accessible(page, f"waiting page, {lang}")

        # ... and with everything it can show: a message and the forwarding notice.
        ticket = staff.get("/api/v1/queue").get_json()["waiting"][0]["ticket"]
        staff_api(staff, staff_csrf, ticket, "message", text="Noch etwa 5 Minuten.")
        staff_api(staff, staff_csrf, ticket, "forward", department="buergerbuero", note="Ausweis")
        expect(page.locator('[data-role="forwarded"]')).to_contain_text(
            texts["forwarded"], timeout=TIMEOUT_MS
        )
        expect(page.locator("#messages li")).to_have_count(1)
        assert_accessible(page, f"waiting page, forwarded, with a message, {lang}")
        waiting_url = page.url

        # The landing page offering the way back to the place in the queue.
        page.goto(f"{server.url}/empfang/?lang={lang}")
        expect(page.locator(".notice a")).to_have_attribute("href", re.compile("/empfang/t/"))
        assert_accessible(page, f"landing with the way back, {lang}")

        # The goodbye page after leaving.
        page.goto(waiting_url)
        page.locator("form.leave button").click()
        expect(page.locator("h1")).to_have_text(texts["goodbye"], timeout=TIMEOUT_MS)
        assert_accessible(page, f"goodbye page, {lang}")
        assert log.errors == []

    close_reception(client, csrf)
    with serve_http(app) as server, browser_context(browser) as context:
        page = context.new_page()
        log = PageLog().watch(page)
        page.goto(f"{server.url}/empfang/?lang={lang}")
        check_language(page, lang)
        expect(page.locator(".status-card .big")).to_contain_text(texts["closed"])
        expect(page.locator("form")).to_have_count(0)
        assert_accessible(page, f"landing, closed, {lang}")
        # An address with an unknown (or long purged) ticket.
        page.goto(f"{server.url}/empfang/t/{'x' * 43}?lang={lang}")
        check_language(page, lang)
        expect(page.locator("h1")).to_have_text(texts["unknown"])
        assert_accessible(page, f"unknown ticket, {lang}")
        assert log.errors == []


def test_staff_queue_has_no_serious_violations(
    browser: Browser, app: Flask, runtime: HubRuntime
) -> None:
    setup_reception(runtime)
    erika, max_ = add_user(runtime, "erika"), add_user(runtime, "max")
    join_queues(runtime, "erika", "sozialamt")
    join_queues(runtime, "max", "buergerbuero")
    max_client = app.test_client()
    max_csrf = log_in(max_client, max_)

    with (
        serve_http(app) as server,
        browser_context(browser) as citizen,
        browser_context(browser) as desk,
    ):
        # Erika serves Anna; Ben was forwarded to her personally with a note; Carla waits.
        anna, ben, carla = citizen.new_page(), citizen.new_page(), citizen.new_page()
        register(anna, server.url, "Anna", description="Wohngeld-Antrag")
        register(ben, server.url, "Ben", category="ausweis", description="Ausweis verloren")
        register(carla, server.url, "Carla", description="Frage zum Bescheid")
        ben_id = max_client.get("/api/v1/queue").get_json()["waiting"][0]["ticket"]
        staff_api(max_client, max_csrf, ben_id, "forward", colleague="erika", note="Wohngeld?")
        page = desk.new_page()
        log = PageLog().watch(page)
        open_queue(page, server.url, erika)
        erika_client = app.test_client()
        erika_csrf = log_in(erika_client, erika)
        anna_id = public_id(ticket_card(page, "Anna"))
        staff_api(erika_client, erika_csrf, anna_id, "admit", room="sozialamt-2")
        expect(page.locator("li.ticket.serving h3")).to_have_text("Anna", timeout=TIMEOUT_MS)
        expect(page.locator("ol.tickets li.ticket h3")).to_have_text(["Ben", "Carla"])
        expect(ticket_card(page, "Ben").locator(".note")).to_have_text("Notiz: Wohngeld?")
        expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)
        check_language(page, "de")
        assert_accessible(page, "staff queue")

        # With the forward form open (it is part of the page for keyboard users too).
        ticket_card(page, "Carla").locator("summary").click()
        expect(ticket_card(page, "Carla").get_by_label("an Fachbereich")).to_be_visible()
        assert_accessible(page, "staff queue, forward form open")
        assert log.errors == []


def test_the_check_finds_violations(browser: Browser, app: Flask, runtime: HubRuntime) -> None:
    """The check itself works here (CSP, injection): a broken field on the page is reported."""
    setup_reception(runtime)
    with serve_http(app) as server, browser_context(browser) as context:
        page = context.new_page()
        page.goto(f"{server.url}/empfang/")
        page.evaluate(
            """() => {
              const field = document.createElement("input");
              field.id = "unlabelled-probe";
              document.querySelector("main").append(field);
            }"""
        )
        with pytest.raises(AssertionError, match=r"label \(critical\)"):
            assert_accessible(page, "landing with an unlabelled field")
