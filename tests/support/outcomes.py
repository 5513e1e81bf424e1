"""What an answer of the hub amounts to, for tables of expected answers: a class of HTTP
answer, the fate of a WebSocket handshake, the reply to one live-channel message, and the
whole database as it stands (to show that a refusal changed nothing)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from werkzeug.test import TestResponse

from hub.models import Base
from hub.runtime import HubRuntime
from tests.support.calls import TIMEOUT, Live, documents_root, files_under
from tests.support.wsclient import receive_json, ws_url

OK = "ok"  # done: 2xx, or a redirect somewhere other than the login form (303 excepted)
LOGIN = "login"  # sent to the login form (302 to /staff/login?next=…)
FLASH = "flash"  # a staff form refused and explained on the queue page (303 to /staff/queue)
CLOSED = "closed"  # a live channel that opens, explains (or not) and closes with 1008
REFUSED = "refused"  # a live-channel message answered with an error
NO_CHANNEL = "none"  # a live-channel message that cannot be sent: the channel is refused

POLICY_VIOLATION = 1008
COUNTERS = ("rate_events", "login_attempts")  # per-address limits count refusals too

# Columns that a live channel closing in the background may still change; they are
# compared for the rooms of the scenario in use, and left out for retired ones.
VOLATILE = {
    "participants": ("connected", "channel", "last_seen"),
    "rooms": ("state", "occupants", "waiting", "seq", "since", "published_name"),
}


def http_class(response: TestResponse) -> str | int:
    """OK, LOGIN or FLASH when the answer is one of those, else its status code."""
    status = response.status_code
    target = urlsplit(response.headers.get("Location", ""))
    if status == 302 and target.path == "/staff/login" and target.query.startswith("next="):
        return LOGIN
    if status == 303 and target.path == "/staff/queue":
        return FLASH
    if 200 <= status < 400 and status != 303:
        return OK
    return status


def handshake_class(base_url: str, path: str, cookies: Mapping[str, str]) -> str | int:
    """OK when the channel opens and talks, CLOSED when the hub closes it (1008), else the
    handshake's refusal status."""
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
    try:
        ws = connect(
            ws_url(base_url, path),
            origin=base_url,  # type: ignore[arg-type]
            additional_headers=headers,
            proxy=None,
            open_timeout=TIMEOUT,
            # The test server keeps TCP open after the hub's close; waiting changes nothing.
            close_timeout=0.05,
            compression=None,
        )
    except InvalidStatus as exc:
        return exc.response.status_code
    with ws:
        try:
            first = receive_json(ws)
            if first.get("type") != "error":
                return OK
            ws.recv(timeout=TIMEOUT)  # an explained refusal is followed by the close
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            return CLOSED if code == POLICY_VIOLATION else f"closed with {code}"
        except TimeoutError:
            return "an error, but the channel stayed open"
    return "an error, then more messages"


def message_class(live: Live, message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Send `message`, then read up to the hub's answer: OK or REFUSED, with the errors.

    The hub handles a page's messages in order, so an error for `message` comes before the
    answer to a probe sent after it. After "leave" the hub says "removed" instead.
    """
    live.send(**message)
    if message["type"] != "leave":
        live.send(type="sync-probe")
    errors: list[dict[str, Any]] = []
    while True:
        try:
            got = live.next()
        except ConnectionClosed:
            break
        if got.get("type") == "error" and "sync-probe" in got.get("error", ""):
            break
        if got.get("type") == "error":
            errors.append(got)
            if message["type"] == "leave":
                break
        elif got.get("type") in ("removed", "ended"):
            break
    return (REFUSED if errors else OK), errors


def client_cookies(client: Any) -> dict[str, str]:
    """The session and ticket cookies of a Flask test client, for a WebSocket handshake."""
    found = {}
    for name, path in (("empfang_session", "/"), ("empfang_ticket", "/empfang")):
        cookie = client.get_cookie(name, path=path)
        if cookie is not None:
            found[name] = cookie.value
    return found


class DatabaseReader:
    """Reads the hub's whole SQLite database as it stands; use as a context manager.

    Every row of every table (but the per-address counters) and the stored documents. A
    refused attempt still counts towards the per-address limits, so rate events and login
    attempts are left out. So are the volatile columns of retired rooms and of the
    participants of calls in them: channels of earlier scenarios may still be closing.
    One connection of the standard library's sqlite3, kept open: while no other connection
    commits (PRAGMA data_version stays), the last reading still holds.
    """

    def __init__(self, runtime: HubRuntime) -> None:
        database = make_url(runtime.settings.database_url).database
        assert database, runtime.settings.database_url
        self._db = sqlite3.connect(database, check_same_thread=False)
        self._documents = documents_root(runtime)
        self._last: tuple[tuple[int, int], dict[str, Any]] | None = None

    def __enter__(self) -> DatabaseReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def state(self, retired_rooms: Collection[str]) -> dict[str, Any]:
        """The database now, with the volatile columns of `retired_rooms` left out."""
        version = (self._db.execute("PRAGMA data_version").fetchone()[0], len(retired_rooms))
        if self._last is None or self._last[0] != version:
            self._last = (version, self._read(retired_rooms))
        return {**self._last[1], "documents on disk": len(files_under(self._documents))}

    def _read(self, retired_rooms: Collection[str]) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        columns: dict[str, list[str]] = {}
        for table in Base.metadata.sorted_tables:
            if table.name not in COUNTERS:
                cursor = self._db.execute(f"SELECT * FROM {table.name} ORDER BY rowid")
                columns[table.name] = [d[0] for d in cursor.description]
                tables[table.name] = cursor.fetchall()
        self._db.commit()  # end the read transaction, so later commits are seen
        room_ids = _ids(tables, columns, "rooms", "id", lambda r: r["slug"] in retired_rooms)
        session_ids = _ids(
            tables, columns, "call_sessions", "id", lambda r: r["room_id"] in room_ids
        )
        _mask(tables, columns, "rooms", "id", room_ids)
        _mask(tables, columns, "participants", "session_id", session_ids)
        return tables


def _ids(
    tables: dict[str, Any],
    columns: dict[str, list[str]],
    name: str,
    key: str,
    chosen: Callable[[dict[str, Any]], bool],
) -> set[Any]:
    names = columns[name]
    rows = (dict(zip(names, row, strict=True)) for row in tables[name])
    return {row[key] for row in rows if chosen(row)}


def _mask(
    tables: dict[str, Any], columns: dict[str, list[str]], name: str, key: str, ids: set[Any]
) -> None:
    names = columns[name]
    at, hidden = names.index(key), {names.index(c) for c in VOLATILE[name]}
    tables[name] = [
        tuple("(retired)" if i in hidden else v for i, v in enumerate(row))
        if row[at] in ids
        else row
        for row in tables[name]
    ]


def state_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What differs between two database states: per table, the rows gone and the rows new."""
    changes: dict[str, Any] = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if isinstance(old, list) and isinstance(new, list):
            changes[name] = {
                "gone": [r for r in old if r not in new],
                "new": [r for r in new if r not in old],
            }
        else:
            changes[name] = {"before": old, "after": new}
    return changes
