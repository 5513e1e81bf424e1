"""Calls through the hub's routes and live channel: admission, who may enter which room,
host-only messages, signalling between sessions, room occupancy over real MQTT, invitations,
chat, documents on disk, and what the end of a conversation erases.

Bad input (issue 4): every refusal is a clear error, and nothing changes.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.http import parse_options_header

from hub.db import session_scope
from hub.models import CallSession, ChatMessage, Document, Invite, Participant, Room
from hub.runtime import HubRuntime
from hub.services.calls import MAX_CHAT, MAX_DOCUMENT
from tests.support.calls import (
    JPEG,
    PDF,
    PNG,
    SAMPLES,
    Citizen,
    Live,
    Seat,
    Staff,
    add_room,
    csrf_of,
    documents_root,
    enter_room_as_guest,
    enter_room_as_staff,
    files_under,
    invite_token,
    join_by_invite,
    new_browser,
    participant_row,
    refused_live,
    register,
    seat_from,
    seen_status,
    staff_login,
    status_watcher,
    wait_status,
)
from tests.support.clock import ManualClock
from tests.support.hubserver import LiveServer
from tests.support.mosquitto import Mosquitto
from tests.support.reception import setup_reception

MB = 1024 * 1024


@pytest.fixture
def hub(runtime: HubRuntime) -> HubRuntime:
    """A reception and three permanent rooms: open, knock and private."""
    setup_reception(runtime)
    add_room(runtime, "lounge", "open")
    add_room(runtime, "beratung", "knock")
    add_room(runtime, "intern", "private")
    return runtime


@pytest.fixture
def erika(app: Flask, hub: HubRuntime) -> Staff:
    """A staff member of the Sozialamt."""
    return staff_login(app, hub, "erika", "sozialamt")


@pytest.fixture
def max_(app: Flask, hub: HubRuntime) -> Staff:
    """A colleague of Erika's."""
    return staff_login(app, hub, "max", "sozialamt")


@pytest.fixture
def server(app: Flask) -> Iterator[LiveServer]:
    """The hub over real HTTP, for the WebSocket live channels."""
    served = LiveServer(app).start()
    try:
        yield served
    finally:
        served.stop()


@dataclass
class Admission:
    """An admitted citizen and the staff member serving them, both inside the call."""

    staff: Staff
    citizen: Citizen
    guest: Seat
    host: Seat


def admit_and_join(app: Flask, staff: Staff, name: str, room: str) -> Admission:
    """Admit a new citizen through the queue API; both sides then open the call."""
    citizen = register(app, name)
    admitted = staff.act(citizen.ticket, "admit", room=room)
    assert admitted.status_code == 200, admitted.get_json()
    guest = seat_from(citizen.client, citizen.client.get(f"/empfang/t/{citizen.token}/call"))
    host = seat_from(staff.client, staff.open_call(citizen.ticket))
    return Admission(staff, citizen, guest, host)


@pytest.fixture
def anna(app: Flask, erika: Staff) -> Admission:
    """Erika serves Anna in sozialamt-1."""
    return admit_and_join(app, erika, "Anna", "sozialamt-1")


@pytest.fixture
def ben(app: Flask, max_: Staff, anna: Admission) -> Admission:
    """Max serves Ben in sozialamt-2: another conversation going on at the same time."""
    return admit_and_join(app, max_, "Ben", "sozialamt-2")


def rows(runtime: HubRuntime) -> dict[str, Any]:
    """Call state that a refused request must leave exactly as it was."""
    with session_scope(runtime.sessions) as db:
        return {
            "participants": sorted(
                (p.public_id, p.role, p.admitted, p.left_at is None, p.session_id)
                for p in db.scalars(select(Participant))
            ),
            "sessions": sorted(
                (s.public_id, s.room_id, s.private, s.ended_at is None)
                for s in db.scalars(select(CallSession))
            ),
            "dnd": sorted(db.scalars(select(Room.slug).where(Room.dnd.is_(True)))),
            "chat": db.scalar(select(func.count()).select_from(ChatMessage)),
            "documents": db.scalar(select(func.count()).select_from(Document)),
            "invites": sorted((i.id, i.revoked) for i in db.scalars(select(Invite))),
        }


def room_state(runtime: HubRuntime, slug: str) -> str:
    """The room's derived state as last published."""
    with session_scope(runtime.sessions) as db:
        return runtime.rooms.get(db, slug).state


def new_guest(app: Flask, slug: str, name: str) -> Seat:
    """A visitor enters a permanent room in a browser of their own."""
    client = new_browser(app)
    return seat_from(client, enter_room_as_guest(client, slug, name))


def ids(state: dict[str, Any], key: str = "participants") -> set[str]:
    """Participant ids listed in a call state."""
    return {p["id"] for p in state[key]}


# ---- admission ---------------------------------------------------------------------------------
def test_admission_opens_the_call_for_citizen_and_staff(
    app: Flask, hub: HubRuntime, erika: Staff, max_: Staff
) -> None:
    citizen = register(app, "Anna")
    early = citizen.client.get(f"/empfang/t/{citizen.token}/call")
    assert early.status_code == 409  # not admitted yet
    assert erika.act(citizen.ticket, "admit", room="sozialamt-1").status_code == 200

    guest = seat_from(citizen.client, citizen.client.get(f"/empfang/t/{citizen.token}/call"))
    page = citizen.client.get(f"/call/{guest.participant}")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert "camera=(self)" in page.headers["Permissions-Policy"]

    assert max_.open_call(citizen.ticket).status_code == 403  # Max does not serve Anna
    host = seat_from(erika.client, erika.open_call(citizen.ticket))
    assert erika.client.get(f"/call/{host.participant}").status_code == 200

    me, them = participant_row(hub, guest.participant), participant_row(hub, host.participant)
    assert (me["role"], them["role"]) == ("guest", "host")
    assert me["session"] == them["session"] and me["room"] == "sozialamt-1"
    assert me["admitted"] and them["admitted"] and not me["private"]

    # The kiosk's way in: credentials as JSON; the citizen's earlier seat is replaced.
    kiosk = new_browser(app).post(f"/api/v1/reception/tickets/{citizen.token}/call")
    assert kiosk.status_code == 201
    body = kiosk.get_json()
    assert body["participant"].startswith("p-") and body["key"]
    assert body["live"].endswith(f"/call/{body['participant']}/live")
    assert participant_row(hub, body["participant"])["session"] == me["session"]
    assert participant_row(hub, guest.participant)["left"] is True
    assert citizen.client.get(f"/call/{guest.participant}").status_code == 403


OUTSIDERS = ["stranger", "wrong key", "other call", "other call's key"]


def _outsider(app: Flask, who: str, ben: Admission) -> tuple[FlaskClient, dict[str, str]]:
    """A browser that is not Anna's, and the headers it sends (with a valid CSRF token)."""
    if who.startswith("other call"):
        key = {"X-Participant-Key": ben.guest.key} if who == "other call's key" else {}
        return ben.citizen.client, {"X-CSRFToken": ben.guest.csrf, **key}
    client = new_browser(app)
    key = {"X-Participant-Key": secrets.token_urlsafe(24)} if who == "wrong key" else {}
    return client, {"X-CSRFToken": csrf_of(client), **key}


@pytest.mark.parametrize("who", OUTSIDERS)
def test_non_participants_get_403_over_http(
    app: Flask, hub: HubRuntime, anna: Admission, ben: Admission, who: str
) -> None:
    shared = anna.guest.upload(PDF, "Bescheid.pdf")
    assert shared.status_code == 201
    document = shared.get_json()["id"]
    before = rows(hub)
    client, headers = _outsider(app, who, ben)
    target = anna.guest.participant
    page = client.get(f"/call/{target}", headers=headers)
    assert page.status_code == 403
    assert anna.guest.key not in page.get_data(as_text=True)
    download = client.get(f"/call/{target}/documents/{document}", headers=headers)
    assert download.status_code == 403 and PDF not in download.get_data()
    upload = client.post(
        f"/call/{target}/documents",
        data={"file": (io.BytesIO(PNG), "x.png")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert upload.status_code == 403
    invite = client.post(
        f"/call/{anna.host.participant}/invites", json={"label": "Spion"}, headers=headers
    )
    assert invite.status_code == 403
    assert rows(hub) == before
    assert len(files_under(documents_root(hub))) == 1


@pytest.mark.parametrize("who", ["no key", "wrong key", "other call's key", "host's key"])
def test_non_participants_are_refused_on_the_live_channel(
    hub: HubRuntime, server: LiveServer, anna: Admission, ben: Admission, who: str
) -> None:
    keys = {
        "no key": "",
        "wrong key": f"?k={secrets.token_urlsafe(24)}",
        "other call's key": f"?k={ben.guest.key}",
        "host's key": f"?k={anna.host.key}",  # a real key, but for another seat
    }
    before = rows(hub)
    refusal = refused_live(server.url, f"/call/{anna.guest.participant}/live{keys[who]}")
    if refusal.status is not None:
        assert refusal.status == 403
    else:  # or the hub says why and hangs up
        assert refusal.error is not None and refusal.error["type"] == "error", refusal
        assert refusal.error["field"] == "participant" and refusal.closed
    assert participant_row(hub, anna.guest.participant)["connected"] is False
    assert rows(hub) == before


def test_live_channel_refuses_other_origins(
    hub: HubRuntime, server: LiveServer, anna: Admission
) -> None:
    path = f"/call/{anna.guest.participant}/live?k={anna.guest.key}"
    assert refused_live(server.url, path, origin="https://evil.example").status == 403
    assert participant_row(hub, anna.guest.participant)["connected"] is False


# ---- host-only messages, signalling, bad frames ------------------------------------------------
@dataclass
class KnockRoom:
    """Erika hosts `beratung`; Gast is inside, Klopfer knocks; two live channels open."""

    host: Seat
    guest: Seat
    knocker: Seat
    host_live: Live
    guest_live: Live


@contextmanager
def knock_room(app: Flask, server: LiveServer, erika: Staff) -> Iterator[KnockRoom]:
    host = seat_from(erika.client, enter_room_as_staff(erika.client, "beratung"))
    with Live(server.url, host) as host_live:
        guest = new_guest(app, "beratung", "Gast")
        knocker = new_guest(app, "beratung", "Klopfer")
        host_live.send(type="admit", participant=guest.participant)
        host_live.state(lambda s: ids(s, "knocking") == {knocker.participant})
        with Live(server.url, guest) as guest_live:
            assert guest_live.first["me"]["admitted"] is True
            yield KnockRoom(host, guest, knocker, host_live, guest_live)


HOST_ONLY = {
    "admit": lambda room: {"type": "admit", "participant": room.knocker.participant},
    "remove": lambda room: {"type": "remove", "participant": room.host.participant},
    "move": lambda room: {"type": "move", "room": "intern"},
    "dnd": lambda room: {"type": "dnd", "on": True},
}


@pytest.mark.parametrize("kind", sorted(HOST_ONLY))
def test_guest_cannot_send_host_messages(
    app: Flask, hub: HubRuntime, server: LiveServer, erika: Staff, kind: str
) -> None:
    with knock_room(app, server, erika) as room:
        before = rows(hub)
        room.guest_live.send(**HOST_ONLY[kind](room))
        error = room.guest_live.error()
        assert error["field"] == "role" and "staff" in error["error"]
        room.guest_live.sync()
        assert rows(hub) == before
        assert participant_row(hub, room.knocker.participant)["admitted"] is False
        assert room_state(hub, "beratung") == "busy"
        # The host's own channel is untouched and still works.
        room.host_live.send(type="admit", participant=room.knocker.participant)
        room.host_live.state(
            lambda s: (
                ids(s) == {room.host.participant, room.guest.participant} and s["knocking"] == []
            )
        )
        assert participant_row(hub, room.knocker.participant)["admitted"] is True


def test_signals_stay_inside_their_session(
    hub: HubRuntime, server: LiveServer, anna: Admission, ben: Admission
) -> None:
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
    with (
        Live(server.url, anna.host) as erika_live,
        Live(server.url, anna.guest) as anna_live,
        Live(server.url, ben.host) as max_live,
        Live(server.url, ben.guest) as ben_live,
    ):
        anna_live.send(type="signal", to=anna.host.participant, kind="description", data=offer)
        got = erika_live.wait(lambda m: m.get("type") == "signal")
        assert got == {
            "type": "signal",
            "from": anna.guest.participant,
            "kind": "description",
            "data": offer,
        }
        for to in (ben.guest.participant, ben.host.participant, "p-0000000000000000"):
            anna_live.send(type="signal", to=to, kind="description", data=offer)
            error = anna_live.error()
            assert error["field"] == "to", error
        for other in (max_live, ben_live, erika_live):
            other.quiet(lambda m: m.get("type") == "signal", seconds=0.5)


FRAMES = {
    "not json": "kein json",
    "truncated": '{"type": "chat", "text": "Hal',
    "array": "[1, 2]",
    "null": "null",
    "number": "42",
    "string": '"chat"',
    "type not text": '{"type": 5}',
    "no type": '{"text": "Hallo"}',
    "chat object": '{"type": "chat", "text": {"a": 1}}',
    "move list": '{"type": "move", "room": ["intern"]}',
    "admit nobody": '{"type": "admit"}',
    "signal kind": '{"type": "signal", "to": "HOST", "kind": "evil", "data": {}}',
    "signal huge": '{"type": "signal", "to": "HOST", "kind": "candidate", "data": {"c": "'
    + "x" * 20000
    + '"}}',
}


@pytest.mark.parametrize("frame", sorted(FRAMES))
def test_malformed_messages_get_an_error_and_the_channel_stays_open(
    hub: HubRuntime, server: LiveServer, anna: Admission, frame: str
) -> None:
    with Live(server.url, anna.host) as host, Live(server.url, anna.guest) as guest:
        before = rows(hub)
        guest.send_raw(FRAMES[frame].replace("HOST", anna.host.participant))
        error = guest.error()
        assert error["error"], error
        assert rows(hub) == before
        host.quiet(lambda m: m.get("type") == "signal", seconds=0.2)
        # Still open, still heard.
        guest.send(type="chat", text="Noch da?")
        state = host.state(lambda s: bool(s["chat"]))
        assert [c["text"] for c in state["chat"]] == ["Noch da?"]


def test_binary_garbage_gets_an_error_and_the_channel_stays_open(
    hub: HubRuntime, server: LiveServer, anna: Admission
) -> None:
    with Live(server.url, anna.guest) as guest:
        guest.ws.send(b"\xff\xfe\x00garbage")
        assert guest.error()["type"] == "error"
        guest.send(type="chat", text="Noch da?")
        assert guest.state(lambda s: bool(s["chat"]))["chat"][0]["text"] == "Noch da?"


# ---- occupancy over real MQTT ------------------------------------------------------------------
def test_staff_room_is_busy_while_the_live_channel_is_open(
    hub: HubRuntime, server: LiveServer, mosquitto: Mosquitto, erika: Staff
) -> None:
    with status_watcher(mosquitto.url, "lounge") as lounge:
        seen_status(lounge, lambda s: s.state == "free")
        seat = seat_from(erika.client, enter_room_as_staff(erika.client, "lounge"))
        assert room_state(hub, "lounge") == "free"  # a seat is not a presence yet
        started = time.monotonic()
        with Live(server.url, seat) as live:
            busy = wait_status(lounge, lambda s: s.state == "busy", after=started)
            assert busy.occupants == 1
            assert live.first["me"]["role"] == "host"
            assert ids(live.first) == {seat.participant}
            left = time.monotonic()
        wait_status(lounge, lambda s: s.state == "free" and s.occupants == 0, after=left)
    assert participant_row(hub, seat.participant)["connected"] is False


def test_old_connection_closing_after_a_reconnect_keeps_the_room_busy(
    hub: HubRuntime, server: LiveServer, mosquitto: Mosquitto, erika: Staff
) -> None:
    """After a network blip the page reconnects while the hub still holds the dead socket;
    when that old socket finally closes, the participant is still there (new socket open)."""
    seat = seat_from(erika.client, enter_room_as_staff(erika.client, "lounge"))
    with status_watcher(mosquitto.url, "lounge") as lounge:
        with Live(server.url, seat) as old:
            seen_status(lounge, lambda s: s.state == "busy")
            reconnected = Live(server.url, seat)
        try:
            time.sleep(0.5)  # the old socket's close has been handled by now
            assert participant_row(hub, seat.participant)["connected"] is True
            assert room_state(hub, "lounge") == "busy"
            reconnected.sync()  # and the new channel still works
        finally:
            left = time.monotonic()
            reconnected.close()
        wait_status(lounge, lambda s: s.state == "free", after=left)
    assert old.seen[0]["type"] == "state"


def test_silent_connection_is_reaped_after_15_seconds(
    hub: HubRuntime,
    server: LiveServer,
    mosquitto: Mosquitto,
    clock: ManualClock,
    erika: Staff,
    max_: Staff,
) -> None:
    erika_seat = seat_from(erika.client, enter_room_as_staff(erika.client, "lounge"))
    max_seat = seat_from(max_.client, enter_room_as_staff(max_.client, "lounge"))
    with (
        status_watcher(mosquitto.url, "lounge") as lounge,
        Live(server.url, erika_seat) as erika_live,
        Live(server.url, max_seat) as max_live,  # stays open, but says nothing any more
    ):
        seen_status(lounge, lambda s: s.state == "busy" and s.occupants == 2)
        clock.advance(seconds=10)
        erika_live.send(type="ping")
        erika_live.sync()
        clock.advance(seconds=6)  # Max silent for 16 s, Erika for 6 s
        reaped = time.monotonic()
        hub.reap()
        wait_status(lounge, lambda s: s.state == "busy" and s.occupants == 1, after=reaped)
        assert max_live.wait(lambda m: m.get("type") in ("removed", "ended"))["type"] == "removed"
        assert max_live.closed()
        assert participant_row(hub, max_seat.participant)["left"] is True
        assert erika_live.state(lambda s: ids(s) == {erika_seat.participant})
        clock.advance(seconds=16)
        reaped = time.monotonic()
        hub.reap()
        wait_status(lounge, lambda s: s.state == "free" and s.occupants == 0, after=reaped)
        assert erika_live.wait(lambda m: m.get("type") == "ended")
        assert erika_live.closed()
    assert participant_row(hub, erika_seat.participant)["ended"] is True


# ---- permanent rooms: policies, knocking, do-not-disturb ---------------------------------------
@pytest.mark.parametrize(
    ("slug", "status", "admitted"),
    [("lounge", 302, True), ("beratung", 409, None), ("intern", 403, None)],
    ids=["open", "knock-nobody-inside", "private"],
)
def test_guest_entering_a_room_by_its_policy(
    app: Flask, hub: HubRuntime, slug: str, status: int, admitted: bool | None
) -> None:
    before = rows(hub)
    client = new_browser(app)
    answer = enter_room_as_guest(client, slug, "Gast")
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    if admitted is None:
        assert rows(hub) == before
        with client.session_transaction() as flask_session:
            assert "call_keys" not in flask_session
        return
    seat = seat_from(client, answer)
    row = participant_row(hub, seat.participant)
    assert row["role"] == "guest" and row["admitted"] is admitted and row["room"] == slug


def test_knock_flow(app: Flask, hub: HubRuntime, server: LiveServer, erika: Staff) -> None:
    host = seat_from(erika.client, enter_room_as_staff(erika.client, "beratung"))
    with Live(server.url, host) as host_live:
        assert host_live.first["knocking"] == [] and host_live.first["me"]["role"] == "host"
        guest = new_guest(app, "beratung", "Gast")
        knocking = host_live.state(lambda s: bool(s["knocking"]))
        assert knocking["knocking"] == [{"id": guest.participant, "name": "Gast"}]
        assert ids(knocking) == {host.participant}  # knocking is not being inside
        assert guest.client.get(f"/call/{guest.participant}").status_code == 200
        with Live(server.url, guest) as guest_live:
            first = guest_live.first
            assert first["me"]["admitted"] is False
            assert first["participants"] == [] and first["chat"] == [] and first["knocking"] == []
            guest_live.send(type="chat", text="Hallo?")
            assert guest_live.error()["field"] == "participant"
            guest_live.send(type="signal", to=host.participant, kind="description", data={})
            assert guest_live.error()["field"] == "participant"
            host_live.quiet(lambda m: m.get("type") == "signal", seconds=0.2)

            host_live.send(type="admit", participant=guest.participant)
            inside = guest_live.state(lambda s: s["me"]["admitted"])
            assert ids(inside) == {host.participant, guest.participant}
            host_live.state(lambda s: s["knocking"] == [] and len(s["participants"]) == 2)

        # A second visitor knocks and is declined.
        declined = new_guest(app, "beratung", "Klopfer")
        host_live.state(lambda s: ids(s, "knocking") == {declined.participant})
        with Live(server.url, declined) as declined_live:
            host_live.send(type="remove", participant=declined.participant)
            assert declined_live.wait(lambda m: m.get("type") == "removed")
            assert declined_live.closed()
        assert participant_row(hub, declined.participant)["left"] is True
        assert declined.client.get(f"/call/{declined.participant}").status_code == 403


def test_do_not_disturb_keeps_guests_out(
    app: Flask, hub: HubRuntime, server: LiveServer, mosquitto: Mosquitto, erika: Staff
) -> None:
    host = seat_from(erika.client, enter_room_as_staff(erika.client, "lounge"))
    with status_watcher(mosquitto.url, "lounge") as lounge, Live(server.url, host) as live:
        seen_status(lounge, lambda s: s.state == "busy")
        asked = time.monotonic()
        live.send(type="dnd", on=True)
        wait_status(lounge, lambda s: s.state == "dnd", after=asked)
        assert live.state(lambda s: s["room"]["dnd"])["room"]["slug"] == "lounge"
        before = rows(hub)
        refused = enter_room_as_guest(new_browser(app), "lounge", "Gast")
        assert refused.status_code == 409
        assert rows(hub) == before
        asked = time.monotonic()
        live.send(type="dnd", on=False)
        wait_status(lounge, lambda s: s.state == "busy", after=asked)
        assert new_guest(app, "lounge", "Gast").participant.startswith("p-")


@pytest.mark.parametrize("target", ["intern", "sozialamt-2"])
def test_move_to_a_private_room(
    app: Flask,
    hub: HubRuntime,
    server: LiveServer,
    mosquitto: Mosquitto,
    anna: Admission,
    target: str,
) -> None:
    jana = staff_login(app, hub, "jana")
    with (
        status_watcher(mosquitto.url, "sozialamt-1") as old,
        status_watcher(mosquitto.url, target) as new,
        Live(server.url, anna.host) as host,
        Live(server.url, anna.guest) as guest,
    ):
        seen_status(old, lambda s: s.state == "busy" and s.occupants == 2)
        seen_status(new, lambda s: s.state == "free")
        moved = time.monotonic()
        host.send(type="move", room=target)
        wait_status(old, lambda s: s.state == "free" and s.occupants == 0, after=moved)
        wait_status(new, lambda s: s.state == "busy" and s.occupants == 2, after=moved)
        for live in (host, guest):
            state = live.state(lambda s: s["private"] and s["room"]["slug"] == target)
            assert ids(state) == {anna.host.participant, anna.guest.participant}

        before = rows(hub)
        assert enter_room_as_staff(jana.client, target).status_code == 403
        assert enter_room_as_guest(new_browser(app), target, "Neugierig").status_code == 403
        assert rows(hub) == before
        assert room_state(hub, target) == "busy"
        # The old room is an ordinary room again.
        assert seat_from(jana.client, enter_room_as_staff(jana.client, "sozialamt-1"))


# ---- invitations -------------------------------------------------------------------------------
def test_host_creates_an_invitation_link(hub: HubRuntime, anna: Admission) -> None:
    answer = anna.host.invite("Dolmetscherin")
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    token = invite_token(body["url"])
    assert len(token) >= 20
    assert body["qr_svg"].lstrip().startswith("<svg")
    assert body["expires_at"] == "2026-11-25T13:00:00Z"  # four hours from now
    with session_scope(hub.sessions) as db:
        stored = db.get(Invite, body["id"])
        assert stored is not None and stored.label == "Dolmetscherin"
        assert token not in stored.token_hash  # only a hash is kept
    before = rows(hub)
    assert anna.guest.invite().status_code == 403  # citizens do not invite
    assert rows(hub) == before


def test_external_joins_by_link_and_stays_external(
    app: Flask, hub: HubRuntime, server: LiveServer, anna: Admission
) -> None:
    token = invite_token(anna.host.invite("Dolmetscherin").get_json()["url"])
    client = new_browser(app)
    page = client.get(f"/join/{token}")
    assert page.status_code == 200 and "Dolmetscherin" in page.get_data(as_text=True)
    external = seat_from(client, join_by_invite(client, token, "Frau Dolmetsch"))
    row = participant_row(hub, external.participant)
    assert row["role"] == "external" and row["admitted"]
    assert row["session"] == participant_row(hub, anna.host.participant)["session"]
    assert client.get(f"/call/{external.participant}").status_code == 200
    # Never the lobby.
    lobby = client.get("/staff/queue")
    assert lobby.status_code == 302 and "/staff/login" in lobby.headers["Location"]
    assert client.get("/api/v1/queue").status_code == 401
    assert "Anna" not in client.get("/api/v1/queue").get_data(as_text=True)
    # Never a host's tools.
    assert external.invite().status_code == 403
    with Live(server.url, external) as live:
        assert live.first["me"]["role"] == "external" and live.first["knocking"] == []
        before = rows(hub)
        for message in (
            {"type": "admit", "participant": anna.guest.participant},
            {"type": "remove", "participant": anna.guest.participant},
            {"type": "move", "room": "intern"},
            {"type": "dnd", "on": True},
        ):
            live.send(**message)
            assert live.error()["field"] == "role"
        assert rows(hub) == before


def _revoke(hub: HubRuntime, host: Seat, invite_id: int) -> None:
    with session_scope(hub.sessions) as db:
        actor = hub.calls.authenticate(db, host.participant, host.key)
        hub.calls.revoke(db, actor, invite_id)


@pytest.mark.parametrize(("how", "status"), [("expired", 403), ("revoked", 403), ("guessed", 404)])
def test_dead_invitation_links_are_refused(
    app: Flask, hub: HubRuntime, clock: ManualClock, anna: Admission, how: str, status: int
) -> None:
    created = anna.host.invite("Anwalt").get_json()
    token = invite_token(created["url"])
    if how == "expired":
        clock.advance(hours=5)
        hub.reap()  # the seats nobody kept alive go now, not in the middle of the test
    elif how == "revoked":
        _revoke(hub, anna.host, created["id"])
    else:
        token = secrets.token_urlsafe(24)
    before = rows(hub)
    client = new_browser(app)
    assert client.get(f"/join/{token}").status_code == status
    posted = client.post(
        f"/join/{token}", data={"name": "Herr Anwalt", "csrf_token": csrf_of(client)}
    )
    assert posted.status_code == status
    assert rows(hub) == before


def test_host_revokes_an_invitation_link_over_http(
    app: Flask, hub: HubRuntime, anna: Admission
) -> None:
    """Issue 4: links "can be revoked" — by the host, from the call page (the service has
    CallService.revoke; the call's routes must offer it, as they offer creating one)."""
    first, second = (anna.host.invite("Anwalt").get_json() for _ in range(2))
    base = f"/call/{anna.host.participant}/invites"
    answer = anna.host.client.delete(f"{base}/{first['id']}", headers=anna.host.headers())
    assert answer.status_code in (200, 204), answer.status_code
    assert new_browser(app).get(f"/join/{invite_token(first['url'])}").status_code == 403
    # The citizen cannot withdraw the host's invitation.
    refused = anna.guest.client.delete(
        f"/call/{anna.guest.participant}/invites/{second['id']}", headers=anna.guest.headers()
    )
    assert refused.status_code == 403
    with session_scope(hub.sessions) as db:
        still = db.get(Invite, second["id"])
        assert still is not None and not still.revoked


# ---- chat --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "ok"), [(1, True), (MAX_CHAT, True), (MAX_CHAT + 1, False)])
def test_chat_between_participants(
    hub: HubRuntime, server: LiveServer, anna: Admission, length: int, ok: bool
) -> None:
    text = "ä" * length
    with Live(server.url, anna.host) as host, Live(server.url, anna.guest) as guest:
        guest.send(type="chat", text=text)
        if ok:
            state = host.state(lambda s: bool(s["chat"]))
            assert state["chat"] == [{"author": "Anna", "at": "2026-11-25T09:00:00Z", "text": text}]
            return
        error = guest.error()
        assert error["field"] == "text" and str(MAX_CHAT) in error["error"]
        host.quiet(lambda m: m.get("type") == "state" and bool(m["chat"]), seconds=0.3)
    assert rows(hub)["chat"] == 0


# ---- documents ---------------------------------------------------------------------------------
def _disposition(response: Any) -> tuple[str, str]:
    kind, options = parse_options_header(response.headers["Content-Disposition"])
    return kind, options.get("filename", "")


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_documents_are_shared_with_the_session(hub: HubRuntime, anna: Admission, kind: str) -> None:
    body, mime = SAMPLES[kind]
    uploaded = anna.guest.upload(body, f"Nachweis.{kind}")
    assert uploaded.status_code == 201, uploaded.get_data(as_text=True)
    info = uploaded.get_json()
    assert info["size"] == len(body) and info["id"].startswith("d-")
    download = anna.host.download(info["id"])
    assert download.status_code == 200
    assert download.get_data() == body
    assert download.mimetype == mime
    disposition, filename = _disposition(download)
    assert disposition == "attachment" and filename == info["filename"]
    assert filename.startswith("Nachweis.")
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    session = participant_row(hub, anna.guest.participant)["session"]
    assert files_under(documents_root(hub)) == [documents_root(hub) / session / info["id"]]


@pytest.mark.parametrize(
    ("body", "name"),
    [
        (b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>", "x.pdf"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64, "x.pdf"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "bild.png"),
        (b"", "leer.jpg"),
    ],
    ids=["html", "exe", "gif", "empty"],
)
def test_disguised_uploads_are_refused(
    hub: HubRuntime, anna: Admission, body: bytes, name: str
) -> None:
    before = rows(hub)
    answer = anna.guest.upload(body, name)
    assert answer.status_code == 400
    assert rows(hub) == before
    assert files_under(documents_root(hub)) == []


def test_upload_without_a_file_is_refused(hub: HubRuntime, anna: Admission) -> None:
    answer = anna.guest.client.post(
        f"/call/{anna.guest.participant}/documents",
        data={"other": "x"},
        headers=anna.guest.headers(),
        content_type="multipart/form-data",
    )
    assert answer.status_code == 400
    assert rows(hub)["documents"] == 0


@pytest.mark.parametrize(
    ("size", "status"),
    [(2 * MB, 201), (MAX_DOCUMENT, 201), (MAX_DOCUMENT + 1, 413), (25 * MB, 413)],
    ids=["2MB", "20MB", "20MB+1", "25MB"],
)
def test_upload_size_limit(hub: HubRuntime, anna: Admission, size: int, status: int) -> None:
    body = PDF + b"\0" * (size - len(PDF))
    answer = anna.guest.upload(body, "Scan.pdf")
    assert answer.status_code == status, answer.get_data(as_text=True)[:300]
    stored = files_under(documents_root(hub))
    if status == 201:
        assert [p.stat().st_size for p in stored] == [size]
        assert anna.host.download(answer.get_json()["id"]).get_data() == body
    else:
        assert stored == []
        assert rows(hub)["documents"] == 0


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("../../etc/passwd.pdf", PDF),
        ("a/b\\c.png", PNG),
        ("..\\..\\windows\\win.ini.jpg", JPEG),
        ("/tmp/x.pdf", PDF),
    ],
    ids=["dotdot-slash", "slash-backslash", "dotdot-backslash", "absolute"],
)
def test_path_tricks_in_file_names(
    hub: HubRuntime, anna: Admission, name: str, body: bytes
) -> None:
    everything = hub.settings.instance_path.parent
    before = set(files_under(everything))
    answer = anna.guest.upload(body, name)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    info = answer.get_json()
    session = participant_row(hub, anna.guest.participant)["session"]
    assert set(files_under(everything)) - before == {documents_root(hub) / session / info["id"]}
    download = anna.host.download(info["id"])
    _kind, filename = _disposition(download)
    for shown in (info["filename"], filename):
        assert shown and "/" not in shown and "\\" not in shown, shown
    assert download.get_data() == body


def test_other_sessions_cannot_download(hub: HubRuntime, anna: Admission, ben: Admission) -> None:
    document = anna.guest.upload(PDF, "Bescheid.pdf").get_json()["id"]
    for seat in (ben.guest, ben.host):
        own_route = seat.download(document)  # with their own, valid seat
        assert own_route.status_code == 404
        annas_route = seat.client.get(
            f"/call/{anna.guest.participant}/documents/{document}",
            headers={"X-Participant-Key": seat.key},
        )
        assert annas_route.status_code == 403
        assert PDF not in own_route.get_data() + annas_route.get_data()


# ---- the end erases everything -----------------------------------------------------------------
ENDINGS = {
    "end": {"outcome": "resolved"},
    "return": {},
    "forward": {"department": "buergerbuero", "note": "bitte übernehmen"},
}


@pytest.mark.parametrize("how", sorted(ENDINGS))
def test_the_end_erases_chat_and_documents(
    app: Flask, hub: HubRuntime, server: LiveServer, mosquitto: Mosquitto, anna: Admission, how: str
) -> None:
    with (
        status_watcher(mosquitto.url, "sozialamt-1") as room,
        Live(server.url, anna.host) as host,
        Live(server.url, anna.guest) as guest,
    ):
        guest.send(type="chat", text="Hier ist mein Bescheid")
        host.state(lambda s: bool(s["chat"]))
        assert anna.guest.upload(PDF, "Bescheid.pdf").status_code == 201
        assert anna.host.upload(PNG, "Formular.png").status_code == 201
        state = guest.state(lambda s: len(s["documents"]) == 2)
        folder = documents_root(hub) / state["session"]
        assert len(files_under(folder)) == 2
        urls = [d["url"] for d in state["documents"]]
        assert anna.guest.client.get(urls[0]).status_code == 200
        invite = invite_token(anna.host.invite().get_json()["url"])
        seen_status(room, lambda s: s.state == "busy")

        ended = time.monotonic()
        assert anna.staff.act(anna.citizen.ticket, how, **ENDINGS[how]).status_code == 200
        wait_status(room, lambda s: s.state == "free" and s.occupants == 0, after=ended)
        for live in (host, guest):
            assert live.wait(lambda m: m.get("type") == "ended")
            assert live.closed()

    with session_scope(hub.sessions) as db:
        session = db.scalar(select(CallSession).where(CallSession.public_id == state["session"]))
        assert session is not None and session.ended_at is not None
        for model in (ChatMessage, Document, Invite):
            count = db.scalar(
                select(func.count()).select_from(model).where(model.session_id == session.id)
            )
            assert count == 0, model.__name__
    assert not folder.exists()
    assert files_under(documents_root(hub)) == []
    assert anna.guest.client.get(urls[0]).status_code == 403
    assert anna.guest.client.get(f"/call/{anna.guest.participant}").status_code == 403
    assert new_browser(app).get(f"/join/{invite}").status_code in (403, 404)


# ---- at most four ------------------------------------------------------------------------------
@pytest.mark.parametrize("fifth", ["guest", "staff", "external"])
def test_a_fifth_participant_is_refused(
    app: Flask, hub: HubRuntime, erika: Staff, max_: Staff, fifth: str
) -> None:
    host = seat_from(erika.client, enter_room_as_staff(erika.client, "lounge"))
    seat_from(max_.client, enter_room_as_staff(max_.client, "lounge"))
    new_guest(app, "lounge", "Gast 1")
    new_guest(app, "lounge", "Gast 2")
    token = invite_token(host.invite().get_json()["url"])
    before = rows(hub)
    if fifth == "guest":
        answer = enter_room_as_guest(new_browser(app), "lounge", "Gast 3")
    elif fifth == "staff":
        jana = staff_login(app, hub, "jana")
        answer = enter_room_as_staff(jana.client, "lounge")
    else:
        answer = join_by_invite(new_browser(app), token, "Frau Dolmetsch")
    assert answer.status_code == 409, answer.get_data(as_text=True)[:300]
    assert rows(hub) == before
