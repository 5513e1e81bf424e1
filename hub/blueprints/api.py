"""The JSON API under /api/v1: rooms, their status and staff state changes."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify
from flask_wtf.csrf import generate_csrf

from hub import schemas
from hub.apispec import STAFF, body, document, given, operation
from hub.auth import admin_required, login_required
from hub.db import get_db
from hub.models import Room
from hub.runtime import HubRuntime, current_runtime
from hub.schedule import Schedule, schedule_from_api, schedule_to_api
from protocol.errors import PayloadError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def room_json(runtime: HubRuntime, room: Room) -> dict[str, Any]:
    """A room's settings and its current published status."""
    return {
        "slug": room.slug,
        "name": room.name,
        "kind": room.kind,
        "policy": room.policy,
        "department": room.department.slug if room.department else None,
        "enabled": room.enabled,
        "dnd": room.dnd,
        "open": runtime.rooms.is_open(room),
        "opening_hours": schedule_to_api(Schedule.from_json(room.schedule_json)),
        "status": _status(runtime, room),
    }


def _status(runtime: HubRuntime, room: Room) -> dict[str, Any] | None:
    if not room.state:
        return None
    try:
        return runtime.rooms.status_of(room).to_dict()
    except PayloadError:  # a name stored before the text rule held: no status to show
        return None


@bp.get("/openapi.json")
def openapi() -> Any:
    """The OpenAPI 3 description of this API."""
    return jsonify(document(current_runtime().version))


@bp.get("/session")
@operation(200, schemas.SessionBody)
def session_info() -> Any:
    """Who is logged in, and the CSRF token that state-changing calls must send."""
    user = g.user
    return jsonify(
        user=None
        if user is None
        else {
            "username": user.username,
            "display_name": user.display_name,
            "is_admin": user.is_admin,
        },
        csrf_token=generate_csrf(),
    )


@bp.get("/rooms")
@operation(200, schemas.RoomList)
def list_rooms() -> Any:
    """Every room with its status (no personal data: states and counts only)."""
    runtime = current_runtime()
    return jsonify(rooms=[room_json(runtime, r) for r in runtime.rooms.list_rooms(get_db())])


@bp.get("/rooms/<slug>")
@operation(200, schemas.RoomBody, errors=(404,))
def get_room(slug: str) -> Any:
    """One room with its status."""
    runtime = current_runtime()
    return jsonify(room_json(runtime, runtime.rooms.get(get_db(), slug)))


def _room_input(data: dict[str, Any]) -> Any:
    service = current_runtime().rooms
    return service.parse_input(data, schedule_from_api(data.get("opening_hours")))


@bp.post("/rooms")
@admin_required
@operation(201, schemas.RoomBody, json=schemas.NewRoom, errors=(401, 403, 409, 422), security=STAFF)
def create_room() -> Any:
    """Create a room (admins)."""
    data = given(body())
    runtime = current_runtime()
    status = runtime.rooms.create(get_db(), data.get("slug", ""), _room_input(data))
    return jsonify(room_json(runtime, runtime.rooms.get(get_db(), status.room))), 201


@bp.patch("/rooms/<slug>")
@admin_required
@operation(
    200, schemas.RoomBody, json=schemas.RoomChange, errors=(401, 403, 404, 422), security=STAFF
)
def update_room(slug: str) -> Any:
    """Change a room's settings (admins); fields left out keep their value."""
    runtime = current_runtime()
    db = get_db()
    room = runtime.rooms.get(db, slug)
    current = room_json(runtime, room)
    merged = {key: current[key] for key in ("name", "kind", "policy", "department", "enabled")}
    merged["opening_hours"] = current["opening_hours"]
    merged.update(given(body()))
    runtime.rooms.update(db, slug, _room_input(merged))
    return jsonify(room_json(runtime, runtime.rooms.get(db, slug)))


@bp.delete("/rooms/<slug>")
@admin_required
@operation(204, None, errors=(401, 403, 404, 409), security=STAFF)
def delete_room(slug: str) -> Any:
    """Delete a room (admins)."""
    current_runtime().rooms.delete(get_db(), slug)
    return "", 204


@bp.post("/rooms/<slug>/checkin")
@login_required
@operation(200, schemas.RoomStatusBody, errors=(401, 404, 409), security=STAFF)
def check_in(slug: str) -> Any:
    """Check the caller in to the room."""
    status = current_runtime().rooms.check_in(get_db(), slug, g.user)
    return jsonify(status.to_dict())


@bp.post("/rooms/<slug>/checkout")
@login_required
@operation(200, schemas.RoomStatusBody, errors=(401, 404, 409), security=STAFF)
def check_out(slug: str) -> Any:
    """Check the caller out of the room."""
    status = current_runtime().rooms.check_out(get_db(), slug, g.user)
    return jsonify(status.to_dict())


@bp.put("/rooms/<slug>/dnd")
@login_required
@operation(
    200, schemas.RoomStatusBody, json=schemas.DndChange, errors=(401, 404, 409), security=STAFF
)
def set_dnd(slug: str) -> Any:
    """Set or clear do-not-disturb: body {"dnd": true|false}."""
    status = current_runtime().rooms.set_dnd(get_db(), slug, body().dnd)
    return jsonify(status.to_dict())


@bp.put("/rooms/<slug>/enabled")
@admin_required
@operation(
    200,
    schemas.RoomStatusBody,
    json=schemas.EnabledChange,
    errors=(401, 403, 404, 409),
    security=STAFF,
)
def set_enabled(slug: str) -> Any:
    """Switch a room on or off (admins): body {"enabled": true|false}."""
    status = current_runtime().rooms.set_enabled(get_db(), slug, body().enabled)
    return jsonify(status.to_dict())
