"""Everyone the hub knows, each in their place around one running consultation.

A `Scenario` builds what a test touches, on first use: a waiting citizen, a citizen in a
consultation with the staff member who admitted them, an external invited by link, a guest
knocking at a permanent room, a colleague of another department and an admin. Names and
slugs carry the scenario's number, so several scenarios live side by side in one hub.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hub.app import close_app, create_app
from hub.db import session_scope, upgrade
from hub.models import Category, Department, User
from hub.runtime import HubRuntime
from hub.services.devices import new_code
from tests.conftest import Account, add_user, log_in, make_settings
from tests.support.calls import (
    PDF,
    Citizen,
    Live,
    Seat,
    Staff,
    add_room,
    csrf_of,
    enter_room_as_guest,
    enter_room_as_staff,
    invite_token,
    join_by_invite,
    new_browser,
    participant_row,
    register,
    seat_from,
    staff_login,
)
from tests.support.clock import ManualClock
from tests.support.hashing import light_password_hashing
from tests.support.hubserver import LiveServer
from tests.support.mosquitto import Mosquitto
from tests.support.outcomes import DatabaseReader
from tests.support.reception import setup_reception

# The people of the authorization matrix, in its column order.
ACTORS = (
    "anonymous",  # a browser with a session of its own and nothing else
    "citizen",  # holds the token of a ticket that waits in the Sozialamt's queue
    "knocker",  # a guest at the door of a permanent room with policy knock, not let in
    "guest",  # the citizen admitted from the reception, seated in the consultation
    "external",  # joined the consultation by the host's invitation link
    "other_staff",  # a staff member of the Bürgerbüro: not seated, not brought in
    "serving",  # the staff member who admitted the citizen and hosts the consultation
    "admin",  # an admin: not seated, not brought in
)
SEATED = ("knocker", "guest", "external", "serving")


@dataclass
class Actor:
    """One person's browser, its CSRF token and whatever secret it holds."""

    name: str
    client: FlaskClient
    csrf: str
    seat: Seat | None = None  # its own seat in a call (participant id and key)
    token: str | None = None  # its own ticket's token


@dataclass(frozen=True)
class Rooms:
    """The scenario's rooms."""

    consultation: str  # where the citizen is served
    knock: str  # a permanent meeting room with policy knock, a doorkeeper inside
    spare: str  # free: to admit into, move to, check in to, edit and delete


@dataclass(frozen=True)
class Consultation:
    """The admitted citizen and the serving staff member, both seated in the call."""

    citizen: Citizen
    guest: Seat
    host: Seat


class Scenario:
    """One consultation and everyone around it, each part made when first asked for."""

    def __init__(self, app: Flask, base_url: str, n: int) -> None:
        self.app = app
        self.runtime: HubRuntime = app.extensions["empfang"]
        self.base_url = base_url
        self.n = n
        self._actors: dict[str, Actor] = {}
        self._lives: dict[str, Live] = {}
        self._rooms: Rooms | None = None

    # ---- places and people --------------------------------------------------------------
    @property
    def rooms(self) -> Rooms:
        """Three rooms of this scenario's own (made on first use)."""
        if self._rooms is None:
            made = Rooms(f"beratung-{self.n}", f"sprechzimmer-{self.n}", f"frei-{self.n}")
            add_room(self.runtime, made.consultation, "knock", kind="consultation")
            add_room(self.runtime, made.knock, "knock")
            add_room(self.runtime, made.spare, "knock", kind="consultation")
            self._rooms = made
        return self._rooms

    @cached_property
    def serving_staff(self) -> Staff:
        """Erika of the Sozialamt, who admits the citizen."""
        return staff_login(self.app, self.runtime, f"erika{self.n}", "sozialamt")

    @cached_property
    def other_staff(self) -> Staff:
        """Otto of the Bürgerbüro."""
        return staff_login(self.app, self.runtime, f"otto{self.n}", "buergerbuero")

    @cached_property
    def admin(self) -> Staff:
        """Ada, an admin of no department (so she sees every queue)."""
        account = add_user(self.runtime, f"ada{self.n}", admin=True)
        client = new_browser(self.app)
        return Staff(account.username, client, log_in(client, account))

    @cached_property
    def doorkeeper(self) -> Seat:
        """Kim, a staff member inside the knock room."""
        kim = staff_login(self.app, self.runtime, f"kim{self.n}")
        return seat_from(kim.client, enter_room_as_staff(kim.client, self.rooms.knock))

    @cached_property
    def spare_user(self) -> Account:
        """Max, an account nobody logs in with: to bring in, edit and reset."""
        return add_user(self.runtime, f"max{self.n}")

    @cached_property
    def spare_user_id(self) -> int:
        """Max's account id."""
        return self.user_id(self.spare_user.username)

    @cached_property
    def login_account(self) -> Account:
        """An account whose valid credentials any browser may post to the login form."""
        return add_user(self.runtime, f"probe{self.n}")

    @cached_property
    def waiting(self) -> Citizen:
        """Wilma, waiting in the Sozialamt's queue."""
        return register(self.app, "Wilma")

    @cached_property
    def consultation(self) -> Consultation:
        """Anna, admitted by Erika into the consultation room; both opened the call."""
        rooms, staff = self.rooms, self.serving_staff
        anna = register(self.app, "Anna")
        admitted = staff.act(anna.ticket, "admit", room=rooms.consultation)
        assert admitted.status_code == 200, admitted.get_json()
        guest = seat_from(anna.client, anna.client.get(f"/empfang/t/{anna.token}/call"))
        host = seat_from(staff.client, staff.open_call(anna.ticket))
        return Consultation(anna, guest, host)

    @cached_property
    def session_id(self) -> str:
        """The consultation's call session id."""
        return str(participant_row(self.runtime, self.consultation.host.participant)["session"])

    @property
    def running_room(self) -> str:
        """The room of the running consultation (opened first)."""
        return participant_row(self.runtime, self.consultation.host.participant)["room"]

    @cached_property
    def invite(self) -> tuple[int, str]:
        """The invitation Erika made for the external: its id and its secret token."""
        answer = self.consultation.host.invite("Dolmetscherin")
        assert answer.status_code == 201, answer.get_json()
        body = answer.get_json()
        return body["id"], invite_token(body["url"])

    @cached_property
    def external(self) -> Seat:
        """Dana, an interpreter who followed the invitation link."""
        client = new_browser(self.app)
        return seat_from(client, join_by_invite(client, self.invite[1], "Dana"))

    @cached_property
    def knocker(self) -> Seat:
        """Klara, knocking at the knock room's door."""
        self.live_of(self.doorkeeper)  # someone must be in the room to let a guest in
        client = new_browser(self.app)
        seat = seat_from(client, enter_room_as_guest(client, self.rooms.knock, "Klara"))
        assert participant_row(self.runtime, seat.participant)["admitted"] is False
        return seat

    @cached_property
    def document(self) -> str:
        """A PDF Anna shared in the consultation."""
        answer = self.consultation.guest.upload(PDF, "antrag.pdf")
        assert answer.status_code == 201, answer.get_json()
        return str(answer.get_json()["id"])

    @cached_property
    def device(self) -> str:
        """An enrolled door display."""
        created = self._new_device()
        enrolled = new_browser(self.app).post(
            "/api/v1/devices/enroll", json={"code": created["code"], "kind": "display"}
        )
        assert enrolled.status_code == 200, enrolled.get_json()
        return str(created["id"])

    @cached_property
    def enrollment_code(self) -> str:
        """The one-time code of a display not enrolled yet (given to the admin)."""
        return str(self._new_device()["code"])

    @cached_property
    def category(self) -> str:
        """A concern category of this scenario's own (to switch off)."""
        slug = f"anliegen-{self.n}"
        with session_scope(self.runtime.sessions) as db:
            department = db.scalar(select(Department).where(Department.slug == "sozialamt"))
            assert department is not None
            db.add(
                Category(
                    slug=slug,
                    name_de="Anliegen",
                    name_en="Concern",
                    department_id=department.id,
                    active=True,
                    position=100 + self.n,
                )
            )
            db.commit()
        return slug

    def _new_device(self) -> dict[str, str]:
        body = {"kind": "display", "name": "Tür", "location": "Haus A", "rooms": []}
        answer = self.admin.client.post(
            "/api/v1/devices", json=body, headers={"X-CSRFToken": self.admin.csrf}
        )
        assert answer.status_code == 201, answer.get_json()
        return answer.get_json()

    def user_id(self, username: str) -> int:
        """An account's id."""
        with session_scope(self.runtime.sessions) as db:
            found = db.scalar(select(User.id).where(User.username == username))
            assert found is not None, username
            return found

    # ---- the actors ---------------------------------------------------------------------
    def actor(self, name: str) -> Actor:
        """The actor called `name` (see ACTORS), with what it holds."""
        if name not in self._actors:
            self._actors[name] = self._make_actor(name)
        return self._actors[name]

    def _make_actor(self, name: str) -> Actor:
        if name == "anonymous":
            client = new_browser(self.app)
            return Actor(name, client, csrf_of(client))
        if name == "citizen":
            return Actor(
                name, self.waiting.client, csrf_of(self.waiting.client), token=self.waiting.token
            )
        if name == "knocker":
            return self._seated(name, self.knocker)
        if name == "guest":
            actor = self._seated(name, self.consultation.guest)
            actor.token = self.consultation.citizen.token
            return actor
        if name == "external":
            return self._seated(name, self.external)
        staff = {"other_staff": "other_staff", "serving": "serving_staff", "admin": "admin"}
        if name not in staff:
            raise ValueError(f"no actor {name!r}; known: {', '.join(ACTORS)}")
        member: Staff = getattr(self, staff[name])
        seat = self.consultation.host if name == "serving" else None
        return Actor(name, member.client, member.csrf, seat=seat)

    @staticmethod
    def _seated(name: str, seat: Seat) -> Actor:
        return Actor(name, seat.client, seat.csrf, seat=seat)

    def participant(self, actor: Actor) -> str:
        """The actor's own participant id, or (for those without a seat) the guest's."""
        return actor.seat.participant if actor.seat else self.consultation.guest.participant

    def ticket_token(self, actor: Actor) -> str:
        """The actor's own ticket token, or a well-formed guess for those who hold none."""
        return actor.token or secrets.token_urlsafe(32)

    def invite_token(self, actor: Actor) -> str:
        """The real invitation token for the external who holds it, a guess for everyone else."""
        return self.invite[1] if actor.name == "external" else secrets.token_urlsafe(24)

    def enrollment_code_for(self, actor: Actor) -> str:
        """The real one-time code for the admin who was given it, a guess for everyone else."""
        return self.enrollment_code if actor.name == "admin" else new_code()

    def call_headers(self, actor: Actor) -> dict[str, str]:
        """What call.js sends with uploads and invitations: CSRF token and the seat's key."""
        key = {"X-Participant-Key": actor.seat.key} if actor.seat else {}
        return {"X-CSRFToken": actor.csrf, **key}

    def peer(self, actor: Actor) -> Seat:
        """Someone in the actor's call to signal to: the host, or for the host the guest."""
        if actor.name == "knocker":
            return self.doorkeeper
        if actor.name == "serving":
            return self.consultation.guest
        return self.consultation.host

    # ---- live channels ------------------------------------------------------------------
    def live_of(self, seat: Seat) -> Live:
        """The seat's live channel, opened once and kept open while the scenario lives."""
        if seat.participant not in self._lives:
            self._lives[seat.participant] = Live(self.base_url, seat)
        return self._lives[seat.participant]

    def room_slugs(self) -> set[str]:
        """The rooms this scenario made (none when it never needed them)."""
        made = self._rooms
        return {made.consultation, made.knock, made.spare} if made else set()

    def close(self) -> None:
        """Hang up every live channel this scenario opened."""
        for live in self._lives.values():
            live.close()
        self._lives.clear()


class Scenarios:
    """One shared scenario for the cells that change nothing, fresh ones for the others."""

    def __init__(self, app: Flask, base_url: str) -> None:
        self.app = app
        self.base_url = base_url
        self._numbers = itertools.count(1)
        self._shared: Scenario | None = None
        self.retired_rooms: set[str] = set()  # whose channels may still be closing

    def shared(self) -> Scenario:
        """The scenario that refusals and reads use; made again after it was spoilt."""
        if self._shared is None:
            self._shared = self.fresh()
        return self._shared

    def fresh(self) -> Scenario:
        """A scenario of its own, for a cell that is allowed to change things."""
        return Scenario(self.app, self.base_url, next(self._numbers))

    def retire(self, scenario: Scenario) -> None:
        """Done with `scenario`: close its channels; it is never used again."""
        scenario.close()
        self.retired_rooms |= scenario.room_slugs()
        if scenario is self._shared:
            self._shared = None

    def spoil(self) -> None:
        """The shared scenario may have changed: the next cell gets a new one."""
        if self._shared is not None:
            self.retire(self._shared)

    def close(self) -> None:
        """Retire the shared scenario."""
        self.spoil()


@dataclass
class MatrixHub:
    """A started hub on its own broker and database, served over HTTP, with its scenarios
    and a reader of its whole database."""

    app: Flask
    server: LiveServer
    reader: DatabaseReader
    scenarios: Scenarios = field(init=False)

    def __post_init__(self) -> None:
        self.scenarios = Scenarios(self.app, self.server.url)

    def state(self) -> dict[str, Any]:
        """The whole database now (see DatabaseReader)."""
        return self.reader.state(self.scenarios.retired_rooms)

    @property
    def runtime(self) -> HubRuntime:
        """The hub's runtime."""
        return self.app.extensions["empfang"]


@contextmanager
def matrix_hub(workdir: Path, clock: ManualClock) -> Iterator[MatrixHub]:
    """A hub with the reception of tests.support.reception, for a whole test module."""
    with pytest.MonkeyPatch.context() as patch:
        light_password_hashing(patch)
        broker = Mosquitto(workdir)
        broker.start()
        try:
            settings = make_settings(workdir, broker.url)
            upgrade(settings.database_url)
            app = create_app(settings, clock=clock)
            try:
                runtime: HubRuntime = app.extensions["empfang"]
                assert runtime.bridge.wait_connected(10)
                setup_reception(runtime)
                server = LiveServer(app).start()
                hub = MatrixHub(app, server, DatabaseReader(runtime))
                try:
                    yield hub
                finally:
                    hub.scenarios.close()
                    hub.reader.close()
                    server.stop()
            finally:
                close_app(app)
        finally:
            broker.stop()
