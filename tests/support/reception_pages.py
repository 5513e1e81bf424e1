"""Browser helpers for the virtual reception: serve the hub, register, open the staff queue, axe."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from flask.testing import FlaskClient
from playwright.sync_api import Locator, Page, expect

from tests.conftest import Account
from tests.support.browser import TIMEOUT_MS, log_in_page

SHOTS = Path(__file__).resolve().parents[2] / "shots"
WAITING_URL = re.compile(r"/empfang/t/([A-Za-z0-9_-]{20,100})$")
BLOCKING_IMPACTS = ("serious", "critical")


def register(
    page: Page,
    base_url: str,
    name: str,
    category: str = "wohngeld",
    description: str = "",
    lang: str | None = None,
) -> str:
    """Take a ticket through the citizen form; ends on the live waiting page, returns the token."""
    page.goto(f"{base_url}/empfang/" + (f"?lang={lang}" if lang else ""))
    page.locator("#name").fill(name)
    page.locator(f"#cat-{category}").check()
    if description:
        page.locator("#description").fill(description)
    page.locator("#consent").check()
    page.locator("form.form button[type=submit]").click()
    expect(page).to_have_url(WAITING_URL, timeout=TIMEOUT_MS)
    wait_live(page)
    match = WAITING_URL.search(page.url)
    assert match is not None, page.url
    return match.group(1)


def wait_live(page: Page) -> None:
    """Wait until the waiting page's live channel delivered its first view."""
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)


def headline(page: Page) -> Locator:
    """The big status line of the waiting page."""
    return page.locator('#state [data-role="headline"]')


def expect_admitted(page: Page, staff: str, room: str) -> None:
    """An admission reaches the citizen's open page without a click.

    Either the waiting page says it is their turn, by whom and where, or (now that calls
    exist) the page has gone on into the call for that room by itself.
    """
    turn = page.locator('#state [data-role="headline"]', has_text="Sie sind an der Reihe.")
    call = page.locator("#call-title", has_text=room)
    expect(turn.or_(call)).to_be_visible(timeout=TIMEOUT_MS)
    if call.count():
        expect(call).to_have_text(f"Gespräch: {room}")
    else:
        expect(page.locator('#state [data-role="estimate"]')).to_have_text(
            f"{staff} empfängt Sie jetzt im Raum „{room}“."
        )


def open_queue(page: Page, base_url: str, account: Account) -> None:
    """Log in through the form and open the live staff queue."""
    log_in_page(page, base_url, account.username, account.password)
    page.goto(f"{base_url}/staff/queue")
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=TIMEOUT_MS)


def ticket_card(page: Page, name: str) -> Locator:
    """A citizen's card in the staff queue, found by the name they gave."""
    return page.locator("li.ticket").filter(has=page.get_by_role("heading", name=name, exact=True))


def public_id(card: Locator) -> str:
    """The ticket id behind a staff queue card."""
    value = card.get_attribute("data-ticket")
    assert value, "card has no ticket id"
    return value


def staff_api(client: FlaskClient, csrf: str, ticket: str, action: str, **body: str) -> Any:
    """A staff action through the JSON API; asserts it succeeded and returns the JSON."""
    response = client.post(
        f"/api/v1/queue/{ticket}/{action}", json=body, headers={"X-CSRFToken": csrf}
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under shots/ (git-ignored)."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now."""
    return list(Axe().run(page).response["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    """Every violation with its impact, rule and the elements it found."""
    lines = []
    for v in violations:
        targets = [" ".join(map(str, node.get("target", []))) for node in v.get("nodes", [])]
        lines.append(f"{v['id']} ({v['impact']}): {v.get('help', '')} at {targets}")
    return "\n".join(lines) or "none"


def assert_accessible(page: Page, what: str) -> list[dict[str, Any]]:
    """No serious or critical axe violation; the message lists all violations found."""
    violations = axe_violations(page)
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    ids = sorted({v["id"] for v in violations})
    assert not blocking, (
        f"{what} ({page.url}): serious/critical axe violations; all violation ids: {ids}\n"
        + describe(violations)
    )
    return violations
