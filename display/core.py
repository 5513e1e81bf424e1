"""The display's heart at run time: feeds the board, re-checks it every second, and
pushes the view to the outputs only when what they show would change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import Protocol
from zoneinfo import ZoneInfo

from display.model import BoardView, RoomBoard

log = logging.getLogger(__name__)


class Output(Protocol):
    """An output as the core drives it (see display.outputs)."""

    name: str

    def start(self) -> None:
        """Begin work."""
        ...

    def push(self, view: BoardView, received: float | None = None) -> None:
        """Show ``view``."""
        ...

    def beat(self) -> None:
        """Nothing changed; the core is alive."""
        ...

    def close(self) -> None:
        """Stop and release."""
        ...


class DisplayCore:
    """Owns the board and the outputs; safe to call from the MQTT thread and the watchdog."""

    def __init__(
        self,
        board: RoomBoard,
        outputs: Sequence[Output],
        zone: ZoneInfo,
        *,
        tick_seconds: float = 1.0,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.board = board
        self.outputs = tuple(outputs)
        self._zone = zone
        self._tick_seconds = tick_seconds
        self._on_tick = on_tick
        self._lock = threading.RLock()
        self._shown: tuple[BoardView, date] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failed = threading.Event()
        self._closed = False

    def start(self) -> None:
        """Show the first view (all unknown) and start the watchdog."""
        for output in self.outputs:
            output.start()
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="display-watchdog", daemon=True
            )
            self._thread.start()

    def on_message(self, topic: str, payload: bytes, received: float | None = None) -> None:
        """An MQTT message arrived (``received`` is perf_counter() at receipt)."""
        with self._lock:
            if self.board.feed(topic, payload):
                self.refresh(received)

    def on_connection(self, up: bool) -> None:
        """The broker connection went up or down."""
        with self._lock:
            self.board.set_connected(up)
            self.refresh()

    def set_rooms(self, rooms: Sequence[str]) -> bool:
        """Show other rooms (the hub changed the assignment); True when they changed."""
        with self._lock:
            if not self.board.set_rooms(rooms):
                return False
            self.refresh()
            return True

    def set_refused(self, refused: bool) -> None:
        """The broker refuses (or accepts again) this display's login."""
        with self._lock:
            if self.board.refused != refused:
                self.board.set_refused(refused)
                self.refresh()

    def redraw(self) -> None:
        """Push the current view to every output even if it did not change (reload)."""
        with self._lock:
            self._shown = None
            self.refresh()

    def view(self) -> BoardView:
        """What the outputs show now."""
        with self._lock:
            return self.board.view()

    def refresh(self, received: float | None = None) -> bool:
        """Recompute the view; push it to every output if it changed. True when pushed."""
        with self._lock:
            now = self.board.now()
            view = self.board.view(now)
            # A new day changes texts like "seit 24.11. 14:03" without changing the view.
            key = (view, now.astimezone(self._zone).date())
            if key == self._shown:
                return False
            self._shown = key
            for output in self.outputs:
                output.push(view, received)
            return True

    def _watch(self) -> None:
        try:
            while not self._stop.wait(self._tick_seconds):
                if not self.refresh():
                    for output in self.outputs:
                        output.beat()
                if self._on_tick is not None:
                    try:
                        self._on_tick()
                    except Exception:  # housekeeping must not stop the watchdog
                        log.exception("the display's periodic task failed")
        except Exception:
            log.exception("the display watchdog failed")
            self.failed.set()

    def close(self) -> None:
        """Stop the watchdog and close every output; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        for output in self.outputs:
            try:
                output.close()
            except Exception:
                log.exception("closing output %s failed", output.name)
