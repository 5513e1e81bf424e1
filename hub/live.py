"""In-process fan-out of hub events to the live pages of this process.

Events enter only from the MQTT bridge, so every hub process sees every change,
whichever process made it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]
RESYNC: Event = {"type": "resync"}


class Subscription:
    """One live connection's inbox; a full inbox turns into a single resync request."""

    def __init__(self, topics: frozenset[str], maxsize: int) -> None:
        self.topics = topics
        self._queue: queue.Queue[Event] = queue.Queue(maxsize=maxsize)
        self._overflowed = threading.Event()

    def offer(self, event: Event) -> None:
        """Queue an event; when the reader lags, drop it and ask for a resync instead."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._overflowed.set()

    def get(self, timeout: float) -> Event | None:
        """The next event, RESYNC after an overflow, or None after `timeout` seconds."""
        if self._overflowed.is_set():
            self._overflowed.clear()
            with self._queue.mutex:
                self._queue.queue.clear()
            return RESYNC
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


class LiveFeed:
    """Thread-safe broadcast of events to subscribers, indexed by topic."""

    def __init__(self, maxsize: int = 1000) -> None:
        self._lock = threading.Lock()
        self._by_topic: dict[str, set[Subscription]] = {}
        self._maxsize = maxsize

    def publish(self, topic: str, event: Event) -> None:
        """Hand `event` to every subscriber of `topic`."""
        with self._lock:
            targets = list(self._by_topic.get(topic, ()))
        for sub in targets:
            sub.offer(event)

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[Subscription]:
        """Receive events of `topics` for the duration of the block."""
        sub = Subscription(frozenset(topics), self._maxsize)
        with self._lock:
            for topic in sub.topics:
                self._by_topic.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                for topic in sub.topics:
                    subs = self._by_topic.get(topic)
                    if subs is not None:
                        subs.discard(sub)
                        if not subs:
                            del self._by_topic[topic]

    def has_subscribers(self, topic: str) -> bool:
        """Whether anyone in this process listens to `topic`."""
        with self._lock:
            return topic in self._by_topic

    def topics(self, prefix: str) -> list[str]:
        """The topics starting with `prefix` that someone in this process listens to."""
        with self._lock:
            return [t for t in self._by_topic if t.startswith(prefix)]

    def __len__(self) -> int:
        with self._lock:
            return len({s for subs in self._by_topic.values() for s in subs})
