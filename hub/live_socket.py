"""The hub's one live-socket pump: every live page's WebSocket runs through it.

A blueprint supplies only what differs, as a `Channel`: the live topics, the snapshot sent
first and after a resync (a full inbox), how an event is shaped for this page, and who may
stay connected. The pump subscribes before it reads the snapshot (so no change falls in
between), releases the request's database connection (a stream lasts for hours), answers
input on listen-only channels with an error, and ends the stream for an account that was
disabled, demoted or given a new password since it opened.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, g, session
from flask_sock import ConnectionClosed, Sock

from hub.auth import still_valid
from hub.db import session_scope
from hub.live import RESYNC, Event, Subscription
from hub.models import User
from hub.runtime import HubRuntime

ACCOUNT_RECHECK = 60.0  # seconds between checks that a streaming account is still allowed
READ_ONLY = {"type": "error", "code": "live.read_only", "error": "this channel is read-only"}

Shape = Callable[[Event], Event | None]


class Refused(Exception):
    """Raised by a channel's snapshot or shape: this page may no longer listen."""


def live_route(bp: Blueprint, path: str) -> Callable[[Callable[..., None]], None]:
    """Register a WebSocket view on `bp` (flask-sock; no extension state is kept)."""
    return Sock().route(path, bp=bp)


def release_request_db() -> None:
    """Close the request's database session: a long-lived stream must not hold one."""
    request_db = g.pop("db", None)
    if request_db is not None:
        request_db.close()


@dataclass(frozen=True)
class Account:
    """The staff account a stream was opened for, to be checked again while it runs."""

    user_id: int
    fingerprint: str | None
    admin: bool = False

    @classmethod
    def current(cls, *, admin: bool = False) -> Account:
        """The logged-in account of this request (the view demanded one)."""
        return cls(g.user.id, session.get("pw"), admin)

    def allowed(self, runtime: HubRuntime) -> bool:
        """Whether the account may still listen (enabled, same password, still admin)."""
        with session_scope(runtime.sessions) as db:
            return still_valid(db.get(User, self.user_id), self.fingerprint, admin=self.admin)


@dataclass(frozen=True)
class Channel:
    """What one kind of live page needs from the pump.

    `snapshot()` is the whole state (first message, and after a resync); `shape(event)` is
    what this page gets for an event (None: nothing); either raises Refused to end the
    stream with the channel's `refusal`; after sending a payload that
    `final(payload)` calls final the stream ends, and at an event that says the page is
    `gone(event)` it ends without sending anything; `account` is rechecked every
    ACCOUNT_RECHECK seconds; `listen_only` channels refuse whatever the page sends.
    """

    topics: Sequence[str]
    snapshot: Callable[[], Event]
    shape: Shape = lambda event: event
    account: Account | None = None
    listen_only: bool = True
    wait: float = 5.0
    final: Callable[[Event], bool] = lambda _payload: False
    gone: Callable[[Event], bool] = lambda _event: False
    refusal: str = "login required"


def serve(ws: Any, runtime: HubRuntime, channel: Channel) -> None:
    """Run `channel` on the WebSocket `ws` until either side ends it."""
    release_request_db()
    with runtime.live.subscribe(*channel.topics) as inbox:
        pump(ws, runtime, channel, inbox)


def pump(ws: Any, runtime: HubRuntime, channel: Channel, inbox: Subscription) -> None:
    """Send the snapshot, then each shaped event, until the stream ends."""
    try:
        _stream(ws, runtime, channel, inbox)
    except Refused:
        ws.close(reason=1008, message=channel.refusal)


def _stream(ws: Any, runtime: HubRuntime, channel: Channel, inbox: Subscription) -> None:
    if not _send(ws, channel.snapshot()):
        return
    checked = time.monotonic()
    while ws.connected:
        if channel.listen_only and _refused_input(ws):
            continue
        event = inbox.get(timeout=channel.wait)
        if channel.account is not None and time.monotonic() - checked > ACCOUNT_RECHECK:
            if not channel.account.allowed(runtime):
                raise Refused
            checked = time.monotonic()
        if event is None:
            continue
        if channel.gone(event):
            return
        payload = channel.snapshot() if event is RESYNC else channel.shape(event)
        if payload is None:
            continue
        if not _send(ws, payload) or channel.final(payload):
            return


def _send(ws: Any, payload: Event) -> bool:
    try:
        ws.send(json.dumps(payload))
    except ConnectionClosed:
        return False
    return True


def _refused_input(ws: Any) -> bool:
    """Answer a message on a listen-only channel with an error; it changes nothing."""
    try:
        data = ws.receive(timeout=0)
    except ConnectionClosed:
        return False
    if data is None:
        return False
    _send(ws, READ_ONLY)
    return True
