"""Notices a broker that keeps the connection open but no longer answers (hung, not dead).

A frozen broker leaves its TCP connection up, so paho's own keepalive takes 1.5 to 2
keepalive periods to give up. Instead the hub sends a small QoS 1 probe on a topic only
the hub uses and counts the broker as answering while a PUBACK (or a CONNACK) came back
within ``timeout`` seconds. One probe at a time is in flight, so a hung broker never
piles them up; each hub process probes its own connection.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

# How long one wait for a PUBACK blocks before checking for stop and reconnects.
WAIT_SLICE = 0.25

Publish = Callable[[], mqtt.MQTTMessageInfo | None]


class BrokerProbe:
    """Sends a probe every timeout/3 seconds; knows how long ago the broker last answered."""

    def __init__(self, publish: Publish, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError("timeout: must be more than 0 seconds")
        self.timeout = timeout
        # An answer is due every interval: two thirds of the bound are left for a slow one.
        self.interval = timeout / 3
        self._publish = publish
        # Written by the network and probe threads, read by request threads: plain
        # attribute stores, each atomic, so no lock (none may be held around paho calls).
        self._answered_at = time.monotonic()
        self._round = 0  # one per CONNACK: a probe sent on an older connection is moot
        self._warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin probing in a background thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and join the thread; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def connected(self) -> None:
        """Count a CONNACK as an answer and start a new round of probes."""
        self._round += 1
        self._warned = False
        self._answered_at = time.monotonic()

    def silence(self) -> float:
        """Seconds since the broker last answered."""
        return time.monotonic() - self._answered_at

    def answering(self) -> bool:
        """Whether the broker answered within the bound."""
        return self.silence() <= self.timeout

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            round_ = self._round
            info = self._publish()
            if info is not None and self._acknowledged(info, round_):
                if self._warned:
                    log.info("the broker answers again after %.1f s", self.silence())
                    self._warned = False
                self._answered_at = time.monotonic()

    def _acknowledged(self, info: mqtt.MQTTMessageInfo, round_: int) -> bool:
        """Wait for the probe's PUBACK until it comes, the hub stops or reconnects."""
        while not self._stop.is_set() and round_ == self._round:
            try:
                info.wait_for_publish(WAIT_SLICE)
                if info.is_published():
                    return True
            except (RuntimeError, ValueError):  # not sent: no connection or a full queue
                return False
            if not self._warned and not self.answering():
                self._warned = True
                log.warning(
                    "the broker has not answered for %.1f s; the hub reports it down",
                    self.silence(),
                )
        return False
