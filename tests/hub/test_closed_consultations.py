"""Closed consultations: a call admitted from the reception, or moved into a private room,
takes only the people seated in it and the colleagues a host brings in. Nobody walks in
through the room's address, and documents are for seated participants only.

Every refusal names its reason (a stable code) and changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.errors import Conflict, Forbidden, NotFound
from hub.models import CallColleague, CallSession, Participant
from hub.runtime import HubRuntime
from hub.services.calls import Credentials
from tests.conftest import PASSWORD, Account, add_user, log_in
from tests.hub.test_calls_service import admitted, fresh, room, snapshot, ticket_call, user
from tests.support.calls import PDF, add_room
from tests.support.reception import join_queues, setup_reception


@pytest.fixture
def hub(runtime: HubRuntime) -> HubRuntime:
    """Erika and Max serve the Sozialamt; Otto works in the Bürgerbüro; Ada is an admin."""
    setup_reception(runtime)
    add_room(runtime, "beratung", "knock")
    add_room(runtime, "lounge", "open")
    for name in ("erika", "max"):
        add_user(runtime, name)
        join_queues(runtime, name, "sozialamt")
    add_user(runtime, "otto")
    join_queues(runtime, "otto", "buergerbuero")
    add_user(runtime, "ada", admin=True)
    return runtime


@pytest.fixture
def db(hub: HubRuntime) -> Iterator[Session]:
    with session_scope(hub.sessions) as session:
        yield session


def colleagues(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(CallColleague)) or 0


@pytest.mark.parametrize("walker", ["otto", "max", "ada"])
def test_nobody_walks_into_a_running_consultation(
    hub: HubRuntime, db: Session, walker: str
) -> None:
    call = ticket_call(hub, db)  # Erika serves Anna in sozialamt-1
    before = snapshot(db)
    with pytest.raises(Forbidden) as refused:
        hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, walker))
    assert refused.value.code == "call.closed"
    assert "closed" in refused.value.message
    db.rollback()
    with pytest.raises(Forbidden):  # nor by the ticket's own route
        hub.calls.join_ticket_as_host(db, call.ticket, user(db, walker))
    db.rollback()
    assert snapshot(db) == before


def test_guests_cannot_walk_into_a_consultation_in_an_open_room(
    hub: HubRuntime, db: Session
) -> None:
    ticket_call(hub, db, slug="lounge")  # even a room whose policy lets guests in freely
    before = snapshot(db)
    with pytest.raises(Forbidden) as refused:
        hub.calls.join_room(db, room(db, "lounge"), name="Neugierig")
    assert refused.value.code == "call.closed"
    db.rollback()
    assert snapshot(db) == before


def test_an_admitted_citizen_reserves_the_room_before_the_call_opens(
    hub: HubRuntime, db: Session
) -> None:
    ticket = admitted(hub, db, "erika", "Anna", "sozialamt-1")
    before = snapshot(db)
    with pytest.raises(Forbidden):
        hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, "otto"))
    db.rollback()
    assert snapshot(db) == before
    # The serving staff member entering by the room's address lands in the citizen's call.
    host = hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, "erika"))
    guest = hub.calls.join_ticket_as_guest(db, ticket)
    assert fresh(db, host).session_id == fresh(db, guest).session_id


def test_a_host_brings_in_a_colleague_who_then_may_enter(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    host = fresh(db, call.host)
    assert "otto" in {u.username for u in hub.calls.colleagues(db, host.session)}
    hub.calls.bring_in(db, host, "otto")
    db.expire_all()
    otto = user(db, "otto")
    assert [s.public_id for s in hub.calls.brought_in(db, otto)] == [host.session.public_id]
    assert "otto" not in {u.username for u in hub.calls.colleagues(db, host.session)}
    seat = hub.calls.join_room(db, room(db, "sozialamt-1"), user=otto)
    joined = fresh(db, seat)
    assert joined.session_id == host.session_id and joined.role == "host"
    assert hub.calls.brought_in(db, otto) == []  # seated: the notice is done
    # By the session's own address as well, after a lost connection.
    again = hub.calls.join_session(db, host.session.public_id, otto)
    assert fresh(db, again).session_id == host.session_id


def test_bring_in_refusals_change_nothing(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    host, guest = fresh(db, call.host), fresh(db, call.guest)
    cases: list[tuple[Participant, object, type[Exception], str | None]] = [
        (guest, "otto", Forbidden, None),  # citizens bring nobody
        (host, "niemand", NotFound, "call.colleague.unknown"),
        (host, ["otto"], NotFound, "call.colleague.unknown"),
        (host, "erika", Conflict, "call.colleague.already"),  # she sits in it
    ]
    before = (snapshot(db), colleagues(db))
    for actor, target, error, code in cases:
        with pytest.raises(error) as refused:
            hub.calls.bring_in(db, actor, target)
        if code:
            assert refused.value.code == code  # type: ignore[attr-defined]
        db.rollback()
    assert (snapshot(db), colleagues(db)) == before


def test_a_removed_colleague_cannot_come_back(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    hub.calls.bring_in(db, fresh(db, call.host), "otto")
    seat = hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, "otto"))
    hub.calls.remove(db, fresh(db, call.host), seat.participant.public_id)
    with pytest.raises(Forbidden):
        hub.calls.join_room(db, room(db, "sozialamt-1"), user=user(db, "otto"))


def test_private_rooms_keep_the_seated_staff_and_nobody_else(hub: HubRuntime, db: Session) -> None:
    erika = hub.calls.join_room(db, room(db, "beratung"), user=user(db, "erika"))
    hub.calls.join_room(db, room(db, "beratung"), user=user(db, "max"))
    hub.calls.move_private(db, fresh(db, erika), "lounge")
    # Max loses his connection and is reaped; he sat in it when it closed, so he returns.
    max_seat = db.scalar(
        select(Participant).where(
            Participant.user_id == user(db, "max").id, Participant.left_at.is_(None)
        )
    )
    assert max_seat is not None
    hub.calls.leave(db, max_seat)
    assert fresh(db, hub.calls.join_room(db, room(db, "lounge"), user=user(db, "max")))
    with pytest.raises(Forbidden):
        hub.calls.join_room(db, room(db, "lounge"), user=user(db, "otto"))


def test_documents_only_for_seated_participants(hub: HubRuntime, db: Session) -> None:
    host = hub.calls.join_room(db, room(db, "beratung"), user=user(db, "erika"))
    hub.calls.connected(db, fresh(db, host))
    document = hub.calls.upload(db, fresh(db, host), "bescheid.pdf", io.BytesIO(PDF))
    knocker: Credentials = hub.calls.join_room(db, room(db, "beratung"), name="Klopfer")
    assert not fresh(db, knocker).admitted
    with pytest.raises(Forbidden):
        hub.calls.document(db, fresh(db, knocker), document.public_id)
    with pytest.raises(Forbidden):
        hub.calls.upload(db, fresh(db, knocker), "x.pdf", io.BytesIO(PDF))
    hub.calls.admit(db, fresh(db, host), knocker.participant.public_id)
    found, path = hub.calls.document(db, fresh(db, knocker), document.public_id)
    assert found.public_id == document.public_id and path.is_file()


def test_an_ended_call_forgets_its_colleagues(hub: HubRuntime, db: Session) -> None:
    call = ticket_call(hub, db)
    hub.calls.bring_in(db, fresh(db, call.host), "otto")
    session = db.get(CallSession, fresh(db, call.host).session_id)
    assert session is not None
    hub.calls.end(db, session)
    assert colleagues(db) == 0
    assert hub.calls.brought_in(db, user(db, "otto")) == []


def test_the_walk_in_page_names_the_reason(hub: HubRuntime, db: Session, app: Flask) -> None:
    ticket_call(hub, db)
    before = snapshot(db)
    client = app.test_client()
    token = log_in(client, Account("otto", PASSWORD))
    answer = client.post("/r/sozialamt-1", data={"csrf_token": token})
    assert answer.status_code == 403
    assert "geschütztes Gespräch" in answer.get_data(as_text=True)
    assert snapshot(db) == before
