"""The kiosk's full-screen pywebview window (Qt backend) and its JavaScript bridge.

pywebview must own the main thread: `run_window` opens the window there, the engine runs
on its own asyncio loop in a thread, and the page reaches the engine through `KioskApi`
(``window.pywebview.api.<action>(…)``). The page gets each new view from ``/state`` on
the engine's page server (a long poll); during a call it tells the window where its video
boxes are, and Qt widgets show the engine's pictures there (see `kiosk.overlay`).

Privacy reset of the web view (`WindowUi.reset`):
- pywebview runs in private mode (an off-the-record QtWebEngine profile): cookies, web
  storage and the HTTP cache live in memory only and never reach the memory card;
- ``localStorage``/``sessionStorage`` and Cache Storage are cleared by script, cookies with
  ``window.clear_cookies()``; every response of the page server says ``no-store``, so the
  video frames and pages are not cached in the first place;
- the page is loaded afresh: a new document, which drops every bit of in-page state (the
  engine drops its own: ticket, call, pictures). Loads happen one at a time, each after
  the last one finished, and a load that does not finish is made again: now and then
  (seen after several resets within seconds, when the hub went away and came back just
  after a visit) QtWebEngine never reports a load as finished, pywebview then never gives
  the page its bridge, and only a new navigation brings the page back.

The window runs only the page's own scripts and the fixed ones here: no route of the page
server and no setting makes it run a script it was sent. `run_window` takes an `on_window`
callable, called once with the engine and its `WindowUi` before the window starts; the
production entry point (`kiosk.cli.main`) passes none.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kiosk.engine import Engine
from kiosk.overlay import VideoOverlays

log = logging.getLogger(__name__)

LOAD_WAIT = 5.0  # seconds for the page to load and get its bridge
LOAD_ATTEMPTS = 4
CLEAR_STORAGE_JS = """
(function () {
  try { localStorage.clear(); } catch (e) {}
  try { sessionStorage.clear(); } catch (e) {}
  try { if (window.caches) caches.keys().then(function (ks) { ks.forEach(function (k) { caches.delete(k); }); }); } catch (e) {}
  return true;
})()
"""  # noqa: E501


class KioskApi:
    """The page's bridge: each method is one flow action and returns the new view."""

    def __init__(
        self, act: Callable[..., dict[str, Any]], place_video: Callable[[object], None]
    ) -> None:
        self._act = act
        self._place_video = place_video

    def start(self, language: str | None = None) -> dict[str, Any]:
        """Begin a visit in `language` (the attract screen's language buttons)."""
        return self._act("start", language)

    def set_language(self, language: str) -> dict[str, Any]:
        """Switch the language."""
        return self._act("set_language", language)

    def choose_category(self, category: str) -> dict[str, Any]:
        """The concern."""
        return self._act("choose_category", str(category))

    def set_name(self, name: str) -> dict[str, Any]:
        """The optional name or alias."""
        return self._act("set_name", str(name))

    def take_ticket(self) -> dict[str, Any]:
        """Queue up."""
        return self._act("take_ticket")

    def back(self) -> dict[str, Any]:
        """One screen back."""
        return self._act("back")

    def cancel(self) -> dict[str, Any]:
        """Leave (the ticket goes back; privacy reset)."""
        return self._act("cancel")

    def end_call(self) -> dict[str, Any]:
        """End the call."""
        return self._act("end_call")

    def touch(self) -> dict[str, Any]:
        """A touch anywhere (keeps the visit alive, wakes the screen)."""
        return self._act("touch")

    def mute(self, on: bool) -> dict[str, Any]:
        """Microphone off (True) or on again (False), during a call."""
        return self._act("mute", on is True)

    def video(self, boxes: object) -> bool:
        """Where the page shows the videos ({"remote"|"preview": [x, y, w, h, frame]}, or null)."""
        self._place_video(boxes)
        return True


class WindowUi:
    """The engine's handle on the window (called from worker threads)."""

    def __init__(
        self, window: Any, page_url: str, on_gui: Callable[[Callable[[], None]], None]
    ) -> None:
        self.window = window
        self.page_url = page_url
        self.resets = 0  # privacy resets done
        self._on_gui = on_gui
        self._loading = threading.Lock()
        self._overlays: VideoOverlays | None = None
        self._boxes: object = None  # the page's last word, applied once the overlays exist

    def _clear_profile(self) -> None:
        """Cookies, HTTP cache and visited links of the (off-the-record) profile."""
        profile = getattr(self.window.native, "profile", None)
        if profile is None:
            log.warning("no web profile to clear")
            return
        profile.cookieStore().deleteAllCookies()
        profile.clearHttpCache()
        profile.clearAllVisitedLinks()

    @property
    def overlays(self) -> VideoOverlays | None:
        """The video widgets (None until the window is shown); touch them on the GUI thread."""
        return self._overlays

    def add_overlays(self, feeds: dict[str, Any]) -> None:
        """Video widgets over the web view, one per feed (once the window is shown)."""

        def build() -> None:
            self._overlays = VideoOverlays(self.window.native.webview, feeds)

        self._on_gui(build)
        self.place_video(self._boxes)

    def place_video(self, boxes: object) -> None:
        """Show the videos where the page says (called from the bridge's thread)."""
        self._boxes = boxes
        overlays = self._overlays
        if overlays is not None:
            self._on_gui(lambda: overlays.place(boxes))

    def reset(self) -> None:
        """Cookies, storage and caches cleared; the page loaded afresh."""
        with self._loading:
            self.place_video(None)  # the next page shows its own boxes
            self._wait_loaded()
            try:
                self.window.evaluate_js(CLEAR_STORAGE_JS)
            except Exception:
                log.exception("could not clear the page's storage")
            # pywebview's clear_cookies() touches Qt from the calling thread (and crashes the
            # process from a worker thread): the profile is cleared on the GUI thread instead.
            self._on_gui(self._clear_profile)
            self._load()
            self.resets += 1

    def reload(self) -> None:
        """Load the page again."""
        with self._loading:
            self._wait_loaded()
            self._load()

    def _load(self) -> None:
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            self.window.load_url(self.page_url)
            if self._wait_loaded():
                return
            log.warning("the page did not load within %g s (attempt %d)", LOAD_WAIT, attempt)
        log.error("the page did not load after %d attempts", LOAD_ATTEMPTS)

    def _wait_loaded(self) -> bool:
        return self.window.events.loaded.wait(LOAD_WAIT)


WindowHook = Callable[[Engine, WindowUi], None]


def gui_caller() -> Callable[[Callable[[], None]], None]:
    """A function that runs a callable on Qt's GUI (main) thread and waits for it.

    Make it on the main thread before the GUI loop starts; it works once the loop runs.
    """
    from PyQt6.QtCore import QObject, Qt, pyqtSignal

    class GuiCaller(QObject):
        call = pyqtSignal(object)

        def __init__(self) -> None:
            super().__init__()
            self.call.connect(self._run, Qt.ConnectionType.QueuedConnection)

        def _run(self, job: Any) -> None:
            action, done, failure = job
            try:
                action()
            except Exception as exc:
                failure.append(exc)
            finally:
                done.set()

    caller = GuiCaller()

    def on_gui(action: Callable[[], None], timeout: float = 10.0) -> None:
        done: threading.Event = threading.Event()
        failure: list[Exception] = []
        caller.call.emit((action, done, failure))
        if not done.wait(timeout):
            raise TimeoutError("the GUI thread did not answer")
        if failure:
            raise failure[0]

    on_gui.keep = caller  # type: ignore[attr-defined]  # the QObject must live on
    return on_gui


def _fill_screen(webview: Any, window: Any) -> None:
    """Cover the first screen even without a window manager."""
    try:
        screen = webview.screens[0]
        if (window.width, window.height) != (screen.width, screen.height):
            window.move(0, 0)
            window.resize(screen.width, screen.height)
    except Exception:
        log.exception("could not size the window to the screen")


def run_window(
    engine: Engine,
    wait_stop: Callable[[threading.Event], int],
    on_window: WindowHook | None = None,
) -> int:
    """Run the engine in a thread and the window on this (main) thread until a stop.

    ``wait_stop(failed)`` blocks in pywebview's worker thread until a stop signal (0) or
    until `failed` is set (1); ``on_window(engine, ui)`` runs on this thread once the
    window exists, before it starts. Returns the exit code.
    """
    import webview  # only the windowed kiosk pays for Qt

    started = threading.Event()
    failed = threading.Event()
    urls: list[str] = []

    def ready(url: str) -> None:
        urls.append(url)
        started.set()

    def engine_thread() -> None:
        try:
            asyncio.run(engine.run(ready))
        except Exception:
            log.exception("the kiosk engine failed")
            failed.set()
            started.set()

    worker = threading.Thread(target=engine_thread, name="kiosk-engine", daemon=True)
    worker.start()
    if not started.wait(30) or not urls:
        log.error("the kiosk engine did not start")
        engine.stop()
        return 1
    page_url = urls[0] + "/"
    window = webview.create_window(
        "empfang kiosk",
        url=page_url,
        # `ui` exists before the page can call: it is made right after the window.
        js_api=KioskApi(engine.act_threadsafe, lambda boxes: ui.place_video(boxes)),
        fullscreen=engine.config.fullscreen,
        x=0,
        y=0,
        width=1280,
        height=800,
        background_color="#FFFFFF",
        text_select=False,
        zoomable=False,
        confirm_close=False,
    )
    if window is None:
        raise RuntimeError("pywebview did not create a window")
    ui = WindowUi(window, page_url, gui_caller())
    engine.ui = ui
    if on_window is not None:
        on_window(engine, ui)
    result = {"code": 1}

    def wait_then_close() -> None:
        if engine.config.fullscreen:
            _fill_screen(webview, window)
        window.events.shown.wait(30)
        try:
            ui.add_overlays({"remote": engine.remote, "preview": engine.preview})
        except Exception:
            log.exception("the call's videos cannot be shown")
        result["code"] = wait_stop(failed)
        engine.stop()
        window.destroy()

    webview.start(wait_then_close, gui="qt", private_mode=True)
    engine.stop()
    worker.join(timeout=15)
    return result["code"]
