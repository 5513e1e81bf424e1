"""The authorization matrix: every route of the app's URL map, every method, and every
message of a call's live channel, for every kind of person (DESIGN.md sections 4 and 5).

The expected answers are written down below as tables, one row per (endpoint, method) and
one column per actor (tests/support/scenario.py says who they are). A route in the URL map
without a row, or a row without a route, fails `test_every_route_has_a_row`.

Each actor presents what it holds and nothing more: its own browser session (a staff
login, the keys of its own call seats), its own ticket's token and, for the external, the
invitation link. Ids that are no secret (ticket ids, the call session, another
participant's id, documents, invitations, rooms, devices, accounts) are the scenario's
real ones. Where an actor holds no secret of the kind a route needs, it sends a well-formed
guess. Every form carries the CSRF token of the actor's own session, and JSON requests its
X-CSRFToken header, so that only the role is wrong.

HEAD answers as GET does; OPTIONS is Flask's own answer (200 and the allowed methods);
neither runs anything else. A WebSocket address asked without an upgrade is a bad request.
Every cell that must change nothing (each refusal, each read) compares the whole database
before and after. Cells that are allowed to change things get a scenario of their own.
"""

from __future__ import annotations

import inspect
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hub.blueprints import calls as calls_blueprint
from tests.support.calls import PDF
from tests.support.clock import ManualClock
from tests.support.outcomes import (
    CLOSED,
    FLASH,
    LOGIN,
    NO_CHANNEL,
    OK,
    REFUSED,
    client_cookies,
    handshake_class,
    http_class,
    message_class,
    state_changes,
)
from tests.support.scenario import ACTORS, Actor, MatrixHub, Scenario, matrix_hub

Expected = str | int
TOKENS: dict[str, Expected] = {
    "ok": OK,
    "login": LOGIN,
    "flash": FLASH,
    "closed": CLOSED,
    "refused": REFUSED,
    "none": NO_CHANNEL,
}


def table(text: str) -> dict[str, dict[str, Expected]]:
    """Rows of a whitespace-aligned table: first column the key, then one cell per actor."""
    lines = [line.split() for line in text.strip().splitlines() if not line.startswith("#")]
    header, *rows = lines
    assert header[-len(ACTORS) :] == [a[:7] for a in ACTORS], header
    parsed: dict[str, dict[str, Expected]] = {}
    for row in rows:
        key, cells = " ".join(row[: -len(ACTORS)]), row[-len(ACTORS) :]
        assert key not in parsed, f"two rows for {key}"
        parsed[key] = {
            a: TOKENS[c] if c in TOKENS else int(c) for a, c in zip(ACTORS, cells, strict=True)
        }
    return parsed


# ---- the expected answers ---------------------------------------------------------------------
# ok: done (2xx, or a redirect other than to the login form); login: sent to the login form;
# flash: the staff page refused and explained it on the queue page; closed: the live channel
# opens and the hub closes it (1008); a number: that status. WS is the WebSocket handshake.
# Variants in brackets are one route with different path values (the queue actions).
ROUTES = table(
    """
endpoint                      method anonymo citizen knocker guest   externa other_s serving admin
# public pages, the public API, logging in and out
index                         GET    ok      ok      ok      ok      ok      ok      ok      ok
health.healthz                GET    ok      ok      ok      ok      ok      ok      ok      ok
api.openapi                   GET    ok      ok      ok      ok      ok      ok      ok      ok
api.session_info              GET    ok      ok      ok      ok      ok      ok      ok      ok
api.list_rooms                GET    ok      ok      ok      ok      ok      ok      ok      ok
api.get_room                  GET    ok      ok      ok      ok      ok      ok      ok      ok
reception.landing             GET    ok      ok      ok      ok      ok      ok      ok      ok
reception.register            POST   ok      ok      ok      ok      ok      ok      ok      ok
reception.privacy             GET    ok      ok      ok      ok      ok      ok      ok      ok
reception_api.info            GET    ok      ok      ok      ok      ok      ok      ok      ok
reception_api.create_ticket   POST   ok      ok      ok      ok      ok      ok      ok      ok
staff.login                   GET    ok      ok      ok      ok      ok      ok      ok      ok
staff.login                   POST   ok      ok      ok      ok      ok      ok      ok      ok
staff.logout                  POST   ok      ok      ok      ok      ok      ok      ok      ok
# a ticket: its token is the key (the guest's is that of the admitted ticket)
reception.waiting             GET    404     ok      404     ok      404     404     404     404
reception.leave               POST   404     ok      404     ok      404     404     404     404
reception.live                WS     closed  ok      closed  ok      closed  closed  closed  closed
reception_api.get_ticket      GET    404     ok      404     ok      404     404     404     404
reception_api.leave           DELETE 404     ok      404     ok      404     404     404     404
reception_api.live            WS     closed  ok      closed  ok      closed  closed  closed  closed
calls.guest_ticket            GET    404     409     404     ok      404     404     404     404
calls.kiosk_join              POST   404     409     404     ok      404     404     404     404
# entering the consultation: seated, brought in, or by invitation only (section 4)
calls.room                    GET    ok      ok      ok      ok      ok      ok      ok      ok
calls.room                    POST   403     403     403     403     403     403     ok      403
calls.invited                 GET    404     404     404     404     ok      404     404     404
calls.invited                 POST   404     404     404     404     ok      404     404     404
calls.join_session            POST   login   login   login   login   login   403     ok      403
calls.host_ticket             POST   login   login   login   login   login   403     ok      403
# in a call: the own participant id and its key (the others try the guest's id)
calls.page                    GET    403     403     ok      ok      ok      403     ok      403
calls.live                    WS     closed  closed  ok      ok      ok      closed  ok      closed
calls.upload                  POST   403     403     403     ok      ok      403     ok      403
calls.download                GET    403     403     403     ok      ok      403     ok      403
calls.invite                  POST   403     403     403     403     403     403     ok      403
calls.revoke_invite           DELETE 403     403     403     403     403     403     ok      403
# the lobby: staff of the ticket's queue; a served ticket only by whoever serves it
queue.page                    GET    login   login   login   login   login   ok      ok      ok
queue.api_list                GET    401     401     401     401     401     ok      ok      ok
queue.live                    WS     401     401     401     401     401     ok      ok      ok
queue.api_act[admit]          POST   401     401     401     401     401     403     ok      ok
queue.api_act[forward]        POST   401     401     401     401     401     403     ok      ok
queue.api_act[message]        POST   401     401     401     401     401     403     ok      ok
queue.api_act[return]         POST   401     401     401     401     401     403     ok      ok
queue.api_act[end]            POST   401     401     401     401     401     403     ok      ok
queue.act[admit]              POST   login   login   login   login   login   flash   ok      ok
queue.act[forward]            POST   login   login   login   login   login   flash   ok      ok
queue.act[message]            POST   login   login   login   login   login   flash   ok      ok
queue.act[return]             POST   login   login   login   login   login   flash   ok      ok
queue.act[end]                POST   login   login   login   login   login   flash   ok      ok
# the room board: staff
rooms.board                   GET    login   login   login   login   login   ok      ok      ok
rooms.check_in                POST   login   login   login   login   login   ok      ok      ok
rooms.check_out               POST   login   login   login   login   login   ok      ok      ok
rooms.dnd                     POST   login   login   login   login   login   ok      ok      ok
rooms.live                    WS     401     401     401     401     401     ok      ok      ok
api.check_in                  POST   401     401     401     401     401     ok      ok      ok
api.check_out                 POST   401     401     401     401     401     ok      ok      ok
api.set_dnd                   PUT    401     401     401     401     401     ok      ok      ok
# administration: admins
api.create_room               POST   401     401     401     401     401     403     403     ok
api.update_room               PATCH  401     401     401     401     401     403     403     ok
api.delete_room               DELETE 401     401     401     401     401     403     403     ok
api.set_enabled               PUT    401     401     401     401     401     403     403     ok
admin.index                   GET    login   login   login   login   login   403     403     ok
admin.rooms                   GET    login   login   login   login   login   403     403     ok
admin.new_room                GET    login   login   login   login   login   403     403     ok
admin.new_room                POST   login   login   login   login   login   403     403     ok
admin.edit_room               GET    login   login   login   login   login   403     403     ok
admin.edit_room               POST   login   login   login   login   login   403     403     ok
admin.set_enabled             POST   login   login   login   login   login   403     403     ok
admin.delete_room             POST   login   login   login   login   login   403     403     ok
admin.new_department          POST   login   login   login   login   login   403     403     ok
admin.categories              GET    login   login   login   login   login   403     403     ok
admin.new_category            POST   login   login   login   login   login   403     403     ok
admin.category_active         POST   login   login   login   login   login   403     403     ok
admin.users                   GET    login   login   login   login   login   403     403     ok
admin.new_user                POST   login   login   login   login   login   403     403     ok
admin.edit_user               POST   login   login   login   login   login   403     403     ok
admin.reset_password          POST   login   login   login   login   login   403     403     ok
admin.stats                   GET    login   login   login   login   login   403     403     ok
admin.stats_csv               GET    login   login   login   login   login   403     403     ok
devices.fleet                 GET    login   login   login   login   login   403     403     ok
devices.create                POST   login   login   login   login   login   403     403     ok
devices.set_rooms             POST   login   login   login   login   login   403     403     ok
devices.command               POST   login   login   login   login   login   403     403     ok
devices.new_code              POST   login   login   login   login   login   403     403     ok
devices.revoke                POST   login   login   login   login   login   403     403     ok
devices.live                  WS     401     401     401     401     401     403     403     ok
devices.api_list              GET    401     401     401     401     401     403     403     ok
devices.api_create            POST   401     401     401     401     401     403     403     ok
devices.api_get               GET    401     401     401     401     401     403     403     ok
devices.api_update            PATCH  401     401     401     401     401     403     403     ok
devices.api_revoke            DELETE 401     401     401     401     401     403     403     ok
devices.api_command           POST   401     401     401     401     401     403     403     ok
devices.api_new_code          POST   401     401     401     401     401     403     403     ok
# a device enrolls with its one-time code, which the admin was given (everyone else guesses)
devices.enroll                POST   403     403     403     403     403     403     403     ok
"""
)

# The live channel of a call, /call/<participant>/live: a message per type; "none" means the
# actor cannot open the channel at all (it holds no seat: it tries the guest's id).
MESSAGES = table(
    """
type    anonymo citizen knocker guest   externa other_s serving admin
ping    none    none    ok      ok      ok      none    ok      none
signal  none    none    refused ok      ok      none    ok      none
chat    none    none    refused ok      ok      none    ok      none
admit   none    none    refused refused refused none    ok      none
remove  none    none    refused refused refused none    ok      none
bring   none    none    refused refused refused none    ok      none
move    none    none    refused refused refused none    ok      none
dnd     none    none    refused refused refused none    ok      none
leave   none    none    ok      ok      ok      none    ok      none
"""
)

PREFLIGHT: Expected = OK  # OPTIONS: Flask answers 200 with the Allow header itself
NOT_A_HANDSHAKE = 400  # HEAD or OPTIONS on a WebSocket address
READS = ("GET", "HEAD", "OPTIONS", "WS")
# Reads that take a seat in a call: a new seat replaces the old one, a new channel takes
# over the seat's connection. Allowed, they change the scenario.
TAKES_A_SEAT = ("calls.guest_ticket", "calls.live")
QUIET_MESSAGES = ("ping", "signal")  # messages that change nothing stored


# ---- the requests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """A path and what the test client sends with it."""

    path: str
    options: dict[str, Any] = field(default_factory=dict)


Build = Callable[[Scenario, Actor], Request]


def get(path: str) -> Request:
    """Just the path (GET, or DELETE and POST without a body)."""
    return Request(path)


def form(actor: Actor, path: str, **fields: Any) -> Request:
    """A form post with the CSRF token of the actor's own session."""
    return Request(path, {"data": {**fields, "csrf_token": actor.csrf}})


def api(actor: Actor, path: str, body: Any = None) -> Request:
    """A JSON request with the X-CSRFToken header of the actor's own session."""
    options: dict[str, Any] = {"headers": {"X-CSRFToken": actor.csrf}}
    if body is not None:
        options["json"] = body
    return Request(path, options)


def call_request(s: Scenario, a: Actor, path: str, **options: Any) -> Request:
    """A request inside a call, as call.js sends it (CSRF token and the seat's key)."""
    return Request(f"/call/{s.participant(a)}{path}", {"headers": s.call_headers(a), **options})


def upload(s: Scenario, a: Actor) -> Request:
    """Share a small PDF."""
    file = (io.BytesIO(PDF), "antrag.pdf")
    return call_request(s, a, "/documents", data={"file": file}, content_type="multipart/form-data")


def queue_action(action: str, body: dict[str, str], served: bool, by_form: bool) -> Build:
    """A queue action on the waiting ticket, or on the consultation's ticket (`served`)."""

    def build(s: Scenario, a: Actor) -> Request:
        ticket = s.consultation.citizen.ticket if served else s.waiting.ticket
        values = {k: v.format(spare=s.rooms.spare) for k, v in body.items()}
        if by_form:
            return form(a, f"/staff/queue/{ticket}/{action}", **values)
        return api(a, f"/api/v1/queue/{ticket}/{action}", values)

    return build


QUEUE_ACTIONS = {
    "admit": ({"room": "{spare}"}, False),
    "forward": ({"department": "buergerbuero", "note": "bitte übernehmen"}, False),
    "message": ({"text": "Gleich sind Sie dran"}, False),
    "return": ({}, True),
    "end": ({"outcome": "resolved"}, True),
}
TICKET_FORM = {"name": "Neu", "category": "wohngeld", "description": "Antrag", "consent": "on"}
DEVICE = {"kind": "display", "name": "Tür", "location": "Haus A", "rooms": []}

REQUESTS: dict[str, Build] = {
    "index": lambda s, a: get("/"),
    "health.healthz": lambda s, a: get("/healthz"),
    "api.openapi": lambda s, a: get("/api/v1/openapi.json"),
    "api.session_info": lambda s, a: get("/api/v1/session"),
    "api.list_rooms": lambda s, a: get("/api/v1/rooms"),
    "api.get_room": lambda s, a: get(f"/api/v1/rooms/{s.rooms.consultation}"),
    "reception.landing": lambda s, a: get("/empfang/"),
    "reception.register": lambda s, a: form(a, "/empfang/", **TICKET_FORM),
    "reception.privacy": lambda s, a: get("/empfang/datenschutz"),
    "reception_api.info": lambda s, a: get("/api/v1/reception"),
    "reception_api.create_ticket": lambda s, a: api(
        a, "/api/v1/reception/tickets", {**TICKET_FORM, "consent": True}
    ),
    "staff.login GET": lambda s, a: get("/staff/login"),
    "staff.login POST": lambda s, a: form(
        a, "/staff/login", username=s.login_account.username, password=s.login_account.password
    ),
    "staff.logout": lambda s, a: form(a, "/staff/logout"),
    "reception.waiting": lambda s, a: get(f"/empfang/t/{s.ticket_token(a)}"),
    "reception.leave": lambda s, a: form(a, f"/empfang/t/{s.ticket_token(a)}/leave"),
    "reception.live": lambda s, a: get(f"/empfang/t/{s.ticket_token(a)}/live"),
    "reception_api.get_ticket": lambda s, a: get(f"/api/v1/reception/tickets/{s.ticket_token(a)}"),
    "reception_api.leave": lambda s, a: get(f"/api/v1/reception/tickets/{s.ticket_token(a)}"),
    "reception_api.live": lambda s, a: get(f"/api/v1/reception/tickets/{s.ticket_token(a)}/live"),
    "calls.guest_ticket": lambda s, a: get(f"/empfang/t/{s.ticket_token(a)}/call"),
    "calls.kiosk_join": lambda s, a: get(f"/api/v1/reception/tickets/{s.ticket_token(a)}/call"),
    "calls.room GET": lambda s, a: get(f"/r/{s.running_room}"),
    "calls.room POST": lambda s, a: form(a, f"/r/{s.running_room}", name="Neugierig"),
    "calls.invited GET": lambda s, a: get(f"/join/{s.invite_token(a)}"),
    "calls.invited POST": lambda s, a: form(a, f"/join/{s.invite_token(a)}", name="Gutachter"),
    "calls.join_session": lambda s, a: form(a, f"/call/session/{s.session_id}/join"),
    "calls.host_ticket": lambda s, a: form(a, f"/staff/queue/{s.consultation.citizen.ticket}/call"),
    "calls.page": lambda s, a: call_request(s, a, ""),
    "calls.live": lambda s, a: get(f"/call/{s.participant(a)}/live"),
    "calls.upload": upload,
    "calls.download": lambda s, a: call_request(s, a, f"/documents/{s.document}"),
    "calls.invite": lambda s, a: call_request(s, a, "/invites", json={"label": "Anwältin"}),
    "calls.revoke_invite": lambda s, a: call_request(s, a, f"/invites/{s.invite[0]}"),
    "queue.page": lambda s, a: get("/staff/queue"),
    "queue.api_list": lambda s, a: get("/api/v1/queue"),
    "queue.live": lambda s, a: get("/staff/queue/live"),
    **{
        f"queue.api_act[{action}]": queue_action(action, body, served, by_form=False)
        for action, (body, served) in QUEUE_ACTIONS.items()
    },
    **{
        f"queue.act[{action}]": queue_action(action, body, served, by_form=True)
        for action, (body, served) in QUEUE_ACTIONS.items()
    },
    "rooms.board": lambda s, a: get("/rooms"),
    "rooms.check_in": lambda s, a: form(a, f"/rooms/{s.rooms.spare}/checkin"),
    "rooms.check_out": lambda s, a: form(a, f"/rooms/{s.rooms.spare}/checkout"),
    "rooms.dnd": lambda s, a: form(a, f"/rooms/{s.rooms.spare}/dnd", dnd="on"),
    "rooms.live": lambda s, a: get("/rooms/live"),
    "api.check_in": lambda s, a: api(a, f"/api/v1/rooms/{s.rooms.spare}/checkin"),
    "api.check_out": lambda s, a: api(a, f"/api/v1/rooms/{s.rooms.spare}/checkout"),
    "api.set_dnd": lambda s, a: api(a, f"/api/v1/rooms/{s.rooms.spare}/dnd", {"dnd": True}),
    "api.create_room": lambda s, a: api(a, "/api/v1/rooms", {"slug": f"neu-{s.n}", "name": "Neu"}),
    "api.update_room": lambda s, a: api(a, f"/api/v1/rooms/{s.rooms.spare}", {"name": "Anders"}),
    "api.delete_room": lambda s, a: api(a, f"/api/v1/rooms/{s.rooms.spare}"),
    "api.set_enabled": lambda s, a: api(
        a, f"/api/v1/rooms/{s.rooms.spare}/enabled", {"enabled": False}
    ),
    "admin.index": lambda s, a: get("/admin/"),
    "admin.rooms": lambda s, a: get("/admin/rooms"),
    "admin.new_room GET": lambda s, a: get("/admin/rooms/new"),
    "admin.new_room POST": lambda s, a: form(
        a, "/admin/rooms/new", slug=f"neu-{s.n}", name="Neu", kind="meeting", policy="open"
    ),
    "admin.edit_room GET": lambda s, a: get(f"/admin/rooms/{s.rooms.spare}"),
    "admin.edit_room POST": lambda s, a: form(
        a, f"/admin/rooms/{s.rooms.spare}", name="Anders", kind="consultation", policy="knock"
    ),
    "admin.set_enabled": lambda s, a: form(a, f"/admin/rooms/{s.rooms.spare}/enabled"),
    "admin.delete_room": lambda s, a: form(a, f"/admin/rooms/{s.rooms.spare}/delete"),
    "admin.new_department": lambda s, a: form(
        a, "/admin/departments", slug=f"amt-{s.n}", name="Amt"
    ),
    "admin.categories": lambda s, a: get("/admin/categories"),
    "admin.new_category": lambda s, a: form(
        a, "/admin/categories", slug=f"neu-{s.n}", name_de="Neu", department="sozialamt"
    ),
    "admin.category_active": lambda s, a: form(a, f"/admin/categories/{s.category}/active"),
    "admin.users": lambda s, a: get("/admin/users"),
    "admin.new_user": lambda s, a: form(
        a, "/admin/users", username=f"neu{s.n}", display_name="Neu"
    ),
    "admin.edit_user": lambda s, a: form(
        a, f"/admin/users/{s.spare_user_id}", display_name="Max Muster"
    ),
    "admin.reset_password": lambda s, a: form(a, f"/admin/users/{s.spare_user_id}/password"),
    "admin.stats": lambda s, a: get("/admin/stats"),
    "admin.stats_csv": lambda s, a: get("/admin/stats.csv"),
    "devices.fleet": lambda s, a: get("/admin/devices"),
    "devices.create": lambda s, a: form(a, "/admin/devices", **{**DEVICE, "rooms": []}),
    "devices.set_rooms": lambda s, a: form(
        a, f"/admin/devices/{s.device}/rooms", rooms=[s.rooms.spare]
    ),
    "devices.command": lambda s, a: form(a, f"/admin/devices/{s.device}/cmd", cmd="identify"),
    "devices.new_code": lambda s, a: form(a, f"/admin/devices/{s.device}/code"),
    "devices.revoke": lambda s, a: form(a, f"/admin/devices/{s.device}/revoke"),
    "devices.live": lambda s, a: get("/admin/devices/live"),
    "devices.api_list": lambda s, a: get("/api/v1/devices"),
    "devices.api_create": lambda s, a: api(a, "/api/v1/devices", DEVICE),
    "devices.api_get": lambda s, a: get(f"/api/v1/devices/{s.device}"),
    "devices.api_update": lambda s, a: api(a, f"/api/v1/devices/{s.device}", {"name": "Tür 2"}),
    "devices.api_revoke": lambda s, a: api(a, f"/api/v1/devices/{s.device}"),
    "devices.api_command": lambda s, a: api(
        a, f"/api/v1/devices/{s.device}/cmd", {"cmd": "identify"}
    ),
    "devices.api_new_code": lambda s, a: api(a, f"/api/v1/devices/{s.device}/code"),
    "devices.enroll": lambda s, a: api(
        a, "/api/v1/devices/enroll", {"code": s.enrollment_code_for(a), "kind": "display"}
    ),
}


def message_body(kind: str, s: Scenario, a: Actor) -> dict[str, Any]:
    """What the actor's page sends; who it names is someone real of the actor's own call."""
    assert a.seat is not None
    host = a.name == "serving"
    if kind == "signal":
        return {
            "type": kind,
            "to": s.peer(a).participant,
            "kind": "description",
            "data": {"type": "offer", "sdp": "v=0"},
        }
    if kind == "chat":
        return {"type": kind, "text": "Guten Tag"}
    if kind == "admit":  # the host a seated guest; everyone else themselves (the tempting one)
        return {
            "type": kind,
            "participant": s.consultation.guest.participant if host else a.seat.participant,
        }
    if kind == "remove":
        return {"type": kind, "participant": (s.external if host else s.peer(a)).participant}
    if kind == "bring":
        return {"type": kind, "user": s.spare_user.username}
    if kind == "move":
        return {"type": kind, "room": s.rooms.spare}
    if kind == "dnd":
        return {"type": kind, "on": True}
    return {"type": kind}


# ---- the cells ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    """One actor's attempt at one route and method (or one live-channel message)."""

    endpoint: str
    method: str
    variant: str
    actor: str
    expected: Expected

    @property
    def key(self) -> str:
        """The request builder's name."""
        name = f"{self.endpoint}[{self.variant}]" if self.variant else self.endpoint
        if name in REQUESTS:
            return name
        return f"{name} {'GET' if self.method in ('HEAD', 'OPTIONS') else self.method}"

    @property
    def id(self) -> str:
        """How pytest names the cell."""
        variant = f"[{self.variant}]" if self.variant else ""
        return f"{self.endpoint}{variant} {self.method} {self.actor}"

    @property
    def changes_things(self) -> bool:
        """Whether the hub is allowed to change something here."""
        if self.method == "message":
            return self.expected == OK and self.endpoint not in QUIET_MESSAGES
        if self.method == "OPTIONS":
            return False  # answered by Flask itself, the view never runs
        may_change = self.method not in READS or self.endpoint in TAKES_A_SEAT
        return may_change and self.expected == OK


def _split(key: str) -> tuple[str, str, str]:
    endpoint, method = key.split()
    variant = ""
    if "[" in endpoint:
        endpoint, variant = endpoint.rstrip("]").split("[")
    return endpoint, method, variant


def route_cells() -> list[Cell]:
    """Every row and actor of ROUTES, with the HEAD and OPTIONS cells they imply."""
    cells: list[Cell] = []
    first_of: dict[str, tuple[str, str]] = {}
    for key, row in ROUTES.items():
        endpoint, method, variant = _split(key)
        first_of.setdefault(endpoint, (method, variant))
        for actor, expected in row.items():
            cells.append(Cell(endpoint, method, variant, actor, expected))
            if method == "GET":
                cells.append(Cell(endpoint, "HEAD", variant, actor, expected))
            if method == "WS":
                cells.append(Cell(endpoint, "HEAD", variant, actor, NOT_A_HANDSHAKE))
    for endpoint, (method, variant) in first_of.items():
        preflight = NOT_A_HANDSHAKE if method == "WS" else PREFLIGHT
        cells += [Cell(endpoint, "OPTIONS", variant, actor, preflight) for actor in ACTORS]
    return cells


def message_cells() -> list[Cell]:
    """Every row and actor of MESSAGES."""
    return [
        Cell(kind, "message", "", actor, expected)
        for kind, row in MESSAGES.items()
        for actor, expected in row.items()
    ]


ROUTE_CELLS = route_cells()
MESSAGE_CELLS = message_cells()


# ---- running a cell ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MatrixHub]:
    """One hub for the whole module, on a Wednesday at 10:00 in Berlin."""
    clock = ManualClock(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    with matrix_hub(tmp_path_factory.mktemp("matrix"), clock) as hub:
        yield hub


Attempt = Callable[[], tuple[Expected, str]]


def run(matrix: MatrixHub, cell: Cell, prepare: Callable[[Scenario, Actor], Attempt]) -> None:
    """Prepare the cell's target, make the attempt, compare; a refusal changes nothing.

    The shared scenario is given up after a cell that changed it (a disagreement), so
    one wrong answer does not turn into many.
    """
    scenarios = matrix.scenarios
    scenario = scenarios.fresh() if cell.changes_things else scenarios.shared()
    spoilt = True
    try:
        attempt = prepare(scenario, scenario.actor(cell.actor))
        before = None if cell.changes_things else matrix.state()
        got, detail = attempt()
        changes = {} if before is None else state_changes(before, matrix.state())
        spoilt = cell.changes_things or bool(changes) or got == OK != cell.expected
        assert got == cell.expected, f"{cell.id}: expected {cell.expected}, got {got}: {detail}"
        assert not changes, f"{cell.id}: the answer was {got}, but things changed: {changes}"
    finally:
        if spoilt:
            scenarios.retire(scenario)


def http_attempt(cell: Cell) -> Callable[[Scenario, Actor], Attempt]:
    """A request through the actor's own test client."""

    def prepare(s: Scenario, a: Actor) -> Attempt:
        request = REQUESTS[cell.key](s, a)
        options = {} if cell.method in ("HEAD", "OPTIONS") else request.options
        if cell.method in ("HEAD", "OPTIONS") and "headers" in request.options:
            options = {"headers": request.options["headers"]}

        def attempt() -> tuple[Expected, str]:
            response = a.client.open(request.path, method=cell.method, **options)
            body = response.get_data(as_text=True)[:300]
            where = response.headers.get("Location", "")
            return http_class(
                response
            ), f"{cell.method} {request.path} -> {response.status_code} {where} {body}"

        return attempt

    return prepare


def handshake_attempt(cell: Cell) -> Callable[[Scenario, Actor], Attempt]:
    """A WebSocket handshake with the actor's cookies, from the hub's own origin."""

    def prepare(s: Scenario, a: Actor) -> Attempt:
        path = REQUESTS[cell.key](s, a).path

        def attempt() -> tuple[Expected, str]:
            return handshake_class(s.base_url, path, client_cookies(a.client)), path

        return attempt

    return prepare


def message_attempt(cell: Cell) -> Callable[[Scenario, Actor], Attempt]:
    """One message on the actor's own live channel (or the attempt to open one)."""

    def prepare(s: Scenario, a: Actor) -> Attempt:
        if a.seat is None:
            path = f"/call/{s.participant(a)}/live"

            def refused() -> tuple[Expected, str]:
                got = handshake_class(s.base_url, path, client_cookies(a.client))
                return (NO_CHANNEL if got == CLOSED else got), path

            return refused
        live = s.live_of(a.seat)
        message = message_body(cell.endpoint, s, a)
        peer = s.live_of(s.peer(a)) if cell.endpoint == "signal" else None

        def attempt() -> tuple[Expected, str]:
            got, errors = message_class(live, message)
            if peer is not None and got == OK:  # relayed to the peer's page
                peer.wait(
                    lambda m: m.get("type") == "signal" and m.get("from") == a.seat.participant
                )
            return got, f"{message} -> {errors}"

        return attempt

    return prepare


# ---- the tests --------------------------------------------------------------------------------
def test_every_route_has_a_row(matrix: MatrixHub) -> None:
    in_map = {
        (rule.endpoint, "WS" if rule.websocket and method == "GET" else method)
        for rule in matrix.app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
    }
    in_table = {(cell.endpoint, cell.method) for cell in ROUTE_CELLS}
    assert sorted(in_map - in_table) == [], "routes without a row in ROUTES"
    assert sorted(in_table - in_map) == [], "rows in ROUTES without a route"
    assert sorted(k for k in REQUESTS if k not in {c.key for c in ROUTE_CELLS}) == []


def test_every_live_message_type_has_a_row() -> None:
    handled = re.findall(r'kind == "([a-z-]+)"', inspect.getsource(calls_blueprint._handle))
    assert sorted(handled) == sorted(MESSAGES)


@pytest.mark.parametrize("cell", ROUTE_CELLS, ids=lambda c: c.id)
def test_route(matrix: MatrixHub, cell: Cell) -> None:
    if cell.method == "WS":
        run(matrix, cell, handshake_attempt(cell))
    else:
        run(matrix, cell, http_attempt(cell))


@pytest.mark.parametrize("cell", MESSAGE_CELLS, ids=lambda c: c.id)
def test_live_message(matrix: MatrixHub, cell: Cell) -> None:
    run(matrix, cell, message_attempt(cell))
