"""Headless Chromium for browser tests: the system's Debian build, never a downloaded one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
# Upper bound for any single browser action or assertion in these tests (not a target: the
# machine may be busy with the rest of the suite; the figures the design asks for are
# checked where they are named).
TIMEOUT_MS = 10_000


def launch_chromium(playwright: Playwright) -> Browser:
    """Start the system Chromium headless (the caller closes it)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
    )


@dataclass
class PageLog:
    """What a page reported: uncaught script errors, console errors, full page loads."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    loads: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> PageLog:
        """Record `page`'s events from now on."""
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)
        page.on("load", lambda p: self.loads.append(p.url))
        return self

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            self.console.append(f"{msg.type}: {msg.text}")


def log_in_page(page: Page, base_url: str, username: str, password: str) -> None:
    """Log in through the real staff login form; ends on the room board."""
    page.goto(f"{base_url}/staff/login")
    page.get_by_label("Benutzername").fill(username)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    expect(page).to_have_url(f"{base_url}/rooms", timeout=TIMEOUT_MS)


@contextmanager
def browser_context(browser: Browser, **options: Any) -> Iterator[BrowserContext]:
    """A fresh, German-speaking context (own cookies) that is closed afterwards."""
    settings: dict[str, Any] = {
        "locale": "de-DE",
        "timezone_id": "Europe/Berlin",
        "viewport": {"width": 1280, "height": 800},
        **options,
    }
    context = browser.new_context(**settings)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(10_000)
    try:
        yield context
    finally:
        context.close()
