"""CallService on its own: who may join which call, host-only actions, presence and the
reaper, invitations, chat limits, document checks on disk, and what an ending erases.

Every refusal is a ServiceError with the status the routes pass on, and leaves the
database and the documents folder exactly as they were.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError
from hub.models import (
    CallSession,
    ChatMessage,
    Document,
    Invite,
    Participant,
    Room,
    Ticket,
    User,
)
from hub.runtime import HubRuntime
from hub.services.calls import (
    MAX_CHAT,
    MAX_DOCUMENT,
    MAX_PARTICIPANTS,
    Credentials,
    TooLarge,
    TurnSettings,
)
from tests.conftest import add_user
from tests.support.calls import (
    JPEG,
    PDF,
    PNG,
    SAMPLES,
    add_room,
    documents_root,
    files_under,
)
from tests.support.clock import ManualClock
from tests.support.reception import join_queues, setup_reception


@pytest.fixture
def hub(runtime: HubRuntime) -> HubRuntime:
    """A reception, three permanent rooms (open, knock, private) and three staff members."""
    setup_reception(runtime)
    add_room(runtime, "lounge", "open")
    add_room(runtime, "beratung", "knock")
    add_room(runtime, "intern", "private")
    for name in ("erika", "max", "jana"):
        add_user(runtime, name)
        join_queues(runtime, name, "sozialamt")
    return runtime


@pytest.fixture
def db(hub: HubRuntime) -> Iterator[Session]:
    """One database session for the test's service calls."""
    with session_scope(hub.sessions) as session:
        yield session


_rate_keys = itertools.count(1)


def user(db: Session, username: str) -> User:
    found = db.scalar(select(User).where(User.username == username))
    assert found is not None
    return found


def room(db: Session, slug: str) -> Room:
    found = db.scalar(select(Room).where(Room.slug == slug))
    assert found is not None
    return found


def admitted(runtime: HubRuntime, db: Session, staff: str, name: str, slug: str) -> Ticket:
    """A citizen's ticket, admitted by `staff` into room `slug`."""
    new = runtime.reception.create(
        db,
        name=name,
        category="wohngeld",
        description="",
        consent=True,
        language="de",
        source="web",
        rate_key=f"svc-{next(_rate_keys)}",
    )
    return runtime.reception.admit(db, new.ticket.public_id, user(db, staff), slug)


@dataclass
class Call:
    """A ticket's call with its host (Erika) and guest (the citizen)."""

    ticket: Ticket
    host: Credentials
    guest: Credentials


def ticket_call(
    runtime: HubRuntime,
    db: Session,
    name: str = "Anna",
    slug: str = "sozialamt-1",
    staff: str = "erika",
) -> Call:
    ticket = admitted(runtime, db, staff, name, slug)
    host = runtime.calls.join_ticket_as_host(db, ticket, user(db, staff))
    guest = runtime.calls.join_ticket_as_guest(db, ticket)
    return Call(ticket, host, guest)


def fresh(db: Session, creds: Credentials) -> Participant:
    """The participant as the database holds it now."""
    db.expire_all()
    found = db.scalar(select(Participant).where(Participant.id == creds.participant.id))
    assert found is not None
    return found


def snapshot(db: Session) -> dict[str, Any]:
    """Everything a call action could change."""
    db.expire_all()
    return {
        "participants": sorted(
            (p.public_id, p.admitted, p.left_at, p.session_id)
            for p in db.scalars(select(Participant))
        ),
        "sessions": sorted(
            (s.public_id, s.room_id, s.private, s.ended_at) for s in db.scalars(select(CallSession))
        ),
        "rooms": sorted((r.slug, r.dnd, r.state, r.occupants) for r in db.scalars(select(Room))),
        "invites": sorted((i.id, i.revoked) for i in db.scalars(select(Invite))),
        "chat": db.scalar(select(func.count()).select_from(ChatMessage)),
        "documents": db.scalar(select(func.count()).select_from(Document)),
    }


def count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


# ---- joining -----------------------------------------------------------------------------------
def test_host_and_citizen_join_one_session(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    host, guest = fresh(db, call.host), fresh(db, call.guest)
    assert host.session_id == guest.session_id
    assert (host.role, guest.role) == ("host", "guest")
    assert host.admitted and guest.admitted
    assert guest.display_name == "Anna" and host.display_name == "Erika"
    session = host.session
    assert session.ticket_id == call.ticket.id and session.room.slug == "sozialamt-1"
    assert not session.private
    # Both keys work, each only for its own seat.
    assert hub.calls.authenticate(db, host.public_id, call.host.key).id == host.id
    assert hub.calls.authenticate(db, guest.public_id, call.guest.key).id == guest.id
    with pytest.raises(Forbidden):
        hub.calls.authenticate(db, guest.public_id, call.host.key)


def test_only_admitted_citizens_and_their_staff_member_join(hub: HubRuntime, db: Session) -> None:
    waiting = hub.reception.create(
        db,
        name="Ben",
        category="wohngeld",
        description="",
        consent=True,
        language="de",
        source="web",
        rate_key="svc-ben",
    ).ticket
    with pytest.raises(Conflict):
        hub.calls.join_ticket_as_guest(db, waiting)
    with pytest.raises(Conflict):
        hub.calls.join_ticket_as_host(db, waiting, user(db, "erika"))
    ticket = admitted(hub, db, "erika", "Anna", "sozialamt-1")
    before = snapshot(db)
    with pytest.raises(Forbidden):  # Max does not serve Anna
        hub.calls.join_ticket_as_host(db, ticket, user(db, "max"))
    db.rollback()
    assert snapshot(db) == before


def test_citizen_rejoining_replaces_the_old_seat(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    again = hub.calls.join_ticket_as_guest(db, call.ticket)
    with pytest.raises(Forbidden):
        hub.calls.authenticate(db, call.guest.participant.public_id, call.guest.key)
    session = fresh(db, again).session
    present = [p for p in session.participants if p.left_at is None]
    assert sorted(p.role for p in present) == ["guest", "host"]
    for _ in range(MAX_PARTICIPANTS + 1):  # reloads never fill the call
        again = hub.calls.join_ticket_as_guest(db, call.ticket)
    assert hub.calls.authenticate(db, again.participant.public_id, again.key)


@pytest.mark.parametrize("how", ["ticket", "room"])
def test_staff_reentering_does_not_take_more_seats(hub: HubRuntime, db: Session, how: str) -> None:
    """A staff member who opens the call again (a second click, a reload of /r/<slug>)
    is still one person: the earlier seat goes, as a citizen's does, and the call keeps
    room for the others."""
    erika = user(db, "erika")
    if how == "ticket":
        call = ticket_call(hub, db)
        seats = [call.host] + [
            hub.calls.join_ticket_as_host(db, call.ticket, erika) for _ in range(MAX_PARTICIPANTS)
        ]
        hub.calls.join_ticket_as_guest(db, call.ticket)  # the citizen reloads: still room
    else:
        lounge = room(db, "lounge")
        seats = [hub.calls.join_room(db, lounge, user=erika) for _ in range(MAX_PARTICIPANTS + 1)]
        hub.calls.join_room(db, lounge, name="Gast")  # a visitor still fits in
    session = fresh(db, seats[-1]).session
    hosts = [p for p in session.participants if p.role == "host" and p.left_at is None]
    assert [p.public_id for p in hosts] == [seats[-1].participant.public_id]


# ---- permanent rooms and their policies --------------------------------------------------------
@pytest.mark.parametrize(
    ("slug", "error", "admitted_as"),
    [
        ("lounge", None, True),  # open: straight in
        ("beratung", Conflict, None),  # knock, but nobody is inside to open the door
        ("intern", Forbidden, None),  # private: staff only
    ],
)
def test_guest_entering_an_empty_room(
    hub: HubRuntime,
    db: Session,
    slug: str,
    error: type[ServiceError] | None,
    admitted_as: bool | None,
) -> None:
    target = room(db, slug)
    if error is None:
        creds = hub.calls.join_room(db, target, name="Gast")
        assert fresh(db, creds).admitted is admitted_as
        assert fresh(db, creds).role == "guest"
        return
    before = snapshot(db)
    with pytest.raises(error) as raised:
        hub.calls.join_room(db, target, name="Gast")
    assert raised.value.status == (409 if error is Conflict else 403)
    db.rollback()
    assert snapshot(db) == before


def test_staff_walk_into_every_room(hub: HubRuntime, db: Session) -> None:
    for slug in ("lounge", "beratung", "intern"):
        creds = hub.calls.join_room(db, room(db, slug), user=user(db, "erika"))
        assert fresh(db, creds).role == "host" and fresh(db, creds).admitted


def test_knock_waits_for_a_connected_host(hub: HubRuntime, db: Session) -> None:
    beratung = room(db, "beratung")
    host = hub.calls.join_room(db, beratung, user=user(db, "erika"))
    with pytest.raises(Conflict):  # joined, but the page never connected: nobody is there
        hub.calls.join_room(db, beratung, name="Gast")
    db.rollback()
    hub.calls.connected(db, fresh(db, host))
    knocker = hub.calls.join_room(db, beratung, name="Gast")
    assert fresh(db, knocker).admitted is False
    session = fresh(db, host).session
    assert [p.public_id for p in hub.calls.knocking(session)] == [knocker.participant.public_id]
    with pytest.raises(Forbidden):  # knocking is not being inside
        hub.calls.chat(db, fresh(db, knocker), "Hallo?")
    db.rollback()
    hub.calls.admit(db, fresh(db, host), knocker.participant.public_id)
    assert fresh(db, knocker).admitted is True
    assert hub.calls.knocking(fresh(db, host).session) == []


def test_dnd_keeps_guests_out(hub: HubRuntime, db: Session) -> None:
    lounge = room(db, "lounge")
    host = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    hub.calls.connected(db, fresh(db, host))
    hub.calls.set_dnd(db, fresh(db, host), True)
    db.expire_all()
    assert room(db, "lounge").dnd and room(db, "lounge").state == "dnd"
    before = snapshot(db)
    with pytest.raises(Conflict):
        hub.calls.join_room(db, room(db, "lounge"), name="Gast")
    db.rollback()
    assert snapshot(db) == before
    hub.calls.set_dnd(db, fresh(db, host), False)
    assert fresh(db, hub.calls.join_room(db, room(db, "lounge"), name="Gast")).admitted


# ---- host-only actions -------------------------------------------------------------------------
HOST_ONLY: dict[str, Callable[[HubRuntime, Session, Participant, dict[str, str]], Any]] = {
    "admit": lambda hub, db, me, ids: hub.calls.admit(db, me, ids["knocker"]),
    "remove": lambda hub, db, me, ids: hub.calls.remove(db, me, ids["host"]),
    "move": lambda hub, db, me, ids: hub.calls.move_private(db, me, "intern"),
    "dnd": lambda hub, db, me, ids: hub.calls.set_dnd(db, me, True),
    "invite": lambda hub, db, me, ids: hub.calls.invite(db, me, "Anwalt"),
}


@pytest.mark.parametrize("role", ["guest", "external"])
@pytest.mark.parametrize("action", sorted(HOST_ONLY))
def test_host_only_actions_are_refused(
    hub: HubRuntime, db: Session, action: str, role: str
) -> None:
    beratung = room(db, "beratung")
    host = hub.calls.join_room(db, beratung, user=user(db, "erika"))
    hub.calls.connected(db, fresh(db, host))
    guest = hub.calls.join_room(db, beratung, name="Gast")
    hub.calls.admit(db, fresh(db, host), guest.participant.public_id)
    knocker = hub.calls.join_room(db, beratung, name="Klopfer")
    actor = guest
    if role == "external":
        _invite, token = hub.calls.invite(db, fresh(db, host), "Dolmetscherin")
        actor = hub.calls.join_invite(db, token, "Frau Dolmetsch")
    assert fresh(db, actor).role == role
    ids = {"knocker": knocker.participant.public_id, "host": host.participant.public_id}
    before = snapshot(db)
    with pytest.raises(Forbidden) as raised:
        HOST_ONLY[action](hub, db, fresh(db, actor), ids)
    assert raised.value.status == 403 and raised.value.field == "role"
    db.rollback()
    assert snapshot(db) == before


def test_host_actions_reach_only_their_own_call(hub: HubRuntime, db: Session) -> None:
    first = ticket_call(hub, db)
    second = ticket_call(hub, db, name="Ben", slug="sozialamt-2", staff="max")
    before = snapshot(db)
    for act in (hub.calls.admit, hub.calls.remove):
        with pytest.raises(NotFound):
            act(db, fresh(db, first.host), second.guest.participant.public_id)
        db.rollback()
    assert snapshot(db) == before
    with pytest.raises(ValidationError):
        hub.calls.remove(db, fresh(db, first.host), first.host.participant.public_id)
    db.rollback()
    hub.calls.remove(db, fresh(db, first.host), first.guest.participant.public_id)
    with pytest.raises(Forbidden):  # removed: the key no longer opens anything
        hub.calls.authenticate(db, first.guest.participant.public_id, first.guest.key)


# ---- private rooms -----------------------------------------------------------------------------
def test_move_to_private_room_locks_everybody_else_out(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    hub.calls.connected(db, fresh(db, call.host))
    hub.calls.connected(db, fresh(db, call.guest))
    session = hub.calls.move_private(db, fresh(db, call.host), "intern")
    db.expire_all()
    assert session.private and session.room.slug == "intern"
    assert db.get(Ticket, call.ticket.id).room.slug == "intern"
    assert room(db, "sozialamt-1").state == "free" and room(db, "sozialamt-1").occupants == 0
    assert room(db, "intern").state == "busy" and room(db, "intern").occupants == 2
    before = snapshot(db)
    with pytest.raises(Forbidden):
        hub.calls.join_room(db, room(db, "intern"), user=user(db, "max"))
    db.rollback()
    with pytest.raises(Forbidden):
        hub.calls.join_room(db, room(db, "intern"), name="Neugierig")
    db.rollback()
    assert snapshot(db) == before
    # The old room is an ordinary room again.
    assert fresh(db, hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, "max")))


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("empfang", Conflict),  # the reception is no place for a conversation
        ("gibt-es-nicht", ValidationError),
        ("Intern!", ValidationError),
        ("lounge", Conflict),  # another call is going on there
        ("sozialamt-2", Conflict),  # a colleague serves a citizen there (call not opened yet)
    ],
)
def test_move_refuses_rooms_that_cannot_take_the_conversation(
    hub: HubRuntime, db: Session, target: str, error: type[ServiceError]
) -> None:
    call = ticket_call(hub, db)
    meeting = hub.calls.join_room(db, room(db, "lounge"), user=user(db, "jana"))
    hub.calls.connected(db, fresh(db, meeting))
    admitted(hub, db, "max", "Ben", "sozialamt-2")
    before = snapshot(db)
    with pytest.raises(error):
        hub.calls.move_private(db, fresh(db, call.host), target)
    db.rollback()
    assert snapshot(db) == before


# ---- a call holds at most four -----------------------------------------------------------------
@pytest.mark.parametrize("fifth", ["room guest", "external", "staff"])
def test_a_call_holds_at_most_four(hub: HubRuntime, db: Session, fifth: str) -> None:
    lounge = room(db, "lounge")
    host = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    hub.calls.join_room(db, lounge, user=user(db, "max"))
    hub.calls.join_room(db, lounge, name="Gast 1")
    hub.calls.join_room(db, lounge, name="Gast 2")
    _invite, token = hub.calls.invite(db, fresh(db, host), "Dolmetscherin")
    before = snapshot(db)
    join: dict[str, Callable[[], Credentials]] = {
        "room guest": lambda: hub.calls.join_room(db, room(db, "lounge"), name="Gast 3"),
        "external": lambda: hub.calls.join_invite(db, token, "Herr Anwalt"),
        "staff": lambda: hub.calls.join_room(db, room(db, "lounge"), user=user(db, "jana")),
    }
    with pytest.raises(Conflict) as raised:
        join[fifth]()
    assert raised.value.status == 409
    db.rollback()
    assert snapshot(db) == before


# ---- presence ----------------------------------------------------------------------------------
def test_only_connected_participants_occupy_a_room(hub: HubRuntime, db: Session) -> None:
    lounge = room(db, "lounge")
    erika = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    db.expire_all()
    assert room(db, "lounge").state == "free"  # a seat nobody took up yet
    hub.calls.connected(db, fresh(db, erika))
    db.expire_all()
    assert room(db, "lounge").state == "busy" and room(db, "lounge").occupants == 1
    guest = hub.calls.join_room(db, room(db, "lounge"), name="Gast")
    guest_channel = hub.calls.connected(db, fresh(db, guest))
    db.expire_all()
    assert room(db, "lounge").occupants == 2
    hub.calls.disconnected(db, fresh(db, erika), fresh(db, erika).channel)
    hub.calls.disconnected(db, fresh(db, guest), guest_channel)
    db.expire_all()
    assert room(db, "lounge").state == "free" and room(db, "lounge").occupants == 0
    # Disconnected is not gone: a reload within 15 s keeps the seat.
    assert fresh(db, erika).left_at is None
    hub.calls.connected(db, fresh(db, erika))
    db.expire_all()
    assert room(db, "lounge").state == "busy"


def test_reaper_drops_silent_participants_after_15_seconds(
    hub: HubRuntime, db: Session, clock: ManualClock
) -> None:
    lounge = room(db, "lounge")
    erika = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    silent = hub.calls.join_room(db, lounge, name="Gast")
    for creds in (erika, silent):
        hub.calls.connected(db, fresh(db, creds))
    clock.advance(seconds=10)
    hub.calls.heartbeat(db, fresh(db, erika))
    clock.advance(seconds=4)
    hub.reap()
    assert fresh(db, silent).left_at is None  # 14 s of silence are allowed
    clock.advance(seconds=2)
    hub.reap()
    assert fresh(db, silent).left_at is not None and not fresh(db, silent).connected
    assert fresh(db, erika).left_at is None
    db.expire_all()
    assert room(db, "lounge").occupants == 1
    clock.advance(seconds=16)
    hub.reap()
    # The last one out of a staff room closes it.
    assert fresh(db, erika).session.ended_at is not None
    db.expire_all()
    assert room(db, "lounge").state == "free"


def test_leaving_the_staff_room_last_ends_its_session(hub: HubRuntime, db: Session) -> None:
    lounge = room(db, "lounge")
    erika = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    guest = hub.calls.join_room(db, lounge, name="Gast")
    hub.calls.leave(db, fresh(db, erika))
    assert fresh(db, guest).session.ended_at is None
    hub.calls.leave(db, fresh(db, guest))
    assert fresh(db, guest).session.ended_at is not None
    # The next visitor opens a new session.
    later = hub.calls.join_room(db, room(db, "lounge"), user=user(db, "max"))
    assert fresh(db, later).session_id != fresh(db, guest).session_id


# ---- invitations -------------------------------------------------------------------------------
def test_invitation_lets_an_external_join_until_it_expires(
    hub: HubRuntime, db: Session, clock: ManualClock
) -> None:
    call = ticket_call(hub, db)
    invite, token = hub.calls.invite(db, fresh(db, call.host), "Dolmetscherin")
    assert invite.label == "Dolmetscherin"
    assert invite.token_hash != token and token not in invite.token_hash  # stored hashed
    external = hub.calls.join_invite(db, token, "Frau Dolmetsch")
    participant = fresh(db, external)
    assert participant.role == "external" and participant.admitted
    assert participant.session_id == fresh(db, call.host).session_id
    clock.advance(hours=3, minutes=59)
    assert hub.calls.invite_by_token(db, token).id == invite.id
    clock.advance(minutes=2)
    with pytest.raises(Forbidden, match="expired"):
        hub.calls.invite_by_token(db, token)
    with pytest.raises(Forbidden):
        hub.calls.join_invite(db, token, "Zu spät")


def test_revoked_and_guessed_invitations_are_refused(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    other = ticket_call(hub, db, name="Ben", slug="sozialamt-2", staff="max")
    invite, token = hub.calls.invite(db, fresh(db, call.host), "Anwalt")
    with pytest.raises(NotFound):  # another call's host cannot touch it
        hub.calls.revoke(db, fresh(db, other.host), invite.id)
    db.rollback()
    with pytest.raises(Forbidden):  # nor can the citizen
        hub.calls.revoke(db, fresh(db, call.guest), invite.id)
    db.rollback()
    assert hub.calls.invite_by_token(db, token)
    hub.calls.revoke(db, fresh(db, call.host), invite.id)
    before = snapshot(db)
    with pytest.raises(Forbidden, match="withdrawn"):
        hub.calls.join_invite(db, token, "Herr Anwalt")
    db.rollback()
    for guess in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 32, "", "kurz", None):
        with pytest.raises(NotFound):
            hub.calls.join_invite(db, guess, "Rater")
        db.rollback()
    assert snapshot(db) == before


def test_invitation_dies_with_its_call(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    _invite, token = hub.calls.invite(db, fresh(db, call.host), "Anwalt")
    hub.reception.end(db, call.ticket.public_id, user(db, "erika"), "resolved")
    with pytest.raises(ServiceError) as raised:
        hub.calls.join_invite(db, token, "Herr Anwalt")
    assert raised.value.status in (403, 404)


# ---- chat --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("Guten Tag!", True),
        ("x" * MAX_CHAT, True),
        ("Zeile 1\nZeile 2\tmit Tab", True),
        ("x" * (MAX_CHAT + 1), False),
        ("", False),
        ("   ", False),
        ("Klingel\x07", False),
        (None, False),
        (42, False),
    ],
)
def test_chat_lines(hub: HubRuntime, db: Session, text: object, ok: bool) -> None:
    call = ticket_call(hub, db)
    if ok:
        message = hub.calls.chat(db, fresh(db, call.guest), text)
        assert message.author == "Anna" and message.text == str(text).strip()
        assert count(db, ChatMessage) == 1
        return
    with pytest.raises(ValidationError):
        hub.calls.chat(db, fresh(db, call.guest), text)
    db.rollback()
    assert count(db, ChatMessage) == 0


# ---- documents ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_upload_is_typed_by_content(hub: HubRuntime, db: Session, kind: str) -> None:
    body, mime = SAMPLES[kind]
    call = ticket_call(hub, db)
    # The name says PDF for every kind: the content decides.
    document = hub.calls.upload(db, fresh(db, call.guest), "Bescheid.pdf", io.BytesIO(body))
    assert document.mime == mime and document.size == len(body)
    expected_ext = {"pdf": ".pdf", "png": ".png", "jpeg": ".jpg"}[kind]
    assert document.filename == "Bescheid" + expected_ext
    found, path = hub.calls.document(db, fresh(db, call.host), document.public_id)
    assert found.id == document.id
    session = fresh(db, call.host).session.public_id
    assert path == documents_root(hub) / session / document.public_id
    assert path.read_bytes() == body


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "x.pdf"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64, "setup.pdf"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "bild.png"),
        (b"PK\x03\x04" + b"\x00" * 40, "bild.jpg"),
        (b" %PDF-1.4\n", "fast.pdf"),  # one byte in front: not a PDF header
        (b"", "leer.pdf"),
    ],
    ids=["html", "exe", "gif", "zip", "late-pdf-magic", "empty"],
)
def test_disguised_uploads_are_refused_and_nothing_is_stored(
    hub: HubRuntime, db: Session, body: bytes, name: str
) -> None:
    call = ticket_call(hub, db)
    with pytest.raises(ValidationError) as raised:
        hub.calls.upload(db, fresh(db, call.guest), name, io.BytesIO(body))
    assert raised.value.status == 400
    db.rollback()
    assert count(db, Document) == 0
    assert files_under(documents_root(hub)) == []


@pytest.mark.parametrize(
    ("size", "ok"), [(MAX_DOCUMENT, True), (MAX_DOCUMENT + 1, False), (MAX_DOCUMENT * 2, False)]
)
def test_upload_size_limit(hub: HubRuntime, db: Session, size: int, ok: bool) -> None:
    call = ticket_call(hub, db)
    body = PDF + b"\0" * (size - len(PDF))
    if ok:
        document = hub.calls.upload(db, fresh(db, call.guest), "gross.pdf", io.BytesIO(body))
        assert document.size == size
        assert [p.stat().st_size for p in files_under(documents_root(hub))] == [size]
        return
    with pytest.raises(TooLarge) as raised:
        hub.calls.upload(db, fresh(db, call.guest), "zu-gross.pdf", io.BytesIO(body))
    assert raised.value.status == 413
    db.rollback()
    assert count(db, Document) == 0
    assert files_under(documents_root(hub)) == []


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("../../etc/passwd.pdf", PDF),
        ("a/b\\c.png", PNG),
        ("..\\..\\windows\\win.ini.jpg", JPEG),
        ("/absolut/pfad.pdf", PDF),
        ("..", PDF),
        ("....//....//x.png", PNG),
    ],
    ids=["dotdot-slash", "slash-backslash", "dotdot-backslash", "absolute", "dotdot", "dots"],
)
def test_path_tricks_in_file_names_stay_harmless(
    hub: HubRuntime, db: Session, name: str, body: bytes
) -> None:
    call = ticket_call(hub, db)
    everything = hub.settings.instance_path.parent  # the test's whole tmp directory
    before = set(files_under(everything))
    document = hub.calls.upload(db, fresh(db, call.guest), name, io.BytesIO(body))
    session = fresh(db, call.guest).session.public_id
    # On disk the file is named by its generated id, inside the session's folder only.
    stored = documents_root(hub) / session / document.public_id
    assert set(files_under(everything)) - before == {stored}
    assert stored.read_bytes() == body
    assert document.public_id.startswith("d-")
    assert "/" not in document.filename and "\\" not in document.filename, document.filename
    assert document.filename not in (".", "..")
    assert document.filename.endswith({PDF: ".pdf", PNG: ".png", JPEG: ".jpg"}[body])


def test_documents_belong_to_their_session(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    other = ticket_call(hub, db, name="Ben", slug="sozialamt-2", staff="max")
    document = hub.calls.upload(db, fresh(db, call.guest), "a.pdf", io.BytesIO(PDF))
    for outsider in (other.host, other.guest):
        with pytest.raises(NotFound):
            hub.calls.document(db, fresh(db, outsider), document.public_id)


def test_knocking_guest_cannot_share_documents(hub: HubRuntime, db: Session) -> None:
    beratung = room(db, "beratung")
    host = hub.calls.join_room(db, beratung, user=user(db, "erika"))
    hub.calls.connected(db, fresh(db, host))
    knocker = hub.calls.join_room(db, beratung, name="Klopfer")
    with pytest.raises(Forbidden):
        hub.calls.upload(db, fresh(db, knocker), "a.pdf", io.BytesIO(PDF))
    db.rollback()
    assert count(db, Document) == 0 and files_under(documents_root(hub)) == []


# ---- the end erases chat and documents ---------------------------------------------------------
@pytest.mark.parametrize("how", ["end", "return", "forward"])
def test_ticket_leaving_service_erases_the_call(hub: HubRuntime, db: Session, how: str) -> None:
    call = ticket_call(hub, db)
    erika, ticket = user(db, "erika"), call.ticket.public_id
    ends: dict[str, Callable[[], object]] = {
        "end": lambda: hub.reception.end(db, ticket, erika, "resolved"),
        "return": lambda: hub.reception.return_to_lobby(db, ticket, erika),
        "forward": lambda: hub.reception.forward(db, ticket, erika, department="buergerbuero"),
    }
    _erases_on(hub, db, call.host, call.guest, ends[how])


@pytest.mark.parametrize("how", ["leave", "reaper"])
def test_staff_room_emptying_erases_the_call(
    hub: HubRuntime, db: Session, clock: ManualClock, how: str
) -> None:
    lounge = room(db, "lounge")
    host = hub.calls.join_room(db, lounge, user=user(db, "erika"))
    guest = hub.calls.join_room(db, lounge, name="Gast")

    def everyone_leaves() -> None:
        for creds in (host, guest):
            hub.calls.leave(db, fresh(db, creds))

    def connections_die() -> None:
        clock.advance(seconds=16)
        hub.reap()

    _erases_on(hub, db, host, guest, everyone_leaves if how == "leave" else connections_die)


def _erases_on(
    hub: HubRuntime,
    db: Session,
    host: Credentials,
    guest: Credentials,
    end: Callable[[], object],
) -> None:
    for creds in (host, guest):
        hub.calls.connected(db, fresh(db, creds))
    hub.calls.chat(db, fresh(db, guest), "Hier ist der Bescheid")
    for name, body in (("a.pdf", PDF), ("b.png", PNG)):
        hub.calls.upload(db, fresh(db, guest), name, io.BytesIO(body))
    hub.calls.invite(db, fresh(db, host), "Anwalt")
    session = fresh(db, host).session
    folder = documents_root(hub) / session.public_id
    assert len(files_under(folder)) == 2
    slug = session.room.slug
    db.expire_all()
    assert room(db, slug).state == "busy"
    end()
    db.expire_all()
    ended = db.get(CallSession, session.id)
    assert ended is not None and ended.ended_at is not None
    for model in (ChatMessage, Document, Invite):
        left = db.scalar(
            select(func.count()).select_from(model).where(model.session_id == session.id)
        )
        assert left == 0, model.__name__
    assert not folder.exists()
    assert files_under(documents_root(hub)) == []
    assert all(p.left_at is not None and not p.connected for p in ended.participants)
    assert room(db, slug).state == "free" and room(db, slug).occupants == 0
    for creds in (host, guest):
        with pytest.raises(Forbidden):
            hub.calls.authenticate(db, creds.participant.public_id, creds.key)


def test_retention_purge_leaves_no_citizen_name_in_calls(
    hub: HubRuntime, db: Session, clock: ManualClock
) -> None:
    """DESIGN section 4: after the retention period the ticket keeps only what statistics
    need. The call's participant rows must not keep the citizen's name either."""
    call = ticket_call(hub, db, name="Anna Geheim")
    hub.reception.end(db, call.ticket.public_id, user(db, "erika"), "resolved")
    clock.advance(hours=25)
    assert hub.purge() == 1
    db.expire_all()
    names = list(db.scalars(select(Participant.display_name)))
    assert "Anna Geheim" not in names, names


# ---- TURN credentials --------------------------------------------------------------------------
def test_turn_credentials_follow_coturns_rest_scheme() -> None:
    turn = TurnSettings(
        stun=("stun:stun.example:3478",), turn=("turn:turn.example:3478",), secret="geheim"
    )
    servers = turn.ice_servers("p-abc", now=1_000_000.0)
    assert servers[0] == {"urls": ["stun:stun.example:3478"]}
    relay = servers[1]
    assert relay["username"] == f"{1_000_000 + turn.ttl}:p-abc"
    digest = hmac.new(b"geheim", relay["username"].encode(), hashlib.sha1).digest()
    assert relay["credential"] == base64.b64encode(digest).decode()
    assert TurnSettings(stun=(), turn=("turn:x",), secret="").ice_servers("p-abc") == []
