"""Call helpers: citizens and staff through HTTP, seats in calls, live-channel clients,
room statuses over MQTT and small but valid sample documents."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from werkzeug.test import TestResponse

from hub.db import session_scope
from hub.models import Participant
from hub.runtime import HubRuntime
from hub.schedule import Schedule
from hub.services.rooms import RoomInput
from protocol import topics
from protocol.payloads import RoomStatus
from tests.conftest import PASSWORD, Account, add_user, csrf_from, log_in
from tests.support.mqtt import Received, Watcher
from tests.support.reception import join_queues

TIMEOUT = 5.0  # upper bound for any single wait on the live channel
SPEC_LATENCY = 1.0  # DESIGN: busy/free within 1 s of joining or leaving

# Minimal files whose first bytes are what PDF, PNG and JPEG readers (and the hub) look at.
PDF = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n"
    b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00"  # frame header: 1 x 1, grey
    b"\xff\xd9"
)
SAMPLES = {"pdf": (PDF, "application/pdf"), "png": (PNG, "image/png"), "jpeg": (JPEG, "image/jpeg")}


_addresses = itertools.count(1)


def new_browser(app: Flask) -> FlaskClient:
    """A browser of its own (own cookies) from its own address (no per-address limits)."""
    client = app.test_client()
    n = next(_addresses)
    client.environ_base["REMOTE_ADDR"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
    return client


def csrf_of(client: FlaskClient) -> str:
    """The CSRF token of `client`'s session (what call.js fetches)."""
    return client.get("/api/v1/session").get_json()["csrf_token"]


# ---- people ------------------------------------------------------------------------------------
@dataclass
class Citizen:
    """A citizen's browser holding a ticket."""

    client: FlaskClient
    token: str
    ticket: str


def register(app: Flask, name: str, category: str = "wohngeld") -> Citizen:
    """Take a ticket through the citizen form."""
    client = new_browser(app)
    csrf = csrf_from(client.get("/empfang/").get_data(as_text=True))
    form = {"name": name, "category": category, "description": "Antrag", "consent": "on"}
    answer = client.post("/empfang/", data={**form, "csrf_token": csrf})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    token = answer.headers["Location"].rsplit("/", 1)[-1]
    view = client.get(f"/api/v1/reception/tickets/{token}").get_json()
    return Citizen(client, token, view["ticket"])


@dataclass
class Staff:
    """A logged-in staff member's browser and its CSRF token."""

    username: str
    client: FlaskClient
    csrf: str

    def act(self, ticket: str, action: str, **body: str) -> TestResponse:
        """A queue action through the JSON API."""
        return self.client.post(
            f"/api/v1/queue/{ticket}/{action}", json=body, headers={"X-CSRFToken": self.csrf}
        )

    def open_call(self, ticket: str) -> TestResponse:
        """The staff page's "call" button for an admitted ticket."""
        return self.client.post(f"/staff/queue/{ticket}/call", headers={"X-CSRFToken": self.csrf})


def staff_login(app: Flask, runtime: HubRuntime, username: str, *departments: str) -> Staff:
    """A staff account serving `departments`, logged in through the form."""
    add_user(runtime, username)
    if departments:
        join_queues(runtime, username, *departments)
    client = new_browser(app)
    return Staff(username, client, log_in(client, Account(username, PASSWORD)))


# ---- seats in a call ---------------------------------------------------------------------------
@dataclass
class Seat:
    """A participant of a call as its browser holds it: id, secret key and the browser."""

    participant: str
    key: str
    client: FlaskClient
    _csrf: str | None = field(default=None, repr=False)

    @property
    def csrf(self) -> str:
        """The CSRF token of the seat's browser session."""
        if self._csrf is None:
            self._csrf = csrf_of(self.client)
        return self._csrf

    def headers(self) -> dict[str, str]:
        """What call.js sends with uploads and invitations."""
        return {"X-Participant-Key": self.key, "X-CSRFToken": self.csrf}

    def upload(self, body: bytes, filename: str) -> TestResponse:
        """Share a file in the call."""
        return self.client.post(
            f"/call/{self.participant}/documents",
            data={"file": (io.BytesIO(body), filename)},
            headers=self.headers(),
            content_type="multipart/form-data",
        )

    def download(self, document: str) -> TestResponse:
        """Fetch a shared file."""
        return self.client.get(f"/call/{self.participant}/documents/{document}")

    def invite(self, label: str = "Dolmetscherin") -> TestResponse:
        """Create an invitation link."""
        return self.client.post(
            f"/call/{self.participant}/invites", json={"label": label}, headers=self.headers()
        )


def seat_from(client: FlaskClient, answer: TestResponse) -> Seat:
    """The seat a join answer (302 to /call/p-…) gave `client`; its key is in the session."""
    assert answer.status_code == 302, (answer.status_code, answer.get_data(as_text=True)[:500])
    path = urlsplit(answer.headers["Location"]).path
    assert path.startswith("/call/p-"), path
    participant = path.removeprefix("/call/")
    with client.session_transaction() as flask_session:
        key = flask_session["call_keys"][participant]
    return Seat(participant, key, client)


def enter_room_as_staff(client: FlaskClient, slug: str) -> TestResponse:
    """A logged-in staff member walks into /r/<slug> (the page's POST button)."""
    return client.post(f"/r/{slug}", data={"csrf_token": csrf_of(client)})


def enter_room_as_guest(client: FlaskClient, slug: str, name: str) -> TestResponse:
    """The /r/<slug> form for a visitor without an account (CSRF token of the session)."""
    page = client.get(f"/r/{slug}")
    assert page.status_code == 200, page.status_code
    return client.post(f"/r/{slug}", data={"name": name, "csrf_token": csrf_of(client)})


def join_by_invite(client: FlaskClient, token: str, name: str) -> TestResponse:
    """Follow an invitation link and give a name."""
    page = client.get(f"/join/{token}")
    assert page.status_code == 200, page.status_code
    return client.post(
        f"/join/{token}", data={"name": name, "csrf_token": csrf_from(page.get_data(as_text=True))}
    )


def invite_token(url: str) -> str:
    """The token of an invitation URL (…/join/<token>)."""
    path = urlsplit(url).path
    assert path.startswith("/join/"), url
    return path.removeprefix("/join/")


def add_room(runtime: HubRuntime, slug: str, policy: str, kind: str = "meeting") -> None:
    """A permanent room, always open, with the given policy."""
    with session_scope(runtime.sessions) as db:
        runtime.rooms.create(
            db, slug, RoomInput(slug.title(), kind, policy, None, True, Schedule())
        )


def participant_row(runtime: HubRuntime, public_id: str) -> dict[str, Any]:
    """A participant's flags as the database holds them."""
    with session_scope(runtime.sessions) as db:
        p = db.scalar(select(Participant).where(Participant.public_id == public_id))
        assert p is not None, public_id
        return {
            "role": p.role,
            "admitted": p.admitted,
            "connected": p.connected,
            "left": p.left_at is not None,
            "session": p.session.public_id,
            "private": p.session.private,
            "room": p.session.room.slug if p.session.room else None,
            "ended": p.session.ended_at is not None,
        }


def documents_root(runtime: HubRuntime) -> Path:
    """Where the hub keeps shared files."""
    return runtime.settings.instance_path / "documents"


def files_under(path: Path) -> list[Path]:
    """Every regular file below `path` (none when it does not exist)."""
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


# ---- the live channel --------------------------------------------------------------------------
def ws_url(base_url: str, path: str) -> str:
    """ws://host:port/path for an http://host:port base."""
    return "ws" + base_url.removeprefix("http") + path


def live_connect(base_url: str, path: str, origin: str | None = None) -> ClientConnection:
    """Open a WebSocket as a page of `origin` (default: the hub itself) would."""
    return connect(
        ws_url(base_url, path),
        additional_headers={"Origin": origin or base_url},
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=0.5,
        compression=None,
    )


class Live:
    """A participant's live channel with bounded waits; use as a context manager."""

    def __init__(self, base_url: str, seat: Seat) -> None:
        self.seat = seat
        self.ws = live_connect(base_url, f"/call/{seat.participant}/live?k={seat.key}")
        self.seen: list[dict[str, Any]] = []
        self.first = self.next()

    def __enter__(self) -> Live:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Hang up the socket (like a closed tab)."""
        self.ws.close()

    def send(self, **message: Any) -> None:
        """Send one JSON message."""
        self.ws.send(json.dumps(message))

    def send_raw(self, text: str) -> None:
        """Send a frame exactly as given."""
        self.ws.send(text)

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next message, parsed."""
        message = json.loads(self.ws.recv(timeout=timeout))
        self.seen.append(message)
        return message

    def wait(self, match: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT) -> dict:
        """The first further message for which `match` is true; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching message within {timeout}s: {self.seen[-5:]}")
            try:
                message = self.next(left)
            except TimeoutError:
                continue
            if match(message):
                return message

    def state(self, match: Callable[[dict[str, Any]], bool] = lambda s: True) -> dict:
        """The next call state for which `match` is true."""
        return self.wait(lambda m: m.get("type") == "state" and match(m))

    def error(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next error message (state pushes in between are skipped)."""
        return self.wait(lambda m: m.get("type") == "error", timeout)

    def sync(self) -> None:
        """Wait until every message sent so far was handled (the hub answers in order)."""
        self.send(type="sync-probe")
        self.wait(lambda m: m.get("type") == "error" and "sync-probe" in m.get("error", ""))

    def quiet(self, match: Callable[[dict[str, Any]], bool], seconds: float = 0.5) -> None:
        """Assert that nothing matching `match` arrives for `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.next(left)
            except TimeoutError:
                return
            assert not match(message), message

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """Whether the hub closes the channel within `timeout` (messages before are kept)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                self.next(left)
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False
        return False


@dataclass(frozen=True)
class Refusal:
    """How the hub refused a live channel: a handshake status, or an error and a close."""

    status: int | None = None
    error: dict[str, Any] | None = None
    closed: bool = False


def refused_live(base_url: str, path: str, origin: str | None = None) -> Refusal:
    """Open `path` expecting a refusal; fails when the hub lets the channel live."""
    try:
        ws = live_connect(base_url, path, origin)
    except InvalidStatus as exc:
        return Refusal(status=exc.response.status_code)
    with ws:
        first = json.loads(ws.recv(timeout=TIMEOUT))
        try:
            ws.recv(timeout=TIMEOUT)
        except ConnectionClosed:
            return Refusal(error=first, closed=True)
        except TimeoutError:
            return Refusal(error=first, closed=False)
        raise AssertionError(f"the channel stayed open and talked: {first}")


# ---- room statuses over MQTT -------------------------------------------------------------------
def status_watcher(broker_url: str, room: str) -> Watcher:
    """A subscriber to one room's retained status."""
    return Watcher(broker_url, topics.room_status("default", room))


def wait_status(
    watcher: Watcher,
    match: Callable[[RoomStatus], bool],
    *,
    after: float,
    within: float = SPEC_LATENCY,
) -> RoomStatus:
    """The first status published after `after` (monotonic) that matches, within `within` s."""
    left = max(0.05, after + within - time.monotonic())

    def fits(msg: Received) -> bool:
        return msg.at >= after and match(RoomStatus.parse(msg.payload))

    found = watcher.wait(fits, timeout=left)
    assert found.at - after <= within, f"took {found.at - after:.3f}s"
    return RoomStatus.parse(found.payload)


def seen_status(
    watcher: Watcher, match: Callable[[RoomStatus], bool], timeout: float = TIMEOUT
) -> RoomStatus:
    """The first status (retained or new) that matches; fail after `timeout`."""
    found = watcher.wait(lambda m: match(RoomStatus.parse(m.payload)), timeout=timeout)
    return RoomStatus.parse(found.payload)
