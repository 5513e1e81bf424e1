"""The staff room board: every room's live state, check-in and do-not-disturb."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from hub.auth import login_required, same_origin
from hub.db import get_db, session_scope
from hub.live import RESYNC
from hub.models import User
from hub.runtime import ROOMS_TOPIC, HubRuntime, staff_topic
from hub.validation import flag

bp = Blueprint("rooms", __name__)
ACCOUNT_RECHECK = 60.0  # seconds between checks that a streaming account is still allowed
sock = Sock()


def _runtime() -> HubRuntime:
    return current_app.extensions["empfang"]


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
    runtime = _runtime()
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
    _runtime().rooms.check_in(get_db(), slug, g.user)
    return redirect(url_for("rooms.board") + f"#room-{slug}")


@bp.post("/rooms/<slug>/checkout")
@login_required
def check_out(slug: str) -> Any:
    """Check the current staff member out of a room."""
    _runtime().rooms.check_out(get_db(), slug, g.user)
    return redirect(url_for("rooms.board") + f"#room-{slug}")


@bp.post("/rooms/<slug>/dnd")
@login_required
def dnd(slug: str) -> Any:
    """Set or clear do-not-disturb on a room."""
    on = flag(request.form.get("dnd"), "dnd")
    _runtime().rooms.set_dnd(get_db(), slug, on)
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


def _still_allowed(runtime: HubRuntime, user_id: int, fingerprint: str | None) -> bool:
    with session_scope(runtime.sessions) as db:
        user = db.get(User, user_id)
        return bool(user and not user.disabled and user.password_hash[-16:] == fingerprint)


def _mine(runtime: HubRuntime, user_id: int) -> list[str]:
    with session_scope(runtime.sessions) as db:
        return sorted(runtime.rooms.checked_in_rooms_of(db, user_id))


@sock.route("/rooms/live", bp=bp)
def live(ws: Any) -> None:
    """Push every room status change to a staff page as JSON."""
    runtime = _runtime()
    user_id, fingerprint = g.user.id, session.get("pw")
    request_db = g.pop("db", None)
    if request_db is not None:
        request_db.close()  # a long-lived stream must not hold a database connection
    with runtime.live.subscribe(ROOMS_TOPIC, staff_topic(user_id)) as sub:
        ws.send(json.dumps({**room_snapshot(runtime), "mine": _mine(runtime, user_id)}))
        last_check = time.monotonic()
        while ws.connected:
            event = sub.get(timeout=5)
            if time.monotonic() - last_check > ACCOUNT_RECHECK:
                if not _still_allowed(runtime, user_id, fingerprint):
                    ws.close(reason=1008, message="login required")
                    return
                last_check = time.monotonic()
            if event is None:
                continue
            if event is RESYNC:
                payload = {**room_snapshot(runtime), "mine": _mine(runtime, user_id)}
            elif event["type"] == "brought":
                payload = _brought_event(runtime, user_id)
            elif event["type"] == "room":
                # Whether this staff member is in the room is theirs alone, never on MQTT.
                payload = {**event, "mine": _mine(runtime, user_id)}
            else:
                payload = event
            try:
                ws.send(json.dumps(payload))
            except ConnectionClosed:
                break
