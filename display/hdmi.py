"""The HDMI output: a full-screen pywebview window (Qt backend) showing a local page.

pywebview must own the main thread, so ``run_window`` starts the GUI loop there and
hands the display's start to pywebview's worker thread; MQTT runs on paho's thread and
the page is updated from the output's own thread through ``evaluate_js``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from display.config import DisplayConfig
from display.model import BoardView, Reason, RoomView, Shown
from display.texts import Language, hint, room_text, word

log = logging.getLogger(__name__)

# The page shows STATUS UNBEKANNT by itself when the program stays silent this long.
PAGE_STALE_MS = 6000


class Window(Protocol):
    """The part of a pywebview window this output uses."""

    def evaluate_js(self, script: str) -> Any:
        """Run ``script`` in the page and return its value."""
        ...


def page_model(
    view: BoardView, language: Language, zone: ZoneInfo, now: datetime
) -> dict[str, Any]:
    """The JSON the page draws from: texts only, already in the display's language."""
    rooms = []
    for room in view.rooms:
        text = room_text(room, language, zone, now)
        rooms.append(
            {
                "room": text.room,
                "name": text.name,
                "shown": text.shown.value,
                "icon": text.icon,
                "word": text.word,
                "since": text.since,
                "waiting": text.waiting,
                "hint": text.hint,
            }
        )
    return {"rooms": rooms}


def _json_for_html(value: object) -> str:
    """JSON that is safe inside a <script> element and a JavaScript literal."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page_html(config: DisplayConfig, now: datetime, stale_ms: int = PAGE_STALE_MS) -> str:
    """The page, with every room shown as unknown until the first view arrives."""
    initial = BoardView(
        tuple(
            RoomView(room, room, Shown.UNKNOWN, reason=Reason.BROKER_LOST) for room in config.rooms
        )
        # Rooms the hub assigns are not known yet: the device's name stands in.
        or (RoomView("", config.device, Shown.UNKNOWN, reason=Reason.BROKER_LOST),)
    )
    settings = {
        "layout": config.hdmi.layout,
        "stale_ms": stale_ms,
        "unknown": {
            "word": word(Shown.UNKNOWN, config.language),
            "hint": hint(Reason.BROKER_LOST, config.language),
        },
        "initial": page_model(initial, config.language, config.zone, now),
    }
    template = (Path(__file__).parent / "web" / "door.html").read_text(encoding="utf-8")
    return template.replace("__LANG__", config.language).replace(
        "__CONFIG__", _json_for_html(settings)
    )


class HdmiPage:
    """Pushes each changed view into the page and logs what the page then says."""

    name = "hdmi"

    def __init__(
        self,
        window: Window,
        language: Language,
        zone: ZoneInfo,
        clock: Callable[[], datetime],
    ) -> None:
        self.window = window
        self._language = language
        self._zone = zone
        self._clock = clock
        self._last: dict[str, Any] | None = None
        self._wanted: BoardView | None = None
        self.shown = ""

    def render(self, view: BoardView) -> bool:
        """Draw ``view`` if its texts differ from what the page shows."""
        self._wanted = view
        return self._draw(view)

    def _draw(self, view: BoardView) -> bool:
        model = page_model(view, self._language, self._zone, self._clock())
        if model == self._last:
            return False
        self.shown = str(self.window.evaluate_js(f"window.door.show({_json_for_html(model)})"))
        self._last = model
        log.info("hdmi shows: %s", self.shown)
        return True

    def beat(self) -> None:
        """Tell the page the program is alive (else it turns to STATUS UNBEKANNT).

        A view that could not be drawn before (the window was still starting) is drawn now.
        """
        if self._wanted is not None and self._draw(self._wanted):
            return
        self.window.evaluate_js("window.door.beat()")

    def close(self) -> None:
        """The window is closed by run_window."""


def _fill_screen(webview: Any, window: Any) -> None:
    """Cover the first screen even without a window manager (which would do it for us)."""
    try:
        screen = webview.screens[0]
        if (window.x, window.y, window.width, window.height) != (0, 0, screen.width, screen.height):
            window.move(0, 0)
            window.resize(screen.width, screen.height)
            log.info("window resized to the screen, %sx%s", screen.width, screen.height)
    except Exception:
        log.exception("could not size the window to the screen")


def run_window(
    config: DisplayConfig,
    clock: Callable[[], datetime],
    start: Callable[[HdmiPage], Any],
    wait_stop: Callable[[], int],
) -> int:
    """Open the full-screen window on this (main) thread and run until ``wait_stop`` returns.

    ``start(page)`` builds and starts the display (it runs before the GUI loop, so a
    configuration error surfaces at once); ``wait_stop()`` blocks in pywebview's worker
    thread until a stop signal or a failure and returns the exit code.
    """
    import webview  # only an HDMI display pays for Qt

    window = webview.create_window(
        "empfang",
        html=page_html(config, clock()),
        fullscreen=config.hdmi.fullscreen,
        x=0,  # without a window manager pywebview would centre the window 16 px too high
        y=0,
        width=1280,
        height=800,
        background_color="#000000",
        text_select=False,
        zoomable=False,
    )
    if window is None:
        raise RuntimeError("pywebview did not create a window")
    page = HdmiPage(window, config.language, config.zone, clock)
    started = start(page)
    result = {"code": 1}
    stopped = threading.Event()

    def wait_then_close() -> None:
        if config.hdmi.fullscreen:
            _fill_screen(webview, window)
        result["code"] = wait_stop()
        stopped.set()
        window.destroy()

    try:
        webview.start(wait_then_close, gui="qt")
    finally:
        close = getattr(started, "close", None)
        if close is not None:
            close()
    if not stopped.is_set():
        log.error("the window closed without a stop signal")
        return 1
    return result["code"]
