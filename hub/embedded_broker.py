"""Embedded MQTT broker (amqtt) for the hub's zero-setup, single-machine default."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from types import TracebackType
from typing import Any, Self

from amqtt.broker import Broker
from amqtt.session import Session

_QUIET_LOGGERS: tuple[tuple[str, int], ...] = (
    ("amqtt", logging.WARNING),
    # The protocol handler warns about harmless races such as "PUBACK waiter already done".
    ("amqtt.mqtt.protocol", logging.ERROR),
    ("transitions", logging.WARNING),
)


class _Broker(Broker):
    """amqtt Broker that sends retained messages only for the client's own subscriptions."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        """Publish retained messages matching a filter only if this session subscribed to it."""
        # amqtt 0.12 calls this on every CONNECT for *all* clients' filters, which would leak
        # retained messages to clients that never subscribed to them. Restrict it to filters
        # the session holds, with the QoS granted at subscription time.
        topic_filter = subscription[0]
        for subscriber, granted_qos in self._subscriptions.get(topic_filter, ()):
            if subscriber.client_id == session.client_id:
                await super()._publish_retained_messages_for_subscription(
                    (topic_filter, granted_qos), session
                )
                return


def _broker_config(host: str, port: int) -> dict[str, Any]:
    """Return an amqtt 0.12 broker config: one TCP listener, anonymous auth, nothing else."""
    return {
        "listeners": {
            "default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0},
        },
        # An explicit plugin map replaces amqtt's defaults: no $SYS publisher, no packet or
        # event logging, no topic checking and no persistence plugin (nothing written to disk).
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
        },
    }


def _quiet_amqtt_logging() -> None:
    """Lower the verbosity of amqtt's own loggers without touching the root logger."""
    for name, level in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)


def _check_bindable(host: str, port: int) -> None:
    """Raise RuntimeError if (host, port) cannot be bound the way asyncio's server binds it."""
    try:
        probe = socket.create_server((host, port))  # sets SO_REUSEADDR like asyncio does
    except OSError as exc:
        msg = f"embedded MQTT broker cannot bind {host}:{port}: {exc.strerror or exc}"
        raise RuntimeError(msg) from exc
    probe.close()


class EmbeddedBroker:
    """An amqtt broker running on its own event loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        """Remember where the broker will listen; nothing is started yet."""
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stop_flag = threading.Event()
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        """Return the address the broker listens on."""
        return self._host

    @property
    def port(self) -> int:
        """Return the TCP port the broker listens on."""
        return self._port

    @property
    def url(self) -> str:
        """Return the broker URL as mqtt://host:port."""
        return f"mqtt://{self._host}:{self._port}"

    @property
    def running(self) -> bool:
        """Return True while the broker thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and return once its port accepts TCP connections."""
        with self._lock:
            if self._thread is not None:
                msg = f"embedded MQTT broker on {self._host}:{self._port} is already running"
                raise RuntimeError(msg)
            _check_bindable(self._host, self._port)
            _quiet_amqtt_logging()
            self._ready.clear()
            self._stop_flag.clear()
            self._error = None
            thread = threading.Thread(
                target=self._run, name=f"embedded-mqtt-{self._port}", daemon=True
            )
            self._thread = thread
            thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            msg = f"embedded MQTT broker on {self._host}:{self._port} did not start in {timeout}s"
            raise RuntimeError(msg)
        error = self._error
        if error is not None:
            self.stop()
            cause = error.__cause__ or error
            msg = f"embedded MQTT broker cannot listen on {self._host}:{self._port}: {cause}"
            raise RuntimeError(msg) from error

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down cleanly and join its thread; safe to call repeatedly."""
        with self._lock:
            thread, loop, stop_requested = self._thread, self._loop, self._stop_requested
            if thread is None:
                return
            self._stop_flag.set()
            if loop is not None and stop_requested is not None:
                with contextlib.suppress(RuntimeError):  # loop already closed
                    loop.call_soon_threadsafe(stop_requested.set)
            thread.join(timeout)
            if thread.is_alive():
                msg = f"embedded MQTT broker on {self.url} did not stop within {timeout}s"
                raise RuntimeError(msg)
            self._thread = None
            self._loop = None
            self._stop_requested = None

    def __enter__(self) -> Self:
        """Start the broker when entering a with block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker when leaving a with block."""
        self.stop()

    def _run(self) -> None:
        """Thread body: run the broker's event loop until stop() is requested."""
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc  # reported by start() instead of dying silently in the thread
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        """Start the amqtt broker, wait for the stop request, then shut it down."""
        stop_requested = asyncio.Event()
        self._stop_requested = stop_requested
        self._loop = asyncio.get_running_loop()
        if self._stop_flag.is_set():  # stop() ran before the loop was published
            stop_requested.set()
        broker = _Broker(_broker_config(self._host, self._port), loop=self._loop)
        try:
            await broker.start()
        except Exception as exc:
            self._error = exc  # start() turns it into a RuntimeError
            return
        # amqtt's start() returns after asyncio.start_server() has bound and is listening,
        # so from here on the port accepts TCP connections.
        self._ready.set()
        try:
            await stop_requested.wait()
        finally:
            await broker.shutdown()
