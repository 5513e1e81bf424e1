"""The virtual reception in a real Chromium: citizens and staff in separate browsers, all live."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Locator, Page, expect

from hub.db import session_scope
from hub.runtime import HubRuntime
from tests.conftest import add_user
from tests.support.browser import TIMEOUT_MS, PageLog, browser_context
from tests.support.clock import ManualClock
from tests.support.hubserver import serve_http
from tests.support.reception import join_queues, setup_reception
from tests.support.reception_pages import (
    WAITING_URL,
    expect_admitted,
    headline,
    open_queue,
    public_id,
    register,
    screenshot,
    ticket_card,
    wait_live,
)

pytestmark = pytest.mark.browser

NEXT = "Sie sind als Nächstes an der Reihe."
SECOND = "Ihr Platz in der Warteschlange: 2"


class Browsers:
    """One browser context per person; every page's errors are collected."""

    def __init__(self, browser: Browser, stack: ExitStack) -> None:
        self._browser = browser
        self._stack = stack
        self.logs: dict[str, PageLog] = {}

    def page(self, who: str) -> Page:
        """A new page in `who`'s own context (cookies are not shared between people)."""
        context = self._stack.enter_context(browser_context(self._browser))
        page = self.watch(who, context.new_page())
        # Pages the hub opens by itself (a form with target=_blank) are watched as well.
        context.on("page", lambda opened: self.watch(f"{who}, opened", opened))
        return page

    def watch(self, who: str, page: Page) -> Page:
        """Collect `page`'s script errors under `who` (a second tab gets its own log)."""
        key = who if who not in self.logs else f"{who}#{len(self.logs)}"
        self.logs[key] = PageLog().watch(page)
        return page

    def assert_no_errors(self) -> None:
        """No page threw an uncaught script error or logged an error to the console."""
        errors = {
            who: log.errors + [line for line in log.console if line.startswith("error:")]
            for who, log in self.logs.items()
        }
        assert {who: found for who, found in errors.items() if found} == {}, errors


@contextmanager
def people(browser: Browser) -> Iterator[Browsers]:
    """Browser contexts that are all closed at the end of the block."""
    with ExitStack() as stack:
        yield Browsers(browser, stack)


def mark(page: Page) -> None:
    """Leave a marker in the page's JS globals; a reload would lose it."""
    page.evaluate("() => { window.__marker = 1; }")


def assert_not_reloaded(page: Page) -> None:
    """The marker from mark() is still there."""
    assert page.evaluate("() => window.__marker") == 1, f"{page.url} was reloaded"


def waiting_names(page: Page) -> Locator:
    """The names in the staff page's waiting list (compare with to_have_text([...]))."""
    return page.locator("ol.tickets li.ticket h3")


def test_two_citizens_two_staff_admit_forward_message_leave(
    browser: Browser, app: Flask, runtime: HubRuntime, clock: ManualClock
) -> None:
    setup_reception(runtime)
    erika, max_ = add_user(runtime, "erika"), add_user(runtime, "max")
    join_queues(runtime, "erika", "sozialamt")
    join_queues(runtime, "max", "buergerbuero")
    # The staff page counts waiting minutes on with the browser's clock, so the hub's
    # clock stands at the real time here (ten minutes back, then moved per arrival).
    clock.set(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10))

    with serve_http(app) as server, people(browser) as who:
        base = server.url
        anna, ben = who.page("anna"), who.page("ben")

        # Two citizens register through the form and see their live positions.
        anna.goto(f"{base}/empfang/")
        expect(anna.get_by_text("Geöffnet")).to_be_visible()
        expect(anna.get_by_text("Niemand wartet gerade.")).to_be_visible()
        screenshot(anna, "reception-landing")
        register(anna, base, "Anna", description="Wohngeld-Antrag, Frage zu Unterlagen")
        expect(headline(anna)).to_have_text(NEXT)
        clock.advance(minutes=1)
        ben_token = register(ben, base, "Ben", description="Wohngeld, Bescheid verstehen")
        expect(headline(ben)).to_have_text(SECOND)
        expect(headline(anna)).to_have_text(NEXT)
        mark(anna)
        mark(ben)

        # Two staff members open their queues.
        erika_page, max_page = who.page("erika"), who.page("max")
        open_queue(erika_page, base, erika)
        open_queue(max_page, base, max_)
        expect(erika_page.get_by_role("heading", name="Warteschlange", level=1)).to_be_visible()
        expect(waiting_names(erika_page)).to_have_text(["Anna", "Ben"])
        expect(max_page.get_by_text("Niemand wartet in Ihren Warteschlangen.")).to_be_visible()
        mark(erika_page)
        mark(max_page)

        # Carla wants an ID card: after Ben, before Ben is forwarded; Max sees her live.
        clock.advance(minutes=1)
        carla = who.page("carla")
        register(carla, base, "Carla", category="ausweis", description="Personalausweis")
        expect(headline(carla)).to_have_text(NEXT)
        expect(ticket_card(max_page, "Carla")).to_have_class(re.compile(r"\bnew-arrival\b"))
        mark(carla)

        # A new arrival shows up on Erika's open page, highlighted and announced. (Dora's
        # arrival also tells that Erika's page has taken every earlier update.)
        clock.advance(minutes=1)
        dora = who.page("dora")
        register(dora, base, "Dora", description="Wohngeld")
        dora_card = ticket_card(erika_page, "Dora")
        expect(dora_card).to_have_class(re.compile(r"\bnew-arrival\b"), timeout=TIMEOUT_MS)
        expect(erika_page.locator("#announce")).to_have_text("Neu im Wartebereich: Dora")
        expect(ticket_card(erika_page, "Anna")).not_to_have_class(re.compile("new-arrival"))
        expect(waiting_names(erika_page)).to_have_text(["Anna", "Ben", "Dora"])
        expect(headline(dora)).to_have_text("Ihr Platz in der Warteschlange: 3")
        expect(ticket_card(erika_page, "Carla")).to_have_count(0)  # another department
        assert_not_reloaded(erika_page)
        mark(dora)
        screenshot(erika_page, "staff-queue-new-arrival")

        # Erika admits Anna into Sozialamt-2: Anna's and Ben's pages follow by themselves.
        anna_card = ticket_card(erika_page, "Anna")
        anna_card.get_by_label("Raum").select_option("sozialamt-2")
        anna_card.get_by_role("button", name="Einlassen").click()
        serving = erika_page.locator("ul.tickets li.ticket.serving")
        expect(serving.locator("h3")).to_have_text(["Anna"], timeout=TIMEOUT_MS)
        expect(serving).to_contain_text("Raum: Sozialamt-2")
        expect(waiting_names(erika_page)).to_have_text(["Ben", "Dora"])
        expect_admitted(anna, "Erika", "Sozialamt-2")
        expect(headline(ben)).to_have_text(NEXT, timeout=TIMEOUT_MS)
        expect(headline(dora)).to_have_text(SECOND, timeout=TIMEOUT_MS)
        screenshot(anna, "reception-serving")
        for page in (ben, dora):
            assert_not_reloaded(page)

        # Erika forwards Ben to the Bürgerbüro with a note.
        note = "Braucht einen neuen Ausweis, Wohngeld ist geklärt."
        ben_card = ticket_card(erika_page, "Ben")
        ben_id = public_id(ben_card)
        ben_card.locator("summary", has_text="Weiterleiten").click()
        ben_card.get_by_label("an Fachbereich").select_option("buergerbuero")
        ben_card.get_by_label("Notiz für die nächste Stelle").fill(note)
        ben_card.locator("form.inline-form").get_by_role("button", name="Weiterleiten").click()
        expect(erika_page.locator(".flash")).to_have_text("Weitergeleitet.")
        expect(ticket_card(erika_page, "Ben")).to_have_count(0)

        # Max sees Ben live with the note, before Carla who arrived later.
        ben_at_max = ticket_card(max_page, "Ben")
        expect(ben_at_max.locator(".note")).to_have_text(f"Notiz: {note}", timeout=TIMEOUT_MS)
        expect(ben_at_max).to_contain_text("weitergeleitet zum Fachbereich Bürgerbüro")
        expect(waiting_names(max_page)).to_have_text(["Ben", "Carla"])
        assert public_id(ben_at_max) == ben_id
        assert_not_reloaded(max_page)
        screenshot(max_page, "staff-queue-forwarded")

        # Ben's page says where he is now; he is next there, Carla moves back to second.
        forwarded = ben.locator('[data-role="forwarded"]')
        expect(forwarded).to_be_visible(timeout=TIMEOUT_MS)
        expect(forwarded).to_have_text(
            "Sie wurden weitergeleitet zum Fachbereich Bürgerbüro. Ihre Wartezeit zählt weiter."
        )
        expect(headline(ben)).to_have_text(NEXT)
        expect(headline(carla)).to_have_text(SECOND, timeout=TIMEOUT_MS)
        expect(headline(dora)).to_have_text(NEXT, timeout=TIMEOUT_MS)
        assert_not_reloaded(ben)
        assert_not_reloaded(carla)

        # Erika sends Dora a message; it appears on Dora's page live.
        text = "Noch etwa 5 Minuten, bitte bleiben Sie auf dieser Seite."
        dora_card = ticket_card(erika_page, "Dora")
        dora_card.get_by_label("Nachricht").fill(text)
        dora_card.get_by_role("button", name="Senden").click()
        expect(erika_page.locator(".flash")).to_have_text("Nachricht gesendet.")
        expect(dora.locator("#messages li")).to_have_text([text], timeout=TIMEOUT_MS)
        expect(dora.locator("#no-messages")).to_be_hidden()
        assert_not_reloaded(dora)
        screenshot(dora, "reception-waiting-de")
        dora.goto(f"{dora.url}?lang=en")
        wait_live(dora)
        expect(headline(dora)).to_have_text("You are next.")
        expect(dora.locator("#messages li")).to_have_text([text])
        expect(dora.get_by_role("heading", name="Messages from the reception")).to_be_visible()
        expect(dora.locator("html")).to_have_attribute("lang", "en")
        screenshot(dora, "reception-waiting-en")

        # Ben reloads: same place. He closes the tab and comes back through /empfang/.
        ben.reload()
        wait_live(ben)
        expect(headline(ben)).to_have_text(NEXT)
        expect(ben.locator('[data-role="forwarded"]')).to_contain_text("Bürgerbüro")
        screenshot(ben, "reception-waiting-forwarded")
        context = ben.context
        ben.close()
        ben = who.watch("ben", context.new_page())
        ben.goto(f"{base}/empfang/")
        back = ben.get_by_role(
            "link",
            name="Sie haben bereits eine Wartenummer – zurück zu Ihrem Platz in der Warteschlange",
        )
        expect(back).to_be_visible()
        back.click()
        expect(ben).to_have_url(re.compile(re.escape(f"/empfang/t/{ben_token}") + "$"))
        wait_live(ben)
        expect(headline(ben)).to_have_text(NEXT)

        # Ben leaves: a goodbye page; he disappears from Max's queue, Carla moves up.
        ben.get_by_role("button", name="Warteschlange verlassen").click()
        expect(
            ben.get_by_role("heading", name="Sie haben die Warteschlange verlassen")
        ).to_be_visible()
        expect(ticket_card(max_page, "Ben")).to_have_count(0, timeout=TIMEOUT_MS)
        expect(waiting_names(max_page)).to_have_text(["Carla"])
        expect(headline(carla)).to_have_text(NEXT, timeout=TIMEOUT_MS)
        assert_not_reloaded(max_page)
        assert_not_reloaded(carla)
        # The ticket is gone for good: no way back offered, the old address says so.
        ben.goto(f"{base}/empfang/")
        expect(ben.get_by_text("Sie haben bereits eine Wartenummer")).to_have_count(0)
        ben.goto(f"{base}/empfang/t/{ben_token}")
        expect(headline(ben)).to_have_text("Ihr Besuch ist beendet. Vielen Dank!")
        expect(ben.get_by_role("button", name="Warteschlange verlassen")).to_have_count(0)

        screenshot(erika_page, "staff-queue-erika")
        screenshot(max_page, "staff-queue-max")
        # Both staff pages are still on their live feed.
        expect(erika_page.locator("#live")).to_have_text("Live")
        expect(max_page.locator("#live")).to_have_text("Live")
        assert_not_reloaded(max_page)
        who.assert_no_errors()


def close_reception(client: FlaskClient, csrf: str) -> None:
    """Give the reception room opening hours that exclude Wednesday 10:00 (the test clock)."""
    weekdays = ("mon", "tue", "wed", "thu", "fri")
    response = client.patch(
        "/api/v1/rooms/empfang",
        json={"opening_hours": {"weekly": {day: ["08:00-09:30"] for day in weekdays}}},
        headers={"X-CSRFToken": csrf},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["opening_hours"]["weekly"]["wed"] == ["08:00-09:30"]


def waiting_count(runtime: HubRuntime) -> int:
    """Tickets waiting in the database."""
    with session_scope(runtime.sessions) as db:
        return runtime.reception.waiting_count(db)


def test_closed_hours_turn_citizens_away(
    browser: Browser,
    app: Flask,
    runtime: HubRuntime,
    admin_client: tuple[FlaskClient, str],
) -> None:
    setup_reception(runtime)
    client, csrf = admin_client
    with serve_http(app) as server, people(browser) as who:
        base = server.url
        # Someone starts filling in the form while the reception is still open ...
        late = who.page("late")
        late.goto(f"{base}/empfang/")
        late.locator("#name").fill("Erwin")
        late.locator("#cat-ausweis").check()
        late.locator("#consent").check()

        close_reception(client, csrf)

        # ... and is turned away when sending it: no ticket, the closed message instead.
        with late.expect_response(lambda r: r.request.method == "POST") as refused_form:
            late.get_by_role("button", name="Wartenummer ziehen").click()
        assert refused_form.value.status == 409
        expect(late.locator(".status-card .big")).to_have_text("✕ Geschlossen")
        # Chromium logs the refused form post; that one error is expected, nothing else.
        late_console = who.logs["late"].console
        assert late_console == [
            "error: Failed to load resource: the server responded with a status of 409 (CONFLICT)"
        ], late_console
        late_console.clear()
        expect(late).not_to_have_url(WAITING_URL)
        assert waiting_count(runtime) == 0

        # A newcomer sees the closed message with the next opening time and no form.
        page = who.page("newcomer")
        page.goto(f"{base}/empfang/")
        expect(page.locator(".status-card .big")).to_have_text("✕ Geschlossen")
        expect(page.locator(".status-card")).to_contain_text(
            "Wir sind wieder da am Donnerstag, 26. November 2026 um 08:00 Uhr."
        )
        expect(page.locator("form")).to_have_count(0)
        expect(page.locator("#name")).to_have_count(0)
        expect(page.get_by_role("button", name="Wartenummer ziehen")).to_have_count(0)
        screenshot(page, "reception-closed-de")

        page.goto(f"{base}/empfang/?lang=en")
        expect(page.locator(".status-card .big")).to_have_text("✕ Closed")
        expect(page.locator(".status-card")).to_contain_text(
            "We are back on Thursday 26 November 2026 at 08:00."
        )
        expect(page.locator("form")).to_have_count(0)
        screenshot(page, "reception-closed-en")

        # The kiosk API refuses a ticket as well, and nothing was stored.
        refused = app.test_client().post(
            "/api/v1/reception/tickets",
            json={"name": "Kiosk", "category": "ausweis", "consent": True},
        )
        assert refused.status_code == 409, refused.get_json()
        assert waiting_count(runtime) == 0
        who.assert_no_errors()
