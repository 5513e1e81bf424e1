"""The reception flow through HTTP: register, wait, admit, forward, return, end, leave."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hub.runtime import HubRuntime
from protocol import topics
from protocol.payloads import RoomStatus
from tests.conftest import Account, add_user, csrf_from, log_in
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher
from tests.support.reception import join_queues, setup_reception


@pytest.fixture
def reception(runtime: HubRuntime) -> None:
    """A configured reception."""
    setup_reception(runtime)


def take_ticket(client: FlaskClient, name: str, category: str = "wohngeld", **extra: str) -> str:
    """Register through the citizen form; returns the ticket token."""
    page = client.get("/empfang/")
    assert page.status_code == 200
    form = {
        "name": name,
        "category": category,
        "description": "Antrag",
        "consent": "on",
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        **extra,
    }
    response = client.post("/empfang/", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


def view(client: FlaskClient, token: str) -> dict:
    """The citizen's ticket view through the kiosk API."""
    response = client.get(f"/api/v1/reception/tickets/{token}")
    assert response.status_code == 200
    return response.get_json()


def staff_act(
    client: FlaskClient, token: str, ticket: str, action: str, **body: str
) -> TestResponse:
    """A staff action through the JSON API."""
    return client.post(
        f"/api/v1/queue/{ticket}/{action}", json=body, headers={"X-CSRFToken": token}
    )


def test_landing_shows_open_state_and_categories(app: Flask, reception: None) -> None:
    html = app.test_client().get("/empfang/").get_data(as_text=True)
    assert "Geöffnet" in html
    assert "Niemand wartet gerade." in html
    assert "Wohngeld" in html and "Ausweis" in html
    english = app.test_client().get("/empfang/?lang=en").get_data(as_text=True)
    assert "Open" in english and "Housing benefit" in english and 'lang="en"' in english


def test_positions_admit_forward_end(
    app: Flask, runtime: HubRuntime, reception: None, mosquitto: Mosquitto, clock: ManualClock
) -> None:
    add_user(runtime, "erika")
    add_user(runtime, "max")
    join_queues(runtime, "erika", "sozialamt")
    join_queues(runtime, "max", "buergerbuero")
    erika, max_ = app.test_client(), app.test_client()
    erika_token = log_in(erika, Account("erika", "correct horse battery"))
    max_token = log_in(max_, Account("max", "correct horse battery"))

    anna, ben = app.test_client(), app.test_client()
    anna_t = take_ticket(anna, "Anna")
    clock.advance(minutes=1)
    ben_t = take_ticket(ben, "Ben")
    assert view(anna, anna_t)["position"] == 1 and view(anna, anna_t)["next"] is True
    assert view(ben, ben_t)["position"] == 2

    queue = erika.get("/api/v1/queue").get_json()
    assert [t["name"] for t in queue["waiting"]] == ["Anna", "Ben"]
    assert max_.get("/api/v1/queue").get_json()["waiting"] == []  # other department

    with Watcher(mosquitto.url, topics.room_status("default", "empfang")) as reception_room:
        reception_room.wait(lambda m: RoomStatus.parse(m.payload).waiting == 2)
        anna_id = queue["waiting"][0]["ticket"]
        admitted = staff_act(erika, erika_token, anna_id, "admit", room="sozialamt-2")
        assert admitted.status_code == 200, admitted.get_json()
        reception_room.wait(lambda m: RoomStatus.parse(m.payload).waiting == 1)
    assert view(ben, ben_t)["position"] == 1
    anna_view = view(anna, anna_t)
    assert anna_view["status"] == "serving"
    assert anna_view["room"]["name"] == "Sozialamt-2" and anna_view["staff"] == "Erika"
    room = erika.get("/api/v1/rooms/sozialamt-2").get_json()["status"]
    assert room["state"] == "busy" and room["occupants"] == 1

    # Forward Ben to the Bürgerbüro with a note: he keeps his arrival time.
    ben_id = queue["waiting"][1]["ticket"]
    clock.advance(minutes=5)
    carla = app.test_client()
    take_ticket(carla, "Carla", category="ausweis")  # arrives later, same target queue
    forwarded = staff_act(
        erika,
        erika_token,
        ben_id,
        "forward",
        department="buergerbuero",
        note="Braucht neuen Ausweis",
    )
    assert forwarded.status_code == 200
    max_queue = max_.get("/api/v1/queue").get_json()["waiting"]
    assert [t["name"] for t in max_queue] == ["Ben", "Carla"]
    assert max_queue[0]["forward_note"] == "Braucht neuen Ausweis"
    ben_view = view(ben, ben_t)
    assert ben_view["position"] == 1
    assert "Bürgerbüro" in ben_view["forwarded_to"]

    # A message reaches the waiting citizen; then Erika ends Anna's visit.
    assert staff_act(max_, max_token, ben_id, "message", text="Noch 5 Minuten").status_code == 200
    assert view(ben, ben_t)["messages"][0]["text"] == "Noch 5 Minuten"
    clock.advance(minutes=10)
    ended = staff_act(erika, erika_token, anna_id, "end", outcome="resolved")
    assert ended.status_code == 200
    assert view(anna, anna_t)["status"] == "ended"
    assert erika.get("/api/v1/rooms/sozialamt-2").get_json()["status"]["state"] == "free"


def test_return_to_lobby_keeps_place(
    app: Flask, runtime: HubRuntime, reception: None, clock: ManualClock
) -> None:
    add_user(runtime, "erika")
    erika = app.test_client()
    token = log_in(erika, Account("erika", "correct horse battery"))
    anna, ben = app.test_client(), app.test_client()
    anna_t = take_ticket(anna, "Anna")
    clock.advance(minutes=1)
    take_ticket(ben, "Ben")
    anna_id = view(anna, anna_t)["ticket"]
    assert staff_act(erika, token, anna_id, "admit", room="sozialamt-1").status_code == 200
    assert staff_act(erika, token, anna_id, "return").status_code == 200
    assert view(anna, anna_t)["position"] == 1  # back at the front: arrival time counts


def test_second_admit_of_same_ticket_conflicts(
    app: Flask, runtime: HubRuntime, reception: None
) -> None:
    add_user(runtime, "erika")
    add_user(runtime, "max")
    erika, max_ = app.test_client(), app.test_client()
    e_token = log_in(erika, Account("erika", "correct horse battery"))
    m_token = log_in(max_, Account("max", "correct horse battery"))
    anna = app.test_client()
    anna_id = view(anna, take_ticket(anna, "Anna"))["ticket"]
    assert staff_act(erika, e_token, anna_id, "admit", room="sozialamt-1").status_code == 200
    second = staff_act(max_, m_token, anna_id, "admit", room="sozialamt-2")
    assert second.status_code == 409
    assert max_.get("/api/v1/rooms/sozialamt-2").get_json()["status"]["state"] == "free"


def test_leave_and_reload_keeps_ticket(app: Flask, reception: None) -> None:
    anna = app.test_client()
    token = take_ticket(anna, "Anna")
    # Reload: the same address shows the same ticket; the landing page offers to go back.
    assert anna.get(f"/empfang/t/{token}").status_code == 200
    assert f"/empfang/t/{token}" in anna.get("/empfang/").get_data(as_text=True)
    page = anna.get(f"/empfang/t/{token}").get_data(as_text=True)
    left = anna.post(f"/empfang/t/{token}/leave", data={"csrf_token": csrf_from(page)})
    assert left.status_code == 200
    assert view(anna, token)["status"] == "ended"
    assert view(anna, token)["outcome"] == "left"


def test_closed_reception_turns_people_away(
    app: Flask, runtime: HubRuntime, admin_client: tuple[FlaskClient, str], clock: ManualClock
) -> None:
    setup_reception(runtime)
    client, token = admin_client
    # Reception open only on Mondays; the clock stands on a Wednesday.
    monday_only = {"opening_hours": {"weekly": {"mon": ["08:00-12:00"]}}}
    client.patch("/api/v1/rooms/empfang", json=monday_only, headers={"X-CSRFToken": token})
    citizen = app.test_client()
    html = citizen.get("/empfang/").get_data(as_text=True)
    assert "Geschlossen" in html
    assert "Montag, 30. November 2026 um 08:00" in html
    assert 'name="category"' not in html  # no form
    api = citizen.post(
        "/api/v1/reception/tickets", json={"name": "Anna", "category": "wohngeld", "consent": True}
    )
    assert api.status_code == 409
    assert citizen.get("/api/v1/reception").get_json()["waiting"] == 0


def test_retention_erases_personal_fields(
    app: Flask, runtime: HubRuntime, reception: None, clock: ManualClock
) -> None:
    add_user(runtime, "erika")
    erika = app.test_client()
    token = log_in(erika, Account("erika", "correct horse battery"))
    anna = app.test_client()
    anna_t = take_ticket(anna, "Anna Geheim")
    anna_id = view(anna, anna_t)["ticket"]
    staff_act(erika, token, anna_id, "message", text="Gleich geht's los")
    staff_act(erika, token, anna_id, "admit", room="sozialamt-1")
    staff_act(erika, token, anna_id, "end", outcome="resolved")
    clock.advance(hours=23)
    assert runtime.purge() == 0
    clock.advance(hours=2)
    assert runtime.purge() == 1
    with runtime.sessions() as db:
        ticket = runtime.reception.by_public_id(db, anna_id)
        assert ticket.name is None and ticket.description is None and ticket.messages == []
        assert ticket.erased and ticket.outcome == "resolved"
        assert ticket.category_slug == "wohngeld" and ticket.admitted_at is not None
    csv = erika.get("/api/v1/queue")  # staff still work; the CSV has no names
    assert csv.status_code == 200


def test_stale_waiting_tickets_end_as_no_show(
    app: Flask, runtime: HubRuntime, reception: None, clock: ManualClock
) -> None:
    anna = app.test_client()
    token = take_ticket(anna, "Anna")
    clock.advance(hours=13)
    runtime.purge()
    assert view(anna, token)["status"] == "ended"
    assert view(anna, token)["outcome"] == "no_show"
