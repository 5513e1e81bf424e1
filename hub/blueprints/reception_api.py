"""The citizen side of the reception as JSON plus a live channel, for kiosks and apps."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask_babel import get_locale

from hub import schemas
from hub.apispec import body, given, operation
from hub.auth import client_address
from hub.blueprints.reception import stream_ticket
from hub.db import get_db
from hub.errors import NotFound
from hub.live_socket import live_route
from hub.runtime import current_runtime
from hub.ticket_view import ticket_view
from hub.validation import slug
from protocol.payloads import format_time

bp = Blueprint("reception_api", __name__, url_prefix="/api/v1/reception")


@bp.get("")
@operation(200, schemas.ReceptionInfo)
def info() -> Any:
    """Open or closed, waiting count, estimate and the concern categories."""
    runtime = current_runtime()
    db = get_db()
    state = runtime.reception.info(db)
    lang = str(get_locale() or "de")
    return jsonify(
        open=state.open,
        configured=state.configured,
        waiting=state.waiting,
        estimate_minutes=state.estimate_minutes,
        next_opening=format_time(state.next_opening) if state.next_opening else None,
        categories=[
            {"slug": c.slug, "name": c.name(lang), "department": c.department.slug}
            for c in runtime.reception.categories(db)
        ],
    )


@bp.post("/tickets")
@operation(201, schemas.NewTicketView, json=schemas.NewTicket, errors=(409, 422, 429))
def create_ticket() -> Any:
    """Take a ticket; the answer holds the secret token that every later call needs.

    Needs Content-Type application/json (no CSRF token: a cross-site form cannot send
    JSON). `device` marks a kiosk as the ticket's source. Rate-limited per address.
    """
    data = given(body())
    device = data.get("device")
    source = slug(device, "device") if device is not None else "web"
    runtime = current_runtime()
    new = runtime.reception.create(
        get_db(),
        name=data.get("name"),
        category=data.get("category"),
        description=data.get("description"),
        consent=data.get("consent"),
        language=data.get("language", "de"),
        source=source,
        # Always by address: a made-up device id must not lift the limit.
        rate_key=f"addr:{client_address()}",
    )
    view = ticket_view(runtime.reception, get_db(), new.ticket)
    return jsonify(token=new.token, **view), 201


def _ticket(token: str) -> Any:
    return current_runtime().reception.by_token(get_db(), token)


@bp.get("/tickets/<token>")
@operation(200, schemas.TicketView, errors=(404,))
def get_ticket(token: str) -> Any:
    """The ticket's status, position, estimate and messages."""
    ticket = _ticket(token)
    return jsonify(ticket_view(current_runtime().reception, get_db(), ticket))


@bp.delete("/tickets/<token>")
@operation(200, schemas.TicketView, errors=(404, 409))
def leave(token: str) -> Any:
    """Leave the queue."""
    ticket = _ticket(token)
    current_runtime().reception.leave(get_db(), ticket)
    return jsonify(ticket_view(current_runtime().reception, get_db(), ticket))


@live_route(bp, "/tickets/<token>/live")
def live(ws: Any, token: str) -> None:
    """Live updates of one ticket as JSON messages of type "ticket"."""
    try:
        stream_ticket(ws, token)
    except NotFound:
        ws.close(reason=1008, message="no such ticket")
