"""One text rule at every boundary: what the admin form, the JSON API and the service layer
accept is exactly what the wire contract can publish; and one broken room never silences
the others' status.
"""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from hub import validation
from hub.db import session_scope
from hub.errors import ValidationError
from hub.models import Room
from hub.runtime import HubRuntime
from protocol import topics
from protocol.errors import PayloadError
from protocol.payloads import RoomStatus
from protocol.text import is_clean
from tests.conftest import create_room, csrf_from
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher

BAD_NAMES = {
    "delete": "Raum\u007f",
    "c1 control": "Ra\u0085um",
    "lone surrogate": "Raum\ud800",
    "nul": "Raum\x00",
    "escape": "\x1b[31mRaum",
}


def _rooms(runtime: HubRuntime) -> list[str]:
    with session_scope(runtime.sessions) as db:
        return sorted(db.scalars(select(Room.slug)))


@given(st.text(max_size=40))
def test_what_the_hub_accepts_the_wire_contract_can_carry(value: str) -> None:
    try:
        clean = validation.text(value, "name", max_len=200)
    except ValidationError:
        assert not is_clean(value.strip()) or not value.strip()
        return
    status = RoomStatus.parse(
        RoomStatus(
            room="raum",
            name=clean,
            state="free",  # type: ignore[arg-type]
            occupants=0,
            waiting=0,
            since=RoomStatus.parse(_sample()).since,
            seq=1,
            updated=RoomStatus.parse(_sample()).updated,
            ttl=90,
        ).to_json()
    )
    assert status.name == clean


def _sample() -> bytes:
    return (
        b'{"v":1,"room":"raum","name":"Raum","state":"free","occupants":0,"waiting":0,'
        b'"since":"2026-11-25T14:03:00Z","seq":1,"updated":"2026-11-25T14:05:00Z","ttl":90}'
    )


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_the_wire_contract_refuses_what_the_hub_refuses(name: str) -> None:
    with pytest.raises(ValidationError):
        validation.text(name, "name", max_len=200)
    with pytest.raises(PayloadError):
        RoomStatus.parse(_sample().replace(b'"Raum"', f'"{name}"'.encode("utf-8", "surrogatepass")))


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_the_json_api_refuses_control_characters_and_stores_nothing(
    admin_client: tuple[FlaskClient, str], runtime: HubRuntime, name: str
) -> None:
    client, token = admin_client
    before = _rooms(runtime)
    answer = client.post(
        "/api/v1/rooms",
        json={"slug": "raum", "name": name},
        headers={"X-CSRFToken": token},
    )
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "name"
    assert _rooms(runtime) == before


# A form cannot carry a lone surrogate at all (UTF-8 has none); the others it can.
FORM_NAMES = {k: v for k, v in BAD_NAMES.items() if k != "lone surrogate"}


@pytest.mark.parametrize("name", FORM_NAMES.values(), ids=FORM_NAMES.keys())
def test_the_admin_form_refuses_control_characters_and_stores_nothing(
    admin_client: tuple[FlaskClient, str], runtime: HubRuntime, name: str
) -> None:
    client, _token = admin_client
    page = client.get("/admin/rooms/new")
    before = _rooms(runtime)
    answer = client.post(
        "/admin/rooms/new",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "slug": "raum",
            "name": name,
            "kind": "consultation",
            "policy": "knock",
            "enabled": "on",
        },
    )
    assert answer.status_code == 400
    assert "Steuerzeichen" in answer.get_data(as_text=True)
    assert _rooms(runtime) == before


def test_a_broken_room_does_not_silence_the_others(
    mosquitto: Mosquitto, admin_client: tuple[FlaskClient, str], runtime: HubRuntime
) -> None:
    client, token = admin_client
    create_room(client, token, "kaputt", name="Kaputter Raum")  # first in every loop
    create_room(client, token, "gut", name="Guter Raum")
    # A name stored by an older hub, before the rule held everywhere: it cannot be published.
    with session_scope(runtime.sessions) as db:
        db.execute(update(Room).where(Room.slug == "kaputt").values(name="Raum\u007f"))
        db.execute(update(Room).where(Room.slug == "kaputt").values(published_name="Raum\u007f"))
        db.commit()
    with Watcher(mosquitto.url, topics.room_status("default", "gut")) as live:
        live.wait(lambda m: True)  # the retained status
        live.clear()
        runtime.refresh()
        runtime.republish()
        assert RoomStatus.parse(live.wait(lambda m: True).payload).room == "gut"
    assert client.get("/api/v1/rooms/gut").status_code == 200
    listed = client.get("/api/v1/rooms")
    assert listed.status_code == 200
    assert {r["slug"] for r in listed.get_json()["rooms"]} >= {"gut", "kaputt"}
