"""What a citizen may see of their own ticket (pages, live channel and kiosk API share it)."""

from __future__ import annotations

import json
from typing import Any

from flask_babel import gettext as _
from sqlalchemy.orm import Session

from hub.models import Ticket
from hub.services.reception import Place, ReceptionService
from protocol.payloads import format_time


def forwarded_to(ticket: Ticket) -> str | None:
    """Where a forwarded citizen waits now, in words (None when never forwarded)."""
    hops = json.loads(ticket.path)
    if len(hops) < 2:
        return None
    if ticket.assigned_user is not None:
        return _("zu %(name)s", name=ticket.assigned_user.display_name)
    if ticket.department is not None:
        return _("zum Fachbereich %(name)s", name=ticket.department.name)
    return _("an eine andere Stelle")


def ticket_view(
    reception: ReceptionService, db: Session, ticket: Ticket, place: Place | None = None
) -> dict[str, Any]:
    """The citizen's view of their ticket; never other citizens' data."""
    if place is None and ticket.status == "waiting":
        place = reception.place_of(db, ticket)
    view: dict[str, Any] = {
        "ticket": ticket.public_id,
        "status": ticket.status,
        "language": ticket.language,
        "position": place.position if place else None,
        "estimate_minutes": place.estimate_minutes if place else None,
        "next": bool(place and place.position == 1),
        "forwarded_to": forwarded_to(ticket),
        "messages": [{"at": format_time(m.at), "text": m.text} for m in ticket.messages],
        "room": None,
        "staff": None,
        "outcome": ticket.outcome,
    }
    if ticket.status == "serving" and ticket.room is not None:
        view["room"] = {"slug": ticket.room.slug, "name": ticket.room.name}
        view["staff"] = ticket.served_by.display_name if ticket.served_by else None
    return view
