"""Fixtures for hub tests: one headless Chromium per test module, the hub over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, sync_playwright

from tests.support.browser import launch_chromium
from tests.support.hubserver import LiveServer, serve_http


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The system Chromium, headless; closed after the module's tests.

    Module scope (not session) so Playwright's event loop never overlaps tests of
    other modules that run their own asyncio loop.
    """
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def served(app: Flask) -> Iterator[LiveServer]:
    """The test's hub over real HTTP (for WebSockets and browsers)."""
    with serve_http(app) as server:
        yield server
