"""Logins, roles, CSRF and input validation: bad input gets a clear error and changes nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hub.runtime import HubRuntime
from tests.conftest import PASSWORD, Account, create_room, csrf_from, log_in


def _room_count(client: FlaskClient) -> int:
    return len(client.get("/api/v1/rooms").get_json()["rooms"])


def test_login_page_and_wrong_password(app: Flask, staff: Account) -> None:
    client = app.test_client()
    page = client.get("/staff/login")
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    bad = client.post(
        "/staff/login", data={"username": "erika", "password": "nope", "csrf_token": token}
    )
    assert bad.status_code == 401
    assert "Benutzername oder Passwort ist falsch." in bad.get_data(as_text=True)
    assert client.get("/rooms").status_code == 302  # still not logged in


def test_passwords_are_hashed_with_argon2(runtime: HubRuntime, staff: Account) -> None:
    with runtime.sessions() as db:
        user = runtime.users.list_users(db)[0]
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


def test_login_is_rate_limited(app: Flask, staff: Account) -> None:
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    codes = [
        client.post(
            "/staff/login", data={"username": "erika", "password": f"x{i}", "csrf_token": token}
        ).status_code
        for i in range(6)
    ]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
    # Even the right password is refused while the limit holds.
    right = client.post(
        "/staff/login", data={"username": "erika", "password": PASSWORD, "csrf_token": token}
    )
    assert right.status_code == 429


def test_login_form_requires_csrf(app: Flask, staff: Account) -> None:
    client = app.test_client()
    response = client.post("/staff/login", data={"username": "erika", "password": PASSWORD})
    assert response.status_code == 403
    assert "csrf" in response.get_data(as_text=True).lower()


def test_open_redirect_is_refused(app: Flask, staff: Account) -> None:
    client = app.test_client()
    token = csrf_from(client.get("/staff/login").get_data(as_text=True))
    response = client.post(
        "/staff/login",
        data={
            "username": "erika",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/rooms"


def test_disabled_account_is_logged_out(
    app: Flask,
    admin_client: tuple[FlaskClient, str],
    staff_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
) -> None:
    client, _ = staff_client
    assert client.get("/rooms").status_code == 200
    admin, token = admin_client
    with runtime.sessions() as db:
        erika = next(u for u in runtime.users.list_users(db) if u.username == "erika")
    admin.post(
        f"/admin/users/{erika.id}",
        data={"display_name": "Erika", "disabled": "on", "csrf_token": token},
    )
    assert client.get("/rooms").status_code == 302


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/rooms", {"slug": "neu", "name": "Neu"}),
        ("patch", "/api/v1/rooms/raum", {"name": "Anders"}),
        ("delete", "/api/v1/rooms/raum", None),
        ("put", "/api/v1/rooms/raum/enabled", {"enabled": False}),
    ],
)
def test_admin_routes_need_an_admin(
    staff_client: tuple[FlaskClient, str],
    admin_client: tuple[FlaskClient, str],
    app: Flask,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    admin, admin_token = admin_client
    create_room(admin, admin_token, "raum")
    before = admin.get("/api/v1/rooms").get_json()
    staff, token = staff_client
    response = getattr(staff, method)(path, json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 403
    anonymous = getattr(app.test_client(), method)(path, json=body)
    assert anonymous.status_code in (401, 403)  # no login, or no CSRF token
    assert admin.get("/api/v1/rooms").get_json() == before


@pytest.mark.parametrize("path", ["/admin/rooms", "/admin/users", "/admin/rooms/new"])
def test_admin_pages_refuse_staff(staff_client: tuple[FlaskClient, str], path: str) -> None:
    client, _ = staff_client
    assert client.get(path).status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/rooms/raum/checkin", None),
        ("post", "/api/v1/rooms/raum/checkout", None),
        ("put", "/api/v1/rooms/raum/dnd", {"dnd": True}),
    ],
)
def test_state_changes_need_staff(
    app: Flask, admin_client: tuple[FlaskClient, str], method: str, path: str, body: dict | None
) -> None:
    admin, token = admin_client
    create_room(admin, token, "raum")
    client = app.test_client()
    # Even with a valid CSRF token from an anonymous session, no login means 401.
    anon_token = client.get("/api/v1/session").get_json()["csrf_token"]
    response = getattr(client, method)(path, json=body, headers={"X-CSRFToken": anon_token})
    assert response.status_code == 401
    assert admin.get("/api/v1/rooms/raum").get_json()["status"]["state"] == "free"


def test_api_state_change_without_csrf_token_is_refused(
    staff_client: tuple[FlaskClient, str], admin_client: tuple[FlaskClient, str]
) -> None:
    admin, token = admin_client
    create_room(admin, token, "raum")
    client, _ = staff_client
    response = client.post("/api/v1/rooms/raum/checkin")
    assert response.status_code == 403
    assert response.get_json()["field"] == "csrf_token"
    assert admin.get("/api/v1/rooms/raum").get_json()["status"]["occupants"] == 0


LONG = "x" * 201


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"slug": "Bad Slug", "name": "A"}, 400, "slug"),
        ({"slug": "-dash", "name": "A"}, 400, "slug"),
        ({"slug": "a" * 65, "name": "A"}, 400, "slug"),
        ({"slug": "ok", "name": ""}, 400, "name"),
        ({"slug": "ok", "name": LONG}, 400, "name"),
        ({"slug": "ok", "name": 5}, 400, "name"),
        ({"slug": "ok", "name": "A", "kind": "kitchen"}, 400, "kind"),
        ({"slug": "ok", "name": "A", "policy": "maybe"}, 400, "policy"),
        ({"slug": "ok", "name": "A", "department": "nope"}, 422, "department"),
        ({"slug": "ok", "name": "A", "enabled": "perhaps"}, 400, "enabled"),
        (
            {"slug": "ok", "name": "A", "opening_hours": {"weekly": {"mon": ["18:00-08:00"]}}},
            422,
            "opening_hours.weekly.mon",
        ),
        (
            {"slug": "ok", "name": "A", "opening_hours": {"weekly": {"someday": ["08:00-12:00"]}}},
            400,
            "opening_hours.weekly",
        ),
        (
            {"slug": "ok", "name": "A", "opening_hours": {"closed_days": ["tomorrow"]}},
            400,
            "opening_hours.closed_days",
        ),
        ({"slug": "vorhanden", "name": "Doppelt"}, 409, "slug"),
    ],
)
def test_bad_room_input_names_the_field_and_stores_nothing(
    admin_client: tuple[FlaskClient, str], body: dict, status: int, field: str
) -> None:
    client, token = admin_client
    create_room(client, token, "vorhanden")
    before = client.get("/api/v1/rooms").get_json()
    response = client.post("/api/v1/rooms", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == status
    payload = response.get_json()
    assert payload["field"] == field
    assert payload["error"].startswith(field)
    assert client.get("/api/v1/rooms").get_json() == before


def test_body_must_be_json_object(admin_client: tuple[FlaskClient, str]) -> None:
    client, token = admin_client
    response = client.post(
        "/api/v1/rooms",
        data="[1,2]",
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400
    assert response.get_json()["field"] == "body"


def test_unknown_room_is_404(staff_client: tuple[FlaskClient, str]) -> None:
    client, token = staff_client
    assert client.get("/api/v1/rooms/gibt-es-nicht").status_code == 404
    response = client.post("/api/v1/rooms/gibt-es-nicht/checkin", headers={"X-CSRFToken": token})
    assert response.status_code == 404
    assert response.get_json()["field"] == "room"


def test_admin_form_rejects_impossible_schedule_and_keeps_room(
    admin_client: tuple[FlaskClient, str],
) -> None:
    client, token = admin_client
    create_room(client, token, "raum", name="Raum A")
    response = client.post(
        "/admin/rooms/raum",
        data={
            "name": "Raum B",
            "kind": "meeting",
            "policy": "open",
            "enabled": "on",
            "hours_thu": "16:00-09:00",
            "csrf_token": token,
        },
    )
    assert response.status_code == 422
    assert "Der Zeitraum „16:00-09:00“ endet, bevor er beginnt." in response.get_data(as_text=True)
    assert client.get("/api/v1/rooms/raum").get_json()["name"] == "Raum A"


def test_admin_form_escapes_html_in_names(admin_client: tuple[FlaskClient, str]) -> None:
    client, token = admin_client
    response = client.post(
        "/admin/rooms/new",
        data={
            "slug": "xss",
            "name": "<script>alert(1)</script>",
            "kind": "meeting",
            "policy": "open",
            "enabled": "on",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    html = client.get("/rooms").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_admin_manages_accounts(admin_client: tuple[FlaskClient, str], app: Flask) -> None:
    client, token = admin_client
    created = client.post(
        "/admin/users",
        data={"username": "neu", "display_name": "Neue Kollegin", "csrf_token": token},
    )
    assert created.status_code == 200
    html = created.get_data(as_text=True)
    password = html.split('id="password">')[1].split("<")[0]
    assert len(password) >= 12
    other = app.test_client()
    log_in(other, Account("neu", password))
    assert other.get("/rooms").status_code == 200
    duplicate = client.post("/admin/users", data={"username": "neu", "csrf_token": token})
    assert duplicate.status_code == 409
    assert "Der Benutzername „neu“ ist schon vergeben." in duplicate.get_data(as_text=True)


def test_admin_cannot_lock_themselves_out(
    admin_client: tuple[FlaskClient, str], runtime: HubRuntime
) -> None:
    client, token = admin_client
    with runtime.sessions() as db:
        me = next(u for u in runtime.users.list_users(db) if u.username == "chefin")
    response = client.post(
        f"/admin/users/{me.id}", data={"display_name": "Chefin", "csrf_token": token}
    )
    assert response.status_code == 409
    assert client.get("/admin/users").status_code == 200


def test_password_reset_ends_old_sessions(
    admin_client: tuple[FlaskClient, str],
    staff_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
) -> None:
    staff, _ = staff_client
    admin, token = admin_client
    with runtime.sessions() as db:
        erika = next(u for u in runtime.users.list_users(db) if u.username == "erika")
    response = admin.post(f"/admin/users/{erika.id}/password", data={"csrf_token": token})
    assert response.status_code == 200
    assert staff.get("/rooms").status_code == 302


def test_room_in_use_cannot_be_deleted(
    admin_client: tuple[FlaskClient, str], staff_client: tuple[FlaskClient, str]
) -> None:
    admin, token = admin_client
    create_room(admin, token, "raum")
    staff, staff_token = staff_client
    staff.post("/api/v1/rooms/raum/checkin", headers={"X-CSRFToken": staff_token})
    response = admin.delete("/api/v1/rooms/raum", headers={"X-CSRFToken": token})
    assert response.status_code == 409
    assert admin.get("/api/v1/rooms/raum").status_code == 200
