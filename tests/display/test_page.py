"""The HDMI page itself in a real (headless) Chromium: layouts, fitting, its own staleness guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from display.config import parse_config
from display.hdmi import HdmiPage, page_html, page_model
from display.model import BoardView, Reason, RoomView, Shown
from tests.support.browser import launch_chromium

SHOTS = Path(__file__).resolve().parents[2] / "shots"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            yield context.new_page()
        finally:
            browser.close()


def _config(rooms: list[str], layout: str = "single", language: str = "de") -> object:
    return parse_config(
        {
            "broker": "mqtt://127.0.0.1",
            "device": "tuer-1",
            "rooms": rooms,
            "language": language,
            "hdmi": {"layout": layout},
        }
    )


def _show(page: Page, view: BoardView, language: str = "de") -> str:
    from zoneinfo import ZoneInfo

    model = page_model(view, language, ZoneInfo("Europe/Berlin"), NOW)  # type: ignore[arg-type]
    return page.evaluate(f"window.door.show({json.dumps(model)})")


def _room(shown: Shown, waiting: int = 0, name: str = "Sozialamt – Beratung 2") -> RoomView:
    if shown == Shown.UNKNOWN:
        return RoomView("raum-1", name, shown, reason=Reason.HUB_OFFLINE)
    return RoomView("raum-1", name, shown, NOW - timedelta(minutes=12), waiting)


def _fits(page: Page) -> bool:
    return page.evaluate(
        """Array.from(document.querySelectorAll('.word')).every(
             n => n.scrollWidth <= n.clientWidth + 1
                  && n.offsetHeight <= n.parentNode.clientHeight
                  && n.getBoundingClientRect().right <= window.innerWidth
                  && n.getBoundingClientRect().bottom <= window.innerHeight)"""
    )


def test_single_room_every_state(page: Page) -> None:
    page.set_content(page_html(_config(["raum-1"]), NOW))  # type: ignore[arg-type]
    assert page.evaluate("window.door.text()") == "raum-1=STATUS UNBEKANNT"  # before any data
    expected = {
        Shown.FREE: "FREI",
        Shown.BUSY: "BESETZT",
        Shown.WAITING: "BITTE WARTEN",
        Shown.CLOSED: "GESCHLOSSEN",
        Shown.DND: "BITTE NICHT STÖREN",
        Shown.UNKNOWN: "STATUS UNBEKANNT",
    }
    for viewport in ({"width": 1280, "height": 800}, {"width": 800, "height": 480}):
        page.set_viewport_size(viewport)
        for shown, word in expected.items():
            waiting = 2 if shown in (Shown.BUSY, Shown.WAITING) else 0
            assert _show(page, BoardView((_room(shown, waiting),))) == f"raum-1={word}"
            assert _fits(page), f"{word} does not fit {viewport}"
            body = page.inner_text("body")
            assert "Sozialamt – Beratung 2" in body
            if shown == Shown.UNKNOWN:
                assert "Server nicht erreichbar" in body and "seit" not in body
            else:
                assert "seit 09:48" in body
            if waiting:
                assert "2 Personen warten" in body
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / f"display-page-{viewport['width']}-{shown}.png"))


def test_overview_and_english(page: Page) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    rooms = ["empfang", "sozialamt-1", "sozialamt-2", "buergerbuero-1", "besprechung", "archiv"]
    page.set_content(page_html(_config(rooms, "overview", "en"), NOW))  # type: ignore[arg-type]
    states = [Shown.FREE, Shown.BUSY, Shown.WAITING, Shown.DND, Shown.CLOSED, Shown.UNKNOWN]
    view = BoardView(
        tuple(
            RoomView(
                slug,
                f"Bürgerbüro – Beratungsraum {i + 1}",
                shown,
                None if shown == Shown.UNKNOWN else NOW,
                3 if shown == Shown.WAITING else 0,
                Reason.STALE if shown == Shown.UNKNOWN else None,
            )
            for i, (slug, shown) in enumerate(zip(rooms, states, strict=True))
        )
    )
    text = _show(page, view, "en")
    assert text == (
        "empfang=FREE;sozialamt-1=BUSY;sozialamt-2=PLEASE WAIT;buergerbuero-1=DO NOT DISTURB;"
        "besprechung=CLOSED;archiv=STATUS UNKNOWN"
    )
    assert _fits(page)
    body = page.inner_text("body")
    assert "3 people waiting" in body and "Report out of date" in body
    page.screenshot(path=str(SHOTS / "display-page-overview.png"))


def test_page_turns_unknown_by_itself_when_the_program_falls_silent(page: Page) -> None:
    html = page_html(_config(["raum-1"]), NOW, stale_ms=800)  # type: ignore[arg-type]
    page.set_content(html)
    assert _show(page, BoardView((_room(Shown.FREE),))) == "raum-1=FREI"
    page.wait_for_function("window.door.text() === 'raum-1=STATUS UNBEKANNT'", timeout=3000)
    assert "FREI" not in page.inner_text("body")
    page.evaluate("window.door.beat()")  # alive again and nothing changed: shown again
    assert page.evaluate("window.door.text()") == "raum-1=FREI"
    for _ in range(3):  # heartbeats keep it
        page.wait_for_timeout(400)
        page.evaluate("window.door.beat()")
    assert page.evaluate("window.door.text()") == "raum-1=FREI"


def test_room_names_are_text_never_markup(page: Page) -> None:
    page.set_content(page_html(_config(["raum-1"]), NOW))  # type: ignore[arg-type]
    evil = '<img src=x onerror="document.body.dataset.owned=1"></script>'
    _show(page, BoardView((_room(Shown.FREE, name=evil),)))
    assert page.inner_text(".name") == evil
    assert page.evaluate("document.body.dataset.owned") is None


class PageWindow:
    """A Playwright page in the role of the pywebview window (same evaluate_js contract)."""

    def __init__(self, page: Page, failures: int = 0) -> None:
        self.page = page
        self.failures = failures
        self.scripts: list[str] = []

    def evaluate_js(self, script: str) -> object:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the window is still starting")
        self.scripts.append(script)
        return self.page.evaluate(script)


def test_hdmi_page_pushes_changes_and_beats(page: Page) -> None:
    from zoneinfo import ZoneInfo

    page.set_content(page_html(_config(["raum-1"]), NOW))  # type: ignore[arg-type]
    window = PageWindow(page, failures=1)
    hdmi = HdmiPage(window, "de", ZoneInfo("Europe/Berlin"), lambda: NOW)
    free = BoardView((_room(Shown.FREE),))
    with pytest.raises(RuntimeError):
        hdmi.render(free)  # not ready yet: the output thread logs it and carries on
    hdmi.beat()  # the next heartbeat draws what is due
    assert hdmi.shown == "raum-1=FREI"
    assert page.evaluate("window.door.text()") == "raum-1=FREI"
    assert not hdmi.render(free)  # same texts: nothing sent
    hdmi.beat()
    assert window.scripts[-1] == "window.door.beat()"
    assert hdmi.render(BoardView((_room(Shown.BUSY, waiting=1),)))
    assert "1 Person wartet" in page.inner_text("body")
