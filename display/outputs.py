"""The output interface and the two ways to drive one: inline, or on its own thread."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from display.model import BoardView

log = logging.getLogger(__name__)

# Called with (output name, seconds from MQTT receipt to the output showing it).
LatencyReport = Callable[[str, float], None]


class Renderer(Protocol):
    """Something that shows a board view: LEDs, an e-paper panel, a page."""

    name: str

    def render(self, view: BoardView) -> bool:
        """Show ``view``; return True when anything visible changed."""
        ...

    def close(self) -> None:
        """Release the hardware or window; safe to call twice."""
        ...


@runtime_checkable
class Heartbeat(Protocol):
    """A renderer that wants to hear that the display is alive while nothing changes."""

    def beat(self) -> None:
        """The core is alive and the last view still holds."""
        ...


def _report(report: LatencyReport | None, name: str, received: float | None) -> None:
    if report is not None and received is not None:
        report(name, time.perf_counter() - received)


class InlineOutput:
    """Renders in the caller's thread: for fast outputs such as LEDs."""

    def __init__(self, renderer: Renderer, report: LatencyReport | None = None) -> None:
        self.renderer = renderer
        self.name = renderer.name
        self._report = report
        self._closed = False

    def start(self) -> None:
        """Nothing to start."""

    def push(self, view: BoardView, received: float | None = None) -> None:
        """Show ``view`` now; ``received`` is the perf_counter() of the MQTT receipt."""
        try:
            changed = self.renderer.render(view)
        except Exception:
            log.exception("output %s failed to render", self.name)
            return
        if changed:
            _report(self._report, self.name, received)

    def beat(self) -> None:
        """Pass the heartbeat on."""
        if isinstance(self.renderer, Heartbeat):
            self.renderer.beat()

    def close(self) -> None:
        """Close the renderer; safe to call twice."""
        if not self._closed:
            self._closed = True
            self.renderer.close()


class ThreadedOutput:
    """Renders on a worker thread, always the newest view: for slow panels and windows."""

    def __init__(self, renderer: Renderer, report: LatencyReport | None = None) -> None:
        self.renderer = renderer
        self.name = renderer.name
        self._report = report
        self._cond = threading.Condition()
        self._pending: tuple[BoardView, float | None] | None = None
        self._beat = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"display-{self.name}", daemon=True
            )
            self._thread.start()

    def push(self, view: BoardView, received: float | None = None) -> None:
        """Queue ``view``, replacing any view not yet shown; never blocks."""
        with self._cond:
            self._pending = (view, received)
            self._cond.notify()

    def beat(self) -> None:
        """Queue a heartbeat."""
        if isinstance(self.renderer, Heartbeat):
            with self._cond:
                self._beat = True
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._beat and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                pending, self._pending = self._pending, None
                beat, self._beat = self._beat, False
            try:
                if pending is not None:
                    view, received = pending
                    if self.renderer.render(view):
                        _report(self._report, self.name, received)
                elif beat and isinstance(self.renderer, Heartbeat):
                    self.renderer.beat()
            except Exception:
                log.exception("output %s failed to render", self.name)

    def close(self) -> None:
        """Stop the worker, then close the renderer; safe to call twice."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.renderer.close()
