"""The kiosk's hub client: one lost connection is tried again where that is harmless."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from kiosk.hub_client import HubClient, HubUnreachable

BODY = b'{"ok": true}'
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode()
    + BODY
)


class FlakyHub:
    """A loopback server that resets the first `resets` connections, then answers."""

    def __init__(self, resets: int) -> None:
        self.resets = resets
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self.connections += 1
                conn.recv(65536)
                if self.connections <= self.resets:
                    # Close with a reset (RST) instead of a clean end.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue
                conn.sendall(ANSWER)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def flaky() -> Iterator[FlakyHub]:
    hub = FlakyHub(resets=1)
    try:
        yield hub
    finally:
        hub.close()


def test_a_reset_connection_is_tried_once_more(flaky: FlakyHub) -> None:
    client = HubClient(f"http://127.0.0.1:{flaky.port}")
    assert client.request("GET", "/api/v1/reception") == {"ok": True}
    assert flaky.connections == 2


def test_a_ticket_is_never_asked_for_twice(flaky: FlakyHub) -> None:
    client = HubClient(f"http://127.0.0.1:{flaky.port}")
    with pytest.raises(HubUnreachable) as failure:
        client.request("POST", "/api/v1/reception/tickets", {"name": "Anna"})
    assert failure.value.connection is True
    assert flaky.connections == 1


def test_two_failures_make_the_hub_unreachable() -> None:
    hub = FlakyHub(resets=5)
    try:
        with pytest.raises(HubUnreachable):
            HubClient(f"http://127.0.0.1:{hub.port}").request("GET", "/api/v1/reception")
        assert hub.connections == 2
    finally:
        hub.close()
    # Nobody listens any more: refused, also after the second try.
    with pytest.raises(HubUnreachable) as failure:
        HubClient(f"http://127.0.0.1:{hub.port}").request("GET", "/api/v1/reception")
    assert failure.value.connection is True
