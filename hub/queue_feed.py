"""Turns queue events into live updates: positions computed once per burst, sent where changed.

Every ticket change reaches every hub process as an MQTT event. A burst of events (many
citizens arriving at once) is handled with one position computation, and a waiting
citizen's live channel hears of it only when their own place changed or their own ticket
was the one that changed, and once after it starts listening. Staff queue pages get one
nudge per burst.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from hub.live import LiveFeed

log = logging.getLogger(__name__)
QUEUE_TOPIC = "queue"
TICKET_PREFIX = "ticket:"
BURST = 500  # events handled together at most

PlaceTuple = tuple[int, int | None]  # (position, estimate in minutes)
_STOP = object()


def ticket_topic(public_id: str) -> str:
    """The live topic of one ticket's citizen."""
    return TICKET_PREFIX + public_id


class QueueFeed:
    """A worker thread between the MQTT bridge and the live pages of this process."""

    def __init__(self, live: LiveFeed, places: Callable[[], dict[str, PlaceTuple]]) -> None:
        self._live = live
        self._places = places
        self._inbox: queue.Queue[object] = queue.Queue()
        # What each listening citizen was last told; a new listener is told at the next burst.
        self._told: dict[str, PlaceTuple | None] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker."""
        self._thread = threading.Thread(target=self._run, name="queue-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker after what is queued."""
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    def push(self, kind: str, ref: str | None) -> None:
        """A ticket changed (called from the MQTT thread; never blocks)."""
        self._inbox.put((kind, ref))

    def _run(self) -> None:
        while True:
            first = self._inbox.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < BURST:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in batch
            events = [e for e in batch if e is not _STOP]
            try:
                self.deliver(events)  # type: ignore[arg-type]
            except Exception:  # the feed must survive a database hiccup
                log.exception("queue update failed")
                self._told = {}  # the next burst tells everybody again
            if stop:
                return

    def deliver(self, events: list[tuple[str, str | None]]) -> None:
        """Send one burst of events to staff pages and to the citizens they concern."""
        staff = self._live.has_subscribers(QUEUE_TOPIC)
        citizens = self._live.topics(TICKET_PREFIX)
        if not staff and not citizens:
            self._told = {}
            return
        places = self._places()
        refs = {ref for _kind, ref in events if ref}
        if staff:
            self._live.publish(QUEUE_TOPIC, {"type": "queue", "refs": sorted(refs)})
        told: dict[str, PlaceTuple | None] = {}
        for topic in citizens:
            public_id = topic[len(TICKET_PREFIX) :]
            place = told[public_id] = places.get(public_id)
            own = public_id in refs
            if own or public_id not in self._told or self._told[public_id] != place:
                self._live.publish(
                    topic, {"type": "queue", "own": own, "place": list(place) if place else None}
                )
        self._told = told
