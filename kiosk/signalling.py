"""An asyncio client for the hub's call live channel (``/call/<participant>/live``).

The hub sends ``state`` messages (who is in the call), ``signal`` messages relayed from
other participants (``description``, ``candidate``, ``bye``), ``ended``/``removed`` and
``error``. This client sends WebRTC signals, a ``ping`` every few seconds (the hub drops a
participant it has not heard from in 15 s), ``chat`` and ``leave``.

Every message from the hub is checked before it is handed on: a frame that is not a JSON
object with a string ``type`` is logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Origin

log = logging.getLogger(__name__)

PING_SECONDS = 5.0
SIGNAL_KINDS = ("description", "candidate", "bye")


class SignallingError(Exception):
    """The live channel could not be used (refused, closed, or a malformed answer)."""


@dataclass(frozen=True)
class CallCredentials:
    """A seat in a call, as the hub hands it out (``POST …/tickets/<token>/call``)."""

    participant: str
    key: str
    live: str  # the live channel's path, e.g. /call/p-…/live
    ice_servers: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, body: object) -> CallCredentials:
        """Validate the hub's JSON answer; raises SignallingError naming the bad field."""
        if not isinstance(body, Mapping):
            raise SignallingError("credentials: not a JSON object")
        values: dict[str, str] = {}
        for name in ("participant", "key", "live"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise SignallingError(f"credentials: {name} must be a non-empty string")
            values[name] = value
        # The hub names the channel by URL (ws://host/call/…/live, as flask-sock's url_for
        # builds it); like call.js, only its path is used, on the hub's own base URL.
        path = urlsplit(values["live"]).path
        if not path.startswith("/"):
            raise SignallingError("credentials: live must be a URL or path on the hub")
        values["live"] = path
        servers = body.get("ice_servers", [])
        if not isinstance(servers, list) or not all(isinstance(s, Mapping) for s in servers):
            raise SignallingError("credentials: ice_servers must be a list of objects")
        return cls(values["participant"], values["key"], values["live"], tuple(servers))


def live_url(base_url: str, path: str, key: str) -> str:
    """ws(s)://host/path?k=KEY for an http(s) hub base URL."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SignallingError(f"hub URL must be http(s)://host[:port], not {base_url!r}")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}?k={quote(key, safe='')}"


def origin_of(base_url: str) -> str:
    """The Origin the hub accepts for its live channels: its own scheme://host[:port]."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_message(raw: str | bytes) -> dict[str, Any] | None:
    """One frame from the hub as a dict with a string ``type``, or None (logged) if not."""
    try:
        message = json.loads(raw)
    except ValueError as exc:
        log.warning("live channel: dropped a frame that is not JSON: %s", exc)
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        log.warning("live channel: dropped a frame without a string 'type'")
        return None
    return message


class Signalling(Protocol):
    """What a call needs from its live channel (`SignallingClient`, or a fake in tests)."""

    participant: str

    def messages(self) -> AsyncIterator[dict[str, Any]]:
        """The hub's messages until the channel closes."""
        ...

    async def send_signal(self, to: str, kind: str, data: Mapping[str, Any]) -> None:
        """Relay a WebRTC signal to another participant."""
        ...

    async def leave(self) -> None:
        """Give up the seat in the call."""
        ...

    async def close(self) -> None:
        """Close the channel; idempotent."""
        ...


class SignallingClient:
    """One participant's open live channel; use `connect()` to make one.

    `messages()` yields the hub's messages until the channel closes. `close()` is
    idempotent and also stops the ping task.
    """

    def __init__(
        self, ws: ClientConnection, participant: str, ping_seconds: float = PING_SECONDS
    ) -> None:
        self.participant = participant
        self._ws = ws
        self._closed = False
        self._ping = asyncio.get_running_loop().create_task(
            self._ping_forever(ping_seconds), name=f"ping {participant}"
        )

    @property
    def closed(self) -> bool:
        """Whether close() was called or the hub closed the channel."""
        return self._closed or self._ws.close_code is not None

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        """The hub's messages, parsed and checked, until the channel closes."""
        try:
            async for raw in self._ws:
                message = parse_message(raw)
                if message is not None:
                    yield message
        except ConnectionClosed as exc:
            log.info("live channel closed: %s", exc)

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one JSON message; raises SignallingError when the channel is closed."""
        if self._closed:
            raise SignallingError("the live channel is closed")
        try:
            await self._ws.send(json.dumps(dict(message)))
        except ConnectionClosed as exc:
            raise SignallingError(f"the live channel is closed: {exc}") from exc

    async def send_signal(self, to: str, kind: str, data: Mapping[str, Any]) -> None:
        """Relay a WebRTC description, candidate or bye to another participant."""
        if kind not in SIGNAL_KINDS:
            raise ValueError(f"kind must be one of {SIGNAL_KINDS}, not {kind!r}")
        await self.send({"type": "signal", "to": to, "kind": kind, "data": dict(data)})

    async def chat(self, text: str) -> None:
        """Say something in the call's chat."""
        await self.send({"type": "chat", "text": text})

    async def leave(self) -> None:
        """Leave the call for good (the seat is given up); a closed channel is ignored."""
        with contextlib.suppress(SignallingError):
            await self.send({"type": "leave"})

    async def close(self) -> None:
        """Stop pinging and close the channel; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._ping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ping
        await self._ws.close()

    async def _ping_forever(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self._ws.send(json.dumps({"type": "ping"}))
            except ConnectionClosed:
                return


async def connect(
    base_url: str,
    participant: str,
    key: str,
    *,
    live_path: str | None = None,
    ping_seconds: float = PING_SECONDS,
    open_timeout: float = 10.0,
    proxy: str | Literal[True] | None = True,
) -> SignallingClient:
    """Open `participant`'s live channel on the hub at `base_url` (http(s)://host[:port]).

    The hub only accepts live channels from its own origin, so the Origin header is the
    hub's base URL. `proxy=True` follows the environment's proxy settings; pass None to
    connect directly. Raises SignallingError when the hub cannot be reached or refuses.
    """
    path = live_path or f"/call/{quote(participant, safe='')}/live"
    try:
        ws = await ws_connect(
            live_url(base_url, path, key),
            origin=Origin(origin_of(base_url)),
            proxy=proxy,
            open_timeout=open_timeout,
            close_timeout=2.0,
            max_size=1 << 20,
        )
    except (OSError, TimeoutError, WebSocketException) as exc:  # InvalidStatus: refused
        raise SignallingError(f"cannot open the live channel: {exc}") from exc
    return SignallingClient(ws, participant, ping_seconds)
