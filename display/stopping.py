"""Clean stops for systemd: SIGTERM and SIGINT are blocked in every thread and awaited
with sigtimedwait, which works even while a GUI loop owns the main thread."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class StopSignals:
    """Blocks the stop signals on enter (before any thread starts) and restores on exit."""

    def __init__(self, poll_seconds: float = 0.5) -> None:
        self._poll = poll_seconds
        self._previous: set[signal.Signals] | None = None

    def __enter__(self) -> StopSignals:
        self._previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            while signal.sigtimedwait(STOP_SIGNALS, 0) is not None:
                pass  # a second stop signal must not kill the process on unblocking
            signal.pthread_sigmask(signal.SIG_SETMASK, self._previous)
            self._previous = None

    def wait(self, failed: threading.Event) -> int:
        """Block until a stop signal (returns 0) or until ``failed`` is set (returns 1)."""
        while True:
            info = signal.sigtimedwait(STOP_SIGNALS, self._poll)
            if info is not None:
                log.info("stopping on %s", signal.Signals(info.si_signo).name)
                return 0
            if failed.is_set():
                log.error("stopping: the display failed")
                return 1
