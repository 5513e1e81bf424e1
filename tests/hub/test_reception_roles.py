"""The roles table of DESIGN.md section 5 for every lobby route and live-channel message.

Only staff (hosts) see the lobby and admit, forward, return, end or message; a citizen
(guest) holds nothing but the secret token of their own ticket. Each refusal is clear and
leaves every ticket, queue position and room status exactly as it was.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from hub.app import close_app, create_app
from hub.db import session_scope, upgrade
from hub.models import CallSession, Participant, Room, Ticket
from hub.runtime import HubRuntime
from tests.conftest import PASSWORD, Account, add_user, csrf_from, log_in, make_settings
from tests.support.clock import ManualClock
from tests.support.hubserver import LiveServer
from tests.support.mosquitto import Mosquitto
from tests.support.reception import join_queues, setup_reception
from tests.support.wsclient import open_live, receive_json, try_live

ACTIONS = ("admit", "forward", "return", "end", "message")
FORM_ACTIONS = (*ACTIONS, "call")  # the staff page also opens the call of an admitted citizen
BODIES: dict[str, dict[str, str]] = {
    "call": {},
    "admit": {"room": "sozialamt-1"},
    "forward": {"department": "buergerbuero", "note": "bitte übernehmen"},
    "return": {},
    "end": {"outcome": "resolved"},
    "message": {"text": "Noch etwa 5 Minuten"},
}
UNKNOWN_PAGE = "Diese Wartenummer kennen wir nicht"


# ---- helpers -------------------------------------------------------------------------------
_addresses = itertools.count(1)


def citizen_client(app: Flask) -> FlaskClient:
    """A browser of its own, from its own address (the per-address limit stays out of the way)."""
    client = app.test_client()
    n = next(_addresses)
    client.environ_base["REMOTE_ADDR"] = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"
    return client


@dataclass
class Citizen:
    """A citizen's browser holding a ticket: its cookie, the token and the session's CSRF."""

    client: FlaskClient
    token: str
    ticket: str
    csrf: str


def register(app: Flask, name: str, category: str = "wohngeld") -> Citizen:
    """Take a ticket through the citizen form, as a browser would."""
    client = citizen_client(app)
    csrf = csrf_from(client.get("/empfang/").get_data(as_text=True))
    answer = client.post(
        "/empfang/",
        data={
            "name": name,
            "category": category,
            "description": "Antrag",
            "consent": "on",
            "csrf_token": csrf,
        },
    )
    assert answer.status_code == 302, answer.get_data(as_text=True)
    token = answer.headers["Location"].rsplit("/", 1)[-1]
    assert client.get_cookie("empfang_ticket", path="/empfang").value == token
    view = client.get(f"/api/v1/reception/tickets/{token}").get_json()
    return Citizen(client, token, view["ticket"], csrf)


@dataclass
class Staff:
    """A logged-in staff member's browser and the CSRF token of its session."""

    username: str
    client: FlaskClient
    csrf: str

    def act(self, ticket: str, action: str, **body: str) -> TestResponse:
        """A queue action through the JSON API."""
        return self.client.post(
            f"/api/v1/queue/{ticket}/{action}", json=body, headers={"X-CSRFToken": self.csrf}
        )

    def act_form(self, ticket: str, action: str, **body: str) -> TestResponse:
        """A queue action through the staff page's form."""
        return self.client.post(
            f"/staff/queue/{ticket}/{action}", data={**body, "csrf_token": self.csrf}
        )

    def waiting(self) -> list[str]:
        """Public ids of the tickets in this member's live queue."""
        answer = self.client.get("/api/v1/queue")
        assert answer.status_code == 200
        return [t["ticket"] for t in answer.get_json()["waiting"]]


def staff_login(app: Flask, runtime: HubRuntime, username: str, *departments: str) -> Staff:
    """A staff account serving `departments`, logged in through the form."""
    add_user(runtime, username)
    if departments:
        join_queues(runtime, username, *departments)
    client = app.test_client()
    return Staff(username, client, log_in(client, Account(username, PASSWORD)))


def snapshot(runtime: HubRuntime) -> dict[str, Any]:
    """Every ticket's state, every queue position and every room status, from the database."""
    with session_scope(runtime.sessions) as db:
        tickets = {
            t.public_id: (
                t.status,
                t.department_id,
                t.assigned_user_id,
                t.room_id,
                t.served_by_id,
                t.forward_note,
                t.outcome,
                t.path,
                t.name,
                t.description,
                len(t.messages),
            )
            for t in db.scalars(select(Ticket))
        }
        places = {
            k: (p.position, p.estimate_minutes) for k, p in runtime.reception.places(db).items()
        }
        rooms = {r.slug: (r.state, r.occupants, r.waiting, r.seq) for r in db.scalars(select(Room))}
        calls = sorted(
            (p.public_id, p.role, p.session_id, p.left_at is None)
            for p in db.scalars(select(Participant))
        )
        sessions = db.scalar(select(func.count()).select_from(CallSession))
    return {
        "tickets": tickets,
        "places": places,
        "rooms": rooms,
        "calls": calls,
        "sessions": sessions,
    }


def ticket_count(runtime: HubRuntime) -> int:
    """Tickets in the database, whatever their state."""
    with session_scope(runtime.sessions) as db:
        return db.scalar(select(func.count()).select_from(Ticket)) or 0


def waiting_count(app: Flask) -> int:
    """What the public reception API says about the lobby."""
    return app.test_client().get("/api/v1/reception").get_json()["waiting"]


@dataclass
class Lobby:
    """Who is where before a test acts."""

    erika: Staff
    anna: Citizen  # waiting, first
    mallory: Citizen  # waiting, second: the one who tries staff actions
    carl: Citizen  # being served by Erika in sozialamt-2


@pytest.fixture
def lobby(app: Flask, runtime: HubRuntime) -> Lobby:
    """Erika (Sozialamt) serves Carl; Anna and then Mallory wait for the Sozialamt."""
    setup_reception(runtime)
    erika = staff_login(app, runtime, "erika", "sozialamt")
    carl = register(app, "Carl")
    anna = register(app, "Anna")
    mallory = register(app, "Mallory")
    assert erika.act(carl.ticket, "admit", room="sozialamt-2").status_code == 200
    return Lobby(erika, anna, mallory, carl)


# ---- anonymous visitors and citizens never reach the staff side --------------------------------
def _outsider(app: Flask, lobby: Lobby, who: str) -> tuple[FlaskClient, str]:
    """A browser and a valid CSRF token of its own session (so only the role is wrong)."""
    if who == "citizen":
        return lobby.mallory.client, lobby.mallory.csrf
    client = citizen_client(app)
    return client, client.get("/api/v1/session").get_json()["csrf_token"]


@pytest.mark.parametrize("who", ["anonymous", "citizen"])
def test_outsiders_cannot_see_the_queue(app: Flask, lobby: Lobby, who: str) -> None:
    client, _csrf = _outsider(app, lobby, who)
    page = client.get("/staff/queue")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/staff/login?next=/staff/queue")
    api = client.get("/api/v1/queue")
    assert api.status_code == 401
    assert api.is_json and api.get_json() == {"error": "login required"}
    # Asking for JSON on the page route gets JSON too, never the list.
    asked_json = client.get("/staff/queue", headers={"Accept": "application/json"})
    assert asked_json.status_code == 401 and asked_json.get_json() == {"error": "login required"}
    for answer in (page, api, asked_json):
        body = answer.get_data(as_text=True)
        assert "Anna" not in body and "Carl" not in body


@pytest.mark.parametrize(
    ("channel", "action"),
    [("api", a) for a in ACTIONS] + [("form", a) for a in FORM_ACTIONS],
)
@pytest.mark.parametrize("who", ["anonymous", "citizen"])
def test_outsiders_cannot_act(
    app: Flask, runtime: HubRuntime, lobby: Lobby, who: str, action: str, channel: str
) -> None:
    client, csrf = _outsider(app, lobby, who)
    before = snapshot(runtime)
    assert before["places"][lobby.mallory.ticket][0] == 2
    # Someone else's waiting ticket, a conversation in progress, and (the tempting one)
    # the citizen's own ticket: jumping the queue by admitting oneself.
    for target in (lobby.anna.ticket, lobby.carl.ticket, lobby.mallory.ticket):
        if channel == "api":
            answer = client.post(
                f"/api/v1/queue/{target}/{action}",
                json=BODIES[action],
                headers={"X-CSRFToken": csrf},
            )
            assert answer.status_code == 401, answer.get_data(as_text=True)
            assert answer.get_json() == {"error": "login required"}
        else:
            answer = client.post(
                f"/staff/queue/{target}/{action}", data={**BODIES[action], "csrf_token": csrf}
            )
            assert answer.status_code == 302, answer.get_data(as_text=True)
            assert answer.headers["Location"].startswith("/staff/login?next=")
    assert snapshot(runtime) == before
    mallory = client.get(f"/api/v1/reception/tickets/{lobby.mallory.token}").get_json()
    assert mallory["status"] == "waiting" and mallory["position"] == 2
    assert mallory["messages"] == [] and mallory["forwarded_to"] is None


def test_a_waiting_citizen_cannot_enter_a_call(
    app: Flask, runtime: HubRuntime, lobby: Lobby
) -> None:
    before = snapshot(runtime)
    mallory = lobby.mallory.client
    page = mallory.get(f"/empfang/t/{lobby.mallory.token}/call")
    assert page.status_code == 409
    api = mallory.post(f"/api/v1/reception/tickets/{lobby.mallory.token}/call")
    assert api.status_code == 409 and api.get_json()["field"] == "ticket"
    assert snapshot(runtime) == before


# ---- the live channels -------------------------------------------------------------------------
LIVE_PATHS = {
    "page": "/empfang/t/{token}/live",
    "kiosk-api": "/api/v1/reception/tickets/{token}/live",
}
CLIENT_MESSAGES = {
    "admit": {"action": "admit", "room": "sozialamt-1"},
    "forward": {"action": "forward", "department": "buergerbuero"},
    "return": {"action": "return"},
    "end": {"action": "end", "outcome": "resolved"},
    "message": {"action": "message", "text": "Ich bin jetzt dran"},
    "leave": {"type": "leave"},
    "not-json": "admit sozialamt-1",
}


@pytest.mark.parametrize("message", CLIENT_MESSAGES.values(), ids=CLIENT_MESSAGES.keys())
@pytest.mark.parametrize("path", LIVE_PATHS.values(), ids=LIVE_PATHS.keys())
def test_citizen_channel_is_read_only(
    runtime: HubRuntime, lobby: Lobby, served: LiveServer, path: str, message: object
) -> None:
    before = snapshot(runtime)
    with open_live(served.url, path.format(token=lobby.mallory.token)) as ws:
        first = receive_json(ws)
        assert first["type"] == "ticket"
        assert first["ticket"] == lobby.mallory.ticket and first["position"] == 2
        ws.send(message if isinstance(message, str) else json.dumps(message))
        reply = receive_json(ws)
        assert reply == {
            "type": "error",
            "code": "live.read_only",
            "error": "this channel is read-only",
        }
    assert snapshot(runtime) == before


def test_citizen_channel_keeps_following_after_a_refusal(
    runtime: HubRuntime, lobby: Lobby, served: LiveServer
) -> None:
    with open_live(served.url, f"/empfang/t/{lobby.mallory.token}/live") as ws:
        assert receive_json(ws)["position"] == 2
        ws.send(json.dumps({"action": "admit"}))
        assert receive_json(ws)["type"] == "error"
        # Staff (and only staff) move the queue: Anna goes in, Mallory is next.
        assert lobby.erika.act(lobby.anna.ticket, "admit", room="sozialamt-1").status_code == 200
        update = receive_json(ws)
        assert update["type"] == "ticket" and update["status"] == "waiting"
        assert update["position"] == 1 and update["next"] is True
        # A citizen's channel carries their own ticket only, never another citizen's.
        assert update["ticket"] == lobby.mallory.ticket
        assert "Anna" not in json.dumps(update) and lobby.anna.ticket not in json.dumps(update)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("", True), (None, False), ("http://evil.example", False), ("null", False)],
    ids=["same-origin", "no-origin", "foreign-origin", "null-origin"],
)
def test_citizen_page_channel_checks_the_origin(
    lobby: Lobby, served: LiveServer, origin: str | None, allowed: bool
) -> None:
    path = LIVE_PATHS["page"].format(token=lobby.mallory.token)
    outcome = try_live(served.url, path, origin=origin)
    if allowed:
        assert outcome.kind == "message" and outcome.message is not None
        assert outcome.message["ticket"] == lobby.mallory.ticket
    else:
        assert outcome.kind == "refused" and outcome.status == 403, outcome


def _cookies(client: FlaskClient) -> dict[str, str]:
    names = ("empfang_session", "empfang_ticket")
    found = {n: client.get_cookie(n) or client.get_cookie(n, path="/empfang") for n in names}
    return {n: c.value for n, c in found.items() if c is not None}


@pytest.mark.parametrize(
    ("who", "origin", "status"),
    [
        ("anonymous", "", 401),
        ("citizen", "", 401),
        ("staff", None, 403),
        ("staff", "http://evil.example", 403),
    ],
    ids=["anonymous", "citizen", "staff-no-origin", "staff-foreign-origin"],
)
def test_staff_channel_refuses(
    app: Flask,
    lobby: Lobby,
    served: LiveServer,
    who: str,
    origin: str | None,
    status: int,
) -> None:
    client = {
        "anonymous": citizen_client(app),
        "citizen": lobby.mallory.client,
        "staff": lobby.erika.client,
    }[who]
    client.get("/api/v1/session")  # every browser has a session cookie by now
    outcome = try_live(served.url, "/staff/queue/live", origin=origin, cookies=_cookies(client))
    assert outcome.kind == "refused" and outcome.status == status, outcome


def test_staff_channel_serves_logged_in_staff(lobby: Lobby, served: LiveServer) -> None:
    outcome = try_live(served.url, "/staff/queue/live", cookies=_cookies(lobby.erika.client))
    assert outcome.kind == "message" and outcome.message is not None
    assert outcome.message["type"] == "queue"
    assert outcome.message["waiting"] == [lobby.anna.ticket, lobby.mallory.ticket]
    assert "Carl" in outcome.message["html"]  # in conversation with Erika


# ---- guessed and malformed tokens ------------------------------------------------------------
TOKENS: dict[str, Callable[[str], str]] = {
    "random-43": lambda real: secrets.token_urlsafe(32),
    "near-miss": lambda real: real[:-1] + ("A" if real[-1] != "A" else "B"),
    "stored-hash": lambda real: hashlib.sha256(real.encode()).hexdigest(),
    "padded": lambda real: real + "%20",
    "empty": lambda real: "",
    "500-chars": lambda real: "a" * 500,
    "dot-dot": lambda real: "../x",
    "encoded-dot-dot": lambda real: "..%2Fx",
    "dot-dot-real": lambda real: f"..%2F{real}",
}
ROUTED = {"random-43", "near-miss", "stored-hash", "padded", "500-chars"}


@pytest.mark.parametrize("kind", TOKENS.keys())
def test_guessed_or_malformed_tokens_find_nothing(
    app: Flask, runtime: HubRuntime, lobby: Lobby, served: LiveServer, kind: str
) -> None:
    token = TOKENS[kind](lobby.mallory.token)
    assert token != lobby.mallory.token
    before = snapshot(runtime)
    client, csrf = lobby.mallory.client, lobby.mallory.csrf  # even with a valid ticket cookie
    page = client.get(f"/empfang/t/{token}")
    assert page.status_code == 404
    left = client.post(f"/empfang/t/{token}/leave", data={"csrf_token": csrf})
    # "/empfang/t//leave" reads as the waiting page of a ticket "leave": GET only.
    assert left.status_code == (405 if kind == "empty" else 404)
    if kind in ROUTED:
        assert UNKNOWN_PAGE in page.get_data(as_text=True)
        assert UNKNOWN_PAGE in left.get_data(as_text=True)
    # ("/empfang/t//call" is merged into the waiting page of a ticket "call": 308, then 404.)
    call = client.get(f"/empfang/t/{token}/call", follow_redirects=True)
    assert call.status_code == 404
    for method, path in (
        ("GET", f"/api/v1/reception/tickets/{token}"),
        ("DELETE", f"/api/v1/reception/tickets/{token}"),
        ("POST", f"/api/v1/reception/tickets/{token}/call"),
    ):
        answer = client.open(path, method=method)
        # (".../tickets//call" is merged into ".../tickets/call": a ticket "call", no POST.)
        expected = 405 if kind == "empty" and method == "POST" else 404
        assert answer.status_code == expected, (method, path, answer.get_data(as_text=True))
        assert answer.is_json and "error" in answer.get_json()
        body = answer.get_data(as_text=True)
        assert lobby.mallory.ticket not in body and "Mallory" not in body
        if kind in ROUTED:
            assert answer.get_json()["field"] == "token"
    for path in LIVE_PATHS.values():
        outcome = try_live(served.url, path.format(token=token))
        if kind in ROUTED:
            assert outcome.kind == "closed" and outcome.code == 1008, outcome
        else:  # no such address (werkzeug merges "//"): the handshake itself is refused
            assert outcome.kind == "refused" and outcome.status in (400, 404, 405), outcome
    assert snapshot(runtime) == before


# ---- staff see and act on their own queues only ----------------------------------------------
def _done_message(action: str) -> str:
    return {
        "admit": "Eingelassen.",
        "forward": "Weitergeleitet.",
        "end": "Besuch beendet.",
        "message": "Nachricht gesendet.",
    }[action]


@pytest.mark.parametrize("channel", ["api", "form"])
@pytest.mark.parametrize("action", ["admit", "forward", "end", "message"])
def test_staff_of_another_department_is_refused(
    app: Flask, runtime: HubRuntime, lobby: Lobby, action: str, channel: str
) -> None:
    max_ = staff_login(app, runtime, "max", "buergerbuero")
    assert lobby.anna.ticket not in max_.waiting()
    before = snapshot(runtime)
    body = {**BODIES[action], "room": "buergerbuero-1"} if action == "admit" else BODIES[action]
    if channel == "api":
        answer = max_.act(lobby.anna.ticket, action, **body)
        assert answer.status_code == 403, answer.get_json()
        assert answer.get_json()["field"] == "ticket"
        assert "another queue" in answer.get_json()["error"]
    else:
        # The staff page explains a refused action on the queue page itself.
        answer = max_.act_form(lobby.anna.ticket, action, **body)
        assert answer.status_code == 303, answer.get_data(as_text=True)
        assert answer.headers["Location"] == "/staff/queue"
        page = max_.client.get("/staff/queue").get_data(as_text=True)
        flash = re.search(r'<div class="flash" role="status">(.*?)</div>', page, re.DOTALL)
        assert flash and flash.group(1).strip(), "no explanation on the queue page"
        assert _done_message(action) not in flash.group(1)
        assert lobby.anna.ticket not in page
    assert snapshot(runtime) == before


@pytest.mark.parametrize("colleague", ["max", "eva"])
def test_only_the_serving_staff_member_handles_a_conversation(
    app: Flask, runtime: HubRuntime, lobby: Lobby, colleague: str
) -> None:
    # Max works elsewhere; Eva works in the same department as Erika.
    other = staff_login(
        app, runtime, colleague, "buergerbuero" if colleague == "max" else "sozialamt"
    )
    before = snapshot(runtime)
    for action in ("return", "end", "forward", "message"):
        answer = other.act(lobby.carl.ticket, action, **BODIES[action])
        assert answer.status_code == 403, (action, answer.get_json())
        assert answer.get_json()["field"] == "ticket"
    joined = other.act_form(lobby.carl.ticket, "call")  # nor join the conversation
    assert joined.status_code == 403, joined.get_data(as_text=True)
    admit = other.act(lobby.carl.ticket, "admit", room="sozialamt-1")
    assert admit.status_code == 409  # not waiting: nobody can take it over
    assert snapshot(runtime) == before


def test_staff_without_departments_see_every_queue(
    app: Flask, runtime: HubRuntime, lobby: Lobby
) -> None:
    ben = register(app, "Ben", category="ausweis")  # Bürgerbüro
    nora = staff_login(app, runtime, "nora")  # no departments
    assert nora.waiting() == [lobby.anna.ticket, lobby.mallory.ticket, ben.ticket]
    admitted = nora.act(ben.ticket, "admit", room="buergerbuero-1")
    assert admitted.status_code == 200, admitted.get_json()
    assert admitted.get_json()["status"] == "serving"
    assert nora.waiting() == [lobby.anna.ticket, lobby.mallory.ticket]


def test_forward_to_a_colleague_is_for_that_colleague_only(
    app: Flask, runtime: HubRuntime, lobby: Lobby
) -> None:
    max_ = staff_login(app, runtime, "max", "buergerbuero")
    eva = staff_login(app, runtime, "eva", "sozialamt")
    nora = staff_login(app, runtime, "nora")  # no departments: sees all that is unassigned
    anna = lobby.anna.ticket
    forwarded = lobby.erika.act(anna, "forward", colleague="max", note="Kennt den Fall")
    assert forwarded.status_code == 200, forwarded.get_json()

    assert max_.waiting() == [anna]
    queue = max_.client.get("/api/v1/queue").get_json()["waiting"]
    assert queue[0]["forward_note"] == "Kennt den Fall"
    assert anna in max_.client.get("/staff/queue").get_data(as_text=True)
    for other in (lobby.erika, eva, nora):
        assert anna not in other.waiting(), other.username
        assert anna not in other.client.get("/staff/queue").get_data(as_text=True)

    before = snapshot(runtime)
    for other in (lobby.erika, eva, nora):
        for action in ("admit", "forward", "message", "end"):
            answer = other.act(anna, action, **BODIES[action])
            assert answer.status_code == 403, (other.username, action, answer.get_json())
    assert snapshot(runtime) == before

    admitted = max_.act(anna, "admit", room="buergerbuero-1")
    assert admitted.status_code == 200, admitted.get_json()
    assert admitted.get_json()["status"] == "serving"


def test_unknown_ticket_ids_and_actions(app: Flask, runtime: HubRuntime, lobby: Lobby) -> None:
    before = snapshot(runtime)
    assert lobby.erika.act("t-0000000000000000", "admit", room="sozialamt-1").status_code == 404
    assert lobby.erika.act(lobby.anna.ticket, "promote").status_code == 404
    assert lobby.erika.act_form(lobby.anna.ticket, "delete").status_code == 404
    assert snapshot(runtime) == before


# ---- bad input on registration ---------------------------------------------------------------
GOOD = {"name": "Anna", "category": "wohngeld", "description": "Antrag", "consent": "on"}
GOOD_JSON: dict[str, object] = {**GOOD, "consent": True}
MISSING = object()

# id: (changes, field); a MISSING value removes the field.
BAD_INPUT: dict[str, tuple[dict[str, object], str]] = {
    "empty-name": ({"name": ""}, "name"),
    "blank-name": ({"name": "   "}, "name"),
    "missing-name": ({"name": MISSING}, "name"),
    "81-char-name": ({"name": "x" * 81}, "name"),
    "control-char-name": ({"name": "Anna\x1b[31m"}, "name"),
    "501-char-description": ({"description": "x" * 501}, "description"),
    "unknown-category": ({"category": "gibt-es-nicht"}, "category"),
    "missing-category": ({"category": MISSING}, "category"),
    "path-category": ({"category": "../wohngeld"}, "category"),
    "missing-consent": ({"consent": MISSING}, "consent"),
}
BAD_FORM_ONLY: dict[str, tuple[dict[str, object], str]] = {
    "consent-off": ({"consent": "off"}, "consent"),
}
BAD_JSON_ONLY: dict[str, tuple[dict[str, object], str]] = {
    "consent-false": ({"consent": False}, "consent"),
    "consent-maybe": ({"consent": "maybe"}, "consent"),
    "name-not-text": ({"name": 123}, "name"),
    "description-not-text": ({"description": ["x"]}, "description"),
    "category-not-text": ({"category": {"slug": "wohngeld"}}, "category"),
    "unknown-language": ({"language": "fr"}, "language"),
    "unknown-device": ({"device": "../kiosk"}, "device"),
}
FRIENDLY = {
    "name": "Bitte geben Sie einen Namen oder ein Kürzel an (höchstens 80 Zeichen).",
    "description": "Bitte beschreiben Sie Ihr Anliegen in höchstens 500 Zeichen.",
    "category": "Bitte wählen Sie ein Anliegen aus der Liste.",
    "consent": "Bitte bestätigen Sie den Datenschutzhinweis.",
}


def _apply(base: dict[str, object], changes: dict[str, object]) -> dict[str, object]:
    body = {**base, **changes}
    return {k: v for k, v in body.items() if v is not MISSING}


@pytest.fixture
def reception(runtime: HubRuntime) -> None:
    """A configured, open reception and nobody waiting."""
    setup_reception(runtime)


def _expected_status(changes: dict[str, object]) -> int:
    """400 for what breaks the form or schema; 422 for a well-formed but unknown concern."""
    return 422 if changes == BAD_INPUT["unknown-category"][0] else 400


@pytest.mark.parametrize(
    ("changes", "field"),
    [*BAD_INPUT.values(), *BAD_FORM_ONLY.values()],
    ids=[*BAD_INPUT, *BAD_FORM_ONLY],
)
def test_bad_registration_form(
    app: Flask, runtime: HubRuntime, reception: None, changes: dict[str, object], field: str
) -> None:
    client = citizen_client(app)
    csrf = csrf_from(client.get("/empfang/").get_data(as_text=True))
    answer = client.post("/empfang/", data={**_apply(GOOD, changes), "csrf_token": csrf})
    assert answer.status_code == _expected_status(changes)
    html = answer.get_data(as_text=True)
    assert f'<p class="error-text" role="alert" id="form-error">{FRIENDLY[field]}</p>' in html
    assert client.get_cookie("empfang_ticket", path="/empfang") is None
    assert waiting_count(app) == 0
    assert ticket_count(runtime) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [*BAD_INPUT.values(), *BAD_JSON_ONLY.values()],
    ids=[*BAD_INPUT, *BAD_JSON_ONLY],
)
def test_bad_registration_json(
    app: Flask, runtime: HubRuntime, reception: None, changes: dict[str, object], field: str
) -> None:
    answer = citizen_client(app).post("/api/v1/reception/tickets", json=_apply(GOOD_JSON, changes))
    assert answer.status_code == _expected_status(changes), answer.get_json()
    body = answer.get_json()
    assert body["field"] == field
    assert body["error"].startswith(f"{field}: ")
    assert "token" not in body
    assert waiting_count(app) == 0
    assert ticket_count(runtime) == 0


def test_limits_are_inclusive(app: Flask, runtime: HubRuntime, reception: None) -> None:
    longest = {"name": "Ä" * 80, "description": "ü" * 500}  # characters, not bytes
    form_client = citizen_client(app)
    csrf = csrf_from(form_client.get("/empfang/").get_data(as_text=True))
    by_form = form_client.post("/empfang/", data={**GOOD, **longest, "csrf_token": csrf})
    assert by_form.status_code == 302
    by_json = citizen_client(app).post("/api/v1/reception/tickets", json={**GOOD_JSON, **longest})
    assert by_json.status_code == 201, by_json.get_json()
    assert waiting_count(app) == 2


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("application/x-www-form-urlencoded", "name=Anna&category=wohngeld&consent=on"),
        ("text/plain", json.dumps(GOOD_JSON)),
        ("multipart/form-data", {"name": "Anna", "category": "wohngeld", "consent": "on"}),
    ],
    ids=["form-urlencoded", "text-plain", "multipart"],
)
def test_json_api_refuses_other_content_types(
    app: Flask, runtime: HubRuntime, reception: None, content_type: str, data: object
) -> None:
    # Exactly what a form on another site can send without asking (no CORS preflight).
    answer = citizen_client(app).post(
        "/api/v1/reception/tickets", data=data, content_type=content_type
    )
    assert answer.status_code == 400
    assert answer.get_json() == {
        "error": "body: must be application/json",
        "field": "body",
        "code": "request.not_json",
    }
    assert waiting_count(app) == 0
    assert ticket_count(runtime) == 0


@pytest.mark.parametrize("csrf", ["missing", "bogus", "other-session"])
def test_cross_site_form_post_is_refused(
    app: Flask, runtime: HubRuntime, reception: None, csrf: str
) -> None:
    victim = citizen_client(app)
    victim.get("/empfang/")  # has a session, as a real visitor's browser would
    form: dict[str, str] = dict(GOOD)
    if csrf == "bogus":
        form["csrf_token"] = "IjA2ZjE1MzU1In0.bogus.token"
    elif csrf == "other-session":  # the attacker's own, valid token, from their own session
        attacker = citizen_client(app)
        form["csrf_token"] = csrf_from(attacker.get("/empfang/").get_data(as_text=True))
    answer = victim.post("/empfang/", data=form, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert "csrf_token" in answer.get_data(as_text=True)
    assert victim.get_cookie("empfang_ticket", path="/empfang") is None
    assert waiting_count(app) == 0
    assert ticket_count(runtime) == 0


SCRIPT_NAME = "<script>alert(1)</script>"
SCRIPT_DESCRIPTION = '<img src=x onerror="alert(2)">'


def test_markup_is_stored_as_text_and_escaped_everywhere(
    app: Flask, runtime: HubRuntime, reception: None, served: LiveServer
) -> None:
    erika = staff_login(app, runtime, "erika", "sozialamt")
    max_ = staff_login(app, runtime, "max", "buergerbuero")
    client = citizen_client(app)
    csrf = csrf_from(client.get("/empfang/").get_data(as_text=True))

    # A refused form shows the typed name again, escaped.
    refused = client.post(
        "/empfang/", data={**GOOD, "name": SCRIPT_NAME, "consent": "", "csrf_token": csrf}
    )
    assert refused.status_code == 400
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in refused.get_data(as_text=True)
    assert "<script>alert(1)" not in refused.get_data(as_text=True)

    taken = client.post(
        "/empfang/",
        data={**GOOD, "name": SCRIPT_NAME, "description": SCRIPT_DESCRIPTION, "csrf_token": csrf},
    )
    assert taken.status_code == 302
    token = taken.headers["Location"].rsplit("/", 1)[-1]

    # Stored exactly as typed (it is a name, not markup) ...
    queue = erika.client.get("/api/v1/queue").get_json()["waiting"]
    assert [(t["name"], t["description"]) for t in queue] == [(SCRIPT_NAME, SCRIPT_DESCRIPTION)]
    ticket = queue[0]["ticket"]
    # ... and escaped on the staff queue page.
    html = erika.client.get("/staff/queue").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html
    assert "&lt;img src=x onerror=" in html and "<img src=x" not in html

    # The staff live channel renders the same list, escaped as well.
    with open_live(served.url, "/staff/queue/live", cookies=_cookies(erika.client)) as ws:
        pushed = receive_json(ws)
    assert pushed["type"] == "queue" and pushed["waiting"] == [ticket]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pushed["html"]
    assert "<script>alert" not in pushed["html"] and "<img src=x" not in pushed["html"]

    # Markup in a staff message reaches the citizen's page as text.
    message = erika.act(ticket, "message", text="<b>gleich</b><script>alert(3)</script>")
    assert message.status_code == 200
    waiting_page = client.get(f"/empfang/t/{token}").get_data(as_text=True)
    assert "&lt;b&gt;gleich&lt;/b&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in waiting_page
    assert "<script>alert(3)" not in waiting_page and "<b>gleich" not in waiting_page

    # Markup in a forward note reaches the colleague's page as text.
    forwarded = erika.act(ticket, "forward", colleague="max", note="<script>alert(4)</script>")
    assert forwarded.status_code == 200
    max_page = max_.client.get("/staff/queue").get_data(as_text=True)
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in max_page
    assert "<script>alert" not in max_page


# ---- flooding --------------------------------------------------------------------------------
@pytest.fixture
def limited_app(tmp_path: Path, mosquitto: Mosquitto, clock: ManualClock) -> Iterator[Flask]:
    """A hub that takes at most 3 tickets per address in 10 minutes."""
    settings = make_settings(tmp_path, mosquitto.url, ticket_rate=3)
    upgrade(settings.database_url)
    application = create_app(settings, clock=clock)
    runtime: HubRuntime = application.extensions["empfang"]
    assert runtime.bridge.wait_connected(10)
    setup_reception(runtime)
    try:
        yield application
    finally:
        close_app(application)


def _json_ticket(client: FlaskClient, name: str, **extra: object) -> TestResponse:
    return client.post("/api/v1/reception/tickets", json={**GOOD_JSON, "name": name, **extra})


def test_fourth_ticket_from_one_address_is_refused(limited_app: Flask, clock: ManualClock) -> None:
    runtime: HubRuntime = limited_app.extensions["empfang"]
    same = limited_app.test_client()
    same.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    csrf = csrf_from(same.get("/empfang/").get_data(as_text=True))
    # Form and JSON API count together: the limit is per address, not per route.
    first = same.post("/empfang/", data={**GOOD, "name": "Eins", "csrf_token": csrf})
    assert first.status_code == 302
    assert _json_ticket(same, "Zwei").status_code == 201
    clock.advance(minutes=9)
    assert _json_ticket(same, "Drei").status_code == 201
    assert ticket_count(runtime) == 3

    refused = _json_ticket(same, "Vier")
    assert refused.status_code == 429
    assert "token" not in refused.get_json()
    refused_form = same.post("/empfang/", data={**GOOD, "name": "Vier", "csrf_token": csrf})
    assert refused_form.status_code == 429
    assert "sehr viele Anmeldungen" in refused_form.get_data(as_text=True)
    assert ticket_count(runtime) == 3
    assert limited_app.test_client().get("/api/v1/reception").get_json()["waiting"] == 3

    # Another address is not affected.
    other = limited_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.8"
    assert _json_ticket(other, "Andere").status_code == 201
    # Ten minutes after the first two tickets, they no longer count; the third still does.
    clock.advance(minutes=1, seconds=1)
    assert _json_ticket(same, "Fünf").status_code == 201
    assert _json_ticket(same, "Sechs").status_code == 201
    assert _json_ticket(same, "Sieben").status_code == 429
    assert ticket_count(runtime) == 6


def test_made_up_device_ids_do_not_lift_the_address_limit(limited_app: Flask) -> None:
    runtime: HubRuntime = limited_app.extensions["empfang"]
    flooder = limited_app.test_client()
    flooder.environ_base["REMOTE_ADDR"] = "192.0.2.9"
    codes = [_json_ticket(flooder, f"Flut {i}", device=f"kiosk-{i}").status_code for i in range(6)]
    assert codes == [201, 201, 201, 429, 429, 429]
    assert ticket_count(runtime) == 3
