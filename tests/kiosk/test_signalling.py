"""The kiosk's live-channel client against a small WebSocket server standing in for the hub."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from kiosk.signalling import (
    CallCredentials,
    SignallingError,
    connect,
    live_url,
    origin_of,
    parse_message,
)

TIMEOUT = 5.0


class FakeHub:
    """Accepts one live channel, records what it got, and sends scripted frames."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.path = ""
        self.origin: str | None = None
        self.received: list[dict[str, Any]] = []
        self.closed = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.path = ws.request.path
        self.origin = ws.request.headers.get("Origin")
        for frame in self.frames:
            await ws.send(frame)
        async for raw in ws:
            self.received.append(json.loads(raw))
        self.closed.set()


def _port(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


def _refuse(connection: ServerConnection, request: Request) -> Response:
    return connection.respond(HTTPStatus.FORBIDDEN, "cross-site\n")


def test_connects_from_the_hub_origin_yields_valid_messages_and_sends_signals() -> None:
    state = {"type": "state", "me": {"id": "p-1"}, "participants": []}
    signal = {"type": "signal", "from": "p-2", "kind": "bye", "data": {}}
    hub = FakeHub([json.dumps(state), "not json", "[1]", '{"type": 3}', json.dumps(signal)])

    async def main() -> list[dict[str, Any]]:
        async with serve(hub.handler, "127.0.0.1", 0) as server:
            port = _port(server)
            base = f"http://127.0.0.1:{port}"
            client = await connect(base, "p-1", "k y/+", ping_seconds=0.1, proxy=None)
            got: list[dict[str, Any]] = []
            async for message in client.messages():
                got.append(message)
                if len(got) == 2:
                    break
            await client.send_signal("p-2", "candidate", {"candidate": "", "sdpMid": "0"})
            await asyncio.sleep(0.35)  # a few pings
            await client.leave()
            await client.close()
            await client.close()
            assert client.closed
            with pytest.raises(SignallingError):
                await client.send_signal("p-2", "bye", {})
            await client.leave()  # a closed channel is ignored
            await asyncio.wait_for(hub.closed.wait(), TIMEOUT)
            assert hub.origin == base
            return got

    got = asyncio.run(main())
    assert got == [state, signal]
    assert hub.path == "/call/p-1/live?k=k%20y%2F%2B"
    assert hub.received[0] == {
        "type": "signal",
        "to": "p-2",
        "kind": "candidate",
        "data": {"candidate": "", "sdpMid": "0"},
    }
    assert hub.received[-1] == {"type": "leave"}
    assert sum(m == {"type": "ping"} for m in hub.received) >= 2


def test_a_refused_or_unreachable_channel_raises_signalling_error() -> None:
    async def main() -> None:
        async with serve(FakeHub([]).handler, "127.0.0.1", 0, process_request=_refuse) as server:
            port = _port(server)
            with pytest.raises(SignallingError):
                await connect(f"http://127.0.0.1:{port}", "p-1", "k", proxy=None)
        with pytest.raises(SignallingError):  # the server is gone now
            await connect(f"http://127.0.0.1:{port}", "p-1", "k", proxy=None, open_timeout=2)

    asyncio.run(main())


def test_unknown_signal_kinds_are_not_sent() -> None:
    async def main() -> None:
        hub = FakeHub([])
        async with serve(hub.handler, "127.0.0.1", 0) as server:
            port = _port(server)
            client = await connect(f"http://127.0.0.1:{port}", "p-1", "k", proxy=None)
            with pytest.raises(ValueError, match="kind"):
                await client.send_signal("p-2", "offer", {})
            await client.close()

    asyncio.run(main())


def test_urls_follow_the_hub_scheme() -> None:
    assert live_url("https://hub.example", "/call/p-1/live", "x") == (
        "wss://hub.example/call/p-1/live?k=x"
    )
    assert live_url("http://127.0.0.1:8000/", "/p", "a&b") == "ws://127.0.0.1:8000/p?k=a%26b"
    assert origin_of("https://hub.example:8443/some/path") == "https://hub.example:8443"
    with pytest.raises(SignallingError):
        live_url("ftp://hub", "/p", "k")


def test_messages_must_be_objects_with_a_type() -> None:
    assert parse_message('{"type": "ping"}') == {"type": "ping"}
    assert parse_message(b'{"type": "x", "y": 1}') == {"type": "x", "y": 1}
    for bad in ("", "{", "[]", '{"kind": "x"}', '{"type": null}'):
        assert parse_message(bad) is None


def test_credentials_from_the_hub_keep_only_the_channel_path() -> None:
    body = {
        "participant": "p-1",
        "key": "secret",
        "live": "ws://127.0.0.1:5000/call/p-1/live",
        "ice_servers": [{"urls": ["stun:stun.example:3478"]}],
    }
    creds = CallCredentials.from_json(body)
    assert creds.live == "/call/p-1/live"
    assert creds.ice_servers == ({"urls": ["stun:stun.example:3478"]},)
    assert CallCredentials.from_json({**body, "live": "/call/p-1/live"}).live == "/call/p-1/live"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"participant": None}, "participant"),
        ({"key": ""}, "key"),
        ({"live": 5}, "live"),
        ({"live": "nowhere"}, "live"),
        ({"ice_servers": "stun:x"}, "ice_servers"),
        ({"ice_servers": ["stun:x"]}, "ice_servers"),
    ],
)
def test_malformed_credentials_are_refused(change: dict[str, Any], field: str) -> None:
    body = {"participant": "p-1", "key": "k", "live": "/call/p-1/live", **change}
    with pytest.raises(SignallingError, match=field):
        CallCredentials.from_json(body)
    with pytest.raises(SignallingError):
        CallCredentials.from_json(["not", "an", "object"])
