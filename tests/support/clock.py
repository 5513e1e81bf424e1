"""A clock the test moves by hand (the hub takes any object with now())."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta


class ManualClock:
    """Stands still until the test sets or advances it."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the test set."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when`."""
        with self._lock:
            self._now = when

    def advance(self, **delta: float) -> None:
        """Move forward by timedelta(**delta)."""
        with self._lock:
            self._now += timedelta(**delta)
