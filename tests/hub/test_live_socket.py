"""The one live-socket component, channel by channel, over real WebSockets.

Every live page (room board, fleet, staff queue, a citizen's ticket on the page and in the
API, a call participant) runs through `hub.live_socket`. Each gets its snapshot first;
the listen-only ones answer input with an error and change nothing; a staff stream ends
for an account disabled while it listens; and a page whose inbox overflowed while it
could not keep up gets one fresh snapshot instead of the events it missed.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from hub import live_socket
from hub.db import session_scope
from hub.models import User
from hub.runtime import DEVICES_TOPIC, ROOMS_TOPIC, HubRuntime, staff_topic
from tests.conftest import Account, create_room, log_in
from tests.support.hubserver import LiveServer
from tests.support.reception import setup_reception
from tests.support.wsclient import open_live, receive_json

STAFF_CHANNELS = {
    "rooms": ("/rooms/live", ROOMS_TOPIC),
    "devices": ("/admin/devices/live", DEVICES_TOPIC),
}


def _cookies(client: FlaskClient) -> dict[str, str]:
    cookie = client.get_cookie("empfang_session")
    assert cookie is not None
    return {"empfang_session": cookie.value}


def _ticket(client: FlaskClient) -> str:
    """Take a ticket through the citizen API; its token."""
    answer = client.post(
        "/api/v1/reception/tickets",
        json={"name": "Erika", "category": "wohngeld", "description": "Antrag", "consent": True},
    )
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["token"]


def _drain(ws: ClientConnection, until: Any) -> list[dict[str, Any]]:
    """Read messages until one matches `until` (bounded by the client's timeout)."""
    seen: list[dict[str, Any]] = []
    while True:
        message = receive_json(ws)
        seen.append(message)
        if until(message):
            return seen


@pytest.fixture
def reception(runtime: HubRuntime) -> None:
    """An open reception with its concerns, so citizens can take tickets."""
    setup_reception(runtime)


@pytest.mark.parametrize("channel", STAFF_CHANNELS, ids=list(STAFF_CHANNELS))
def test_a_full_inbox_turns_into_one_fresh_snapshot(
    runtime: HubRuntime,
    served: LiveServer,
    admin_client: tuple[FlaskClient, str],
    channel: str,
) -> None:
    client, _token = admin_client
    path, topic = STAFF_CHANNELS[channel]
    with open_live(served.url, path, cookies=_cookies(client)) as ws:
        assert receive_json(ws)["type"] == "snapshot"
        # While this page does not read, big events fill the socket until the hub's send
        # blocks; what follows overflows the page's inbox.
        padding = "x" * 100_000
        for n in range(300):
            runtime.live.publish(topic, {"type": "filler", "n": n, "padding": padding})
        for n in range(1500):
            runtime.live.publish(topic, {"type": "filler", "n": 300 + n})
        seen = _drain(ws, lambda m: m["type"] == "snapshot")
        # The page keeps following (an event offered while the inbox is still full is
        # dropped for the next snapshot, so it is offered until it gets through).
        for _ in range(20):
            runtime.live.publish(topic, {"type": "after"})
            seen += _drain(ws, lambda m: m["type"] in ("after", "snapshot"))
            if seen[-1]["type"] == "after":
                break
    assert seen[-1]["type"] == "after"
    assert "snapshot" in [m["type"] for m in seen]
    numbers = [m["n"] for m in seen if m["type"] == "filler"]
    assert numbers == sorted(numbers)
    assert len(numbers) < 1800  # events were dropped for the snapshot, not sent late


def test_the_room_board_learns_its_own_rooms_on_its_own_topic(
    runtime: HubRuntime, served: LiveServer, admin_client: tuple[FlaskClient, str]
) -> None:
    client, token = admin_client
    create_room(client, token, "raum-1")
    with open_live(served.url, "/rooms/live", cookies=_cookies(client)) as ws:
        first = receive_json(ws)
        assert first["type"] == "snapshot" and first["mine"] == []
        answer = client.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": token})
        assert answer.status_code == 200
        seen = _drain(ws, lambda m: m["type"] == "mine")
        assert seen[-1] == {"type": "mine", "mine": ["raum-1"]}
        # Room statuses carry no one's presence: that is each staff member's own topic.
        assert all("mine" not in m for m in seen if m["type"] == "room")
        client.post("/api/v1/rooms/raum-1/checkout", headers={"X-CSRFToken": token})
        assert _drain(ws, lambda m: m["type"] == "mine")[-1]["mine"] == []


def test_another_staff_members_presence_is_not_sent(
    runtime: HubRuntime,
    served: LiveServer,
    admin_client: tuple[FlaskClient, str],
    staff_client: tuple[FlaskClient, str],
) -> None:
    admin, token = admin_client
    create_room(admin, token, "raum-1")
    staff, staff_token = staff_client
    with open_live(served.url, "/rooms/live", cookies=_cookies(admin)) as ws:
        receive_json(ws)
        staff.post("/api/v1/rooms/raum-1/checkin", headers={"X-CSRFToken": staff_token})
        busy = _drain(ws, lambda m: m["type"] == "room" and m["status"]["state"] == "busy")
        # The admin's own marker travels last on the admin's topic: nothing else came.
        with session_scope(runtime.sessions) as db:
            chefin = db.scalar(select(User.id).where(User.username == "chefin"))
        assert chefin is not None
        runtime.live.publish(staff_topic(chefin), {"type": "marker"})
        seen = busy + _drain(ws, lambda m: m["type"] in ("marker", "mine"))
    assert not [m for m in seen if m["type"] == "mine"]


@pytest.mark.parametrize(
    "path",
    ["/rooms/live", "/admin/devices/live", "/staff/queue/live"],
    ids=["rooms", "devices", "queue"],
)
def test_staff_channels_are_listen_only(
    served: LiveServer, admin_client: tuple[FlaskClient, str], path: str
) -> None:
    client, _token = admin_client
    with open_live(served.url, path, cookies=_cookies(client)) as ws:
        receive_json(ws)
        ws.send(json.dumps({"type": "room", "status": {"room": "x"}}))
        assert receive_json(ws) == live_socket.READ_ONLY


@pytest.mark.parametrize(
    "path", ["/empfang/t/{token}/live", "/api/v1/reception/tickets/{token}/live"]
)
def test_a_ticket_channel_sends_the_view_first_and_each_change(
    app: Flask, runtime: HubRuntime, served: LiveServer, reception: None, path: str
) -> None:
    token = _ticket(app.test_client())
    with open_live(served.url, path.format(token=token)) as ws:
        first = receive_json(ws)
        assert first["type"] == "ticket" and first["status"] == "waiting"
        assert app.test_client().delete(f"/api/v1/reception/tickets/{token}").status_code == 200
        left = _drain(ws, lambda m: m.get("status") != "waiting")[-1]
        assert left["type"] == "ticket" and left["status"] == "ended"


@pytest.mark.parametrize(
    ("path", "as_admin"),
    [("/rooms/live", False), ("/staff/queue/live", False), ("/admin/devices/live", True)],
    ids=["rooms", "queue", "devices"],
)
def test_a_disabled_account_stops_listening(
    app: Flask,
    runtime: HubRuntime,
    served: LiveServer,
    admin_client: tuple[FlaskClient, str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    as_admin: bool,
) -> None:
    monkeypatch.setattr(live_socket, "ACCOUNT_RECHECK", 0.2)
    with session_scope(runtime.sessions) as db:
        runtime.users.create(db, "ben", "Ben", "lang-genug-1234", is_admin=as_admin)
    listener = app.test_client()
    log_in(listener, Account("ben", "lang-genug-1234"))
    with open_live(served.url, path, cookies=_cookies(listener)) as ws:
        receive_json(ws)
        with session_scope(runtime.sessions) as db:
            ben = db.scalar(select(User).where(User.username == "ben"))
            chefin = db.scalar(select(User).where(User.username == "chefin"))
            assert ben is not None and chefin is not None
            runtime.users.update(db, ben.id, "Ben", as_admin, True, acting=chefin)
        closed = threading.Event()

        def wait_close() -> None:
            try:
                while True:
                    ws.recv(timeout=10)
            except (ConnectionClosed, TimeoutError):
                closed.set()

        reader = threading.Thread(target=wait_close)
        reader.start()
        # Events keep the stream's loop turning, as they would on a busy hub.
        for _ in range(100):
            if closed.wait(0.1):
                break
            runtime.live.publish(ROOMS_TOPIC, {"type": "tick"})
            runtime.live.publish(DEVICES_TOPIC, {"type": "tick"})
        reader.join(timeout=15)
        assert closed.is_set()
        assert ws.close_code == 1008
