"""A plain WebSocket client for the hub's live channels (no browser), with bounded waits."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0  # upper bound for a handshake or the next message


def ws_url(base_url: str, path: str) -> str:
    """ws://host:port/path for an http://host:port base."""
    return "ws" + base_url.removeprefix("http") + path


def open_live(
    base_url: str,
    path: str,
    *,
    origin: str | None = "",
    cookies: Mapping[str, str] | None = None,
) -> ClientConnection:
    """Open a live channel; `origin` "" means the server's own origin, None sends none.

    Raises websockets' InvalidStatus when the hub refuses the handshake.
    """
    headers = {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return connect(
        ws_url(base_url, path),
        origin=base_url if origin == "" else origin,  # type: ignore[arg-type]
        additional_headers=headers,
        proxy=None,  # never a system proxy for 127.0.0.1
        open_timeout=TIMEOUT,
        close_timeout=0.5,  # the test server may keep TCP open after a close
        compression=None,
    )


def receive_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next message, parsed; fails after `timeout` seconds."""
    message = ws.recv(timeout=timeout)
    return json.loads(message)


@dataclass(frozen=True)
class Outcome:
    """What happened when a client opened a live channel and listened briefly."""

    kind: str  # "refused" (handshake status), "closed" (close code) or "message"
    status: int | None = None
    code: int | None = None
    message: dict[str, Any] | None = None


def try_live(
    base_url: str,
    path: str,
    *,
    origin: str | None = "",
    cookies: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Outcome:
    """Open `path`, wait for the first message or the close, and hang up."""
    try:
        ws = open_live(base_url, path, origin=origin, cookies=cookies)
    except InvalidStatus as exc:
        return Outcome("refused", status=exc.response.status_code)
    with ws:
        try:
            return Outcome("message", message=receive_json(ws, timeout))
        except ConnectionClosed as exc:
            return Outcome("closed", code=exc.rcvd.code if exc.rcvd else None)
