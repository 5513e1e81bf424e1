"""The staff room board: every room's live state, check-in and do-not-disturb."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from hub.auth import login_required, same_origin
from hub.db import get_db, session_scope
from hub.live_socket import Account, Channel, live_route, serve
from hub.models import User
from hub.runtime import ROOMS_TOPIC, HubRuntime, current_runtime, staff_topic
from hub.validation import flag

bp = Blueprint("rooms", __name__)


def room_snapshot(runtime: HubRuntime) -> dict[str, Any]:
    """Every room's last published status, for a page that (re)connects."""
    with session_scope(runtime.sessions) as db:
        statuses = [
            runtime.rooms.status_of(room).to_dict()
            for room in runtime.rooms.list_rooms(db)
            if room.state
        ]
    return {"type": "snapshot", "rooms": statuses}


@bp.get("/rooms")
@login_required
def board() -> Any:
    """The room board."""
    runtime = current_runtime()
    db = get_db()
    rooms = runtime.rooms.list_rooms(db)
    now = runtime.clock.now()
    return render_template(
        "rooms/board.html",
        rooms=rooms,
        statuses={room.slug: runtime.rooms.status_of(room, now) for room in rooms if room.state},
        mine=runtime.rooms.checked_in_rooms(db, g.user),
        zone=runtime.settings.timezone,
        brought=brought_calls(runtime, db, g.user),
    )


def brought_calls(runtime: HubRuntime, db: Any, user: User) -> list[dict[str, str]]:
    """Conversations a host brought this staff member into, with where to join."""
    return [
        {
            "session": call.public_id,
            "room": call.room.name if call.room else "",
            "join": url_for("calls.join_session", session_id=call.public_id),
        }
        for call in runtime.calls.brought_in(db, user)
    ]


def _brought_event(runtime: HubRuntime, user_id: int) -> dict[str, Any]:
    with session_scope(runtime.sessions) as db:
        user = db.get(User, user_id)
        calls = brought_calls(runtime, db, user) if user is not None else []
    return {"type": "brought", "calls": calls}


@bp.post("/rooms/<slug>/checkin")
@login_required
def check_in(slug: str) -> Any:
    """Check the current staff member in to a room."""
    current_runtime().rooms.check_in(get_db(), slug, g.user)
    return redirect(url_for("rooms.board") + f"#room-{slug}")


@bp.post("/rooms/<slug>/checkout")
@login_required
def check_out(slug: str) -> Any:
    """Check the current staff member out of a room."""
    current_runtime().rooms.check_out(get_db(), slug, g.user)
    return redirect(url_for("rooms.board") + f"#room-{slug}")


@bp.post("/rooms/<slug>/dnd")
@login_required
def dnd(slug: str) -> Any:
    """Set or clear do-not-disturb on a room."""
    on = flag(request.form.get("dnd"), "dnd")
    current_runtime().rooms.set_dnd(get_db(), slug, on)
    flash(_("Bitte nicht stören ist an.") if on else _("Bitte nicht stören ist aus."))
    return redirect(url_for("rooms.board") + f"#room-{slug}")


@bp.before_request
def _refuse_live_without_login() -> Any:
    # Refuse before the WebSocket upgrade, so the page sees a failed connection, not an open one.
    if request.endpoint == "rooms.live":
        if g.user is None:
            abort(401)
        if not same_origin():
            abort(403)
    return None


def _mine(runtime: HubRuntime, user_id: int) -> list[str]:
    with session_scope(runtime.sessions) as db:
        return sorted(runtime.rooms.checked_in_rooms_of(db, user_id))


@live_route(bp, "/rooms/live")
def live(ws: Any) -> None:
    """Push every room status change to a staff page as JSON.

    Whether this staff member is in a room is theirs alone, never on MQTT: it comes as a
    "mine" event on their own live topic whenever their presences change.
    """
    runtime = current_runtime()
    user_id = g.user.id

    def shape(event: dict[str, Any]) -> dict[str, Any]:
        if event["type"] == "brought":
            return _brought_event(runtime, user_id)
        if event["type"] == "mine":
            return {"type": "mine", "mine": _mine(runtime, user_id)}
        return event

    channel = Channel(
        topics=[ROOMS_TOPIC, staff_topic(user_id)],
        snapshot=lambda: {**room_snapshot(runtime), "mine": _mine(runtime, user_id)},
        shape=shape,
        account=Account.current(),
    )
    serve(ws, runtime, channel)
