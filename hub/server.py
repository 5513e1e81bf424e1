"""Serve the hub with gunicorn's threaded workers (fit for a single-site production box)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class HubServer(BaseApplication):
    """Gunicorn application whose workers each build their own hub app."""

    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        """Apply our options to gunicorn's config."""
        for key, value in self._options.items():
            self.cfg.set(key, value)
        self.cfg.set("worker_exit", _close_worker_app)

    def load(self) -> Any:
        """Build the app inside the worker (after fork: threads and sockets are its own)."""
        return self._factory()


def _close_worker_app(_server: Any, worker: Any) -> None:
    # Duck-typed, so the master never has to import Flask.
    runtime = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("empfang")
    if runtime is not None:
        runtime.close()


def serve(factory: Callable[[], Any], host: str, port: int, workers: int, threads: int) -> None:
    """Run gunicorn in the foreground until SIGTERM or SIGINT."""
    HubServer(
        factory,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            # Every open live page holds a connection; gunicorn's default of 1000 would stop
            # the worker from accepting anything (even a staff member's admit) at that point.
            "worker_connections": threads + 1000,
            # As long as nginx's default buffers (8 KB), so an over-long query reaches the
            # hub and gets its JSON refusal instead of the server's bare 414 page.
            "limit_request_line": 8190,
            "timeout": 60,
            "graceful_timeout": 10,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "empfang-hub",
        },
    ).run()
