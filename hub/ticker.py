"""Background work of a hub process: opening-hours transitions and periodic republishing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    """Runs `refresh` every `interval` seconds and `republish` every `republish_every`."""

    def __init__(
        self,
        refresh: Callable[[], object],
        republish: Callable[[], object],
        interval: float,
        republish_every: float,
    ) -> None:
        self._refresh = refresh
        self._republish = republish
        self._interval = interval
        self._republish_every = republish_every
        self._stop = threading.Event()
        self._republish_now = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="empfang-ticker", daemon=True)
            self._thread.start()

    def request_republish(self) -> None:
        """Republish everything at the next tick (after a broker reconnect)."""
        self._republish_now.set()

    def stop(self) -> None:
        """Stop and join the thread; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        last_republish = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                self._refresh()
                due = time.monotonic() - last_republish >= self._republish_every
                if due or self._republish_now.is_set():
                    self._republish_now.clear()
                    self._republish()
                    last_republish = time.monotonic()
            except Exception:  # keep ticking through a passing database or broker fault
                log.exception("background tick failed")
