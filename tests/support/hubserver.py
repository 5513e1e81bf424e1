"""Serve a hub app over real HTTP in a background thread (for browsers and benchmarks)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import make_server

from tests.support.net import free_port


class LiveServer:
    """A threaded WSGI server for `app` on a free port; stop() shuts it down."""

    def __init__(self, app: Flask) -> None:
        self.port = free_port()
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        """Begin serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def serve_http(app: Flask) -> Iterator[LiveServer]:
    """The hub over real HTTP for the duration of the block."""
    server = LiveServer(app).start()
    try:
        yield server
    finally:
        server.stop()
