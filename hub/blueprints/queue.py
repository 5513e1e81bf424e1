"""The staff queue: who waits, and admit, forward, return, end and message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import schemas
from hub.apispec import STAFF, STAFF_READ, body, given, operation
from hub.auth import login_required, same_origin
from hub.blueprints.calls import remember as remember_call
from hub.db import get_db, session_scope
from hub.errors import ServiceError
from hub.live_socket import Account, Channel, Refused, live_route, serve
from hub.models import Department, Ticket, User
from hub.queue_feed import QUEUE_TOPIC
from hub.runtime import HubRuntime, current_runtime
from hub.ticket_view import forwarded_to

bp = Blueprint("queue", __name__)


def ticket_json(ticket: Ticket, now: Any) -> dict[str, Any]:
    """A waiting or served ticket as staff see it."""
    return {
        "ticket": ticket.public_id,
        "status": ticket.status,
        "name": ticket.name,
        "category": ticket.category.name("de") if ticket.category else ticket.category_slug,
        "description": ticket.description,
        "source": ticket.source,
        "arrived_at": ticket.arrived_at.isoformat(),
        "waiting_seconds": int((now - ticket.arrived_at).total_seconds()),
        "department": ticket.department.slug if ticket.department else None,
        "forward_note": ticket.forward_note,
        "room": ticket.room.slug if ticket.room else None,
    }


def _context(db: Session, user: User) -> dict[str, Any]:
    runtime = current_runtime()
    service = runtime.reception
    return {
        "waiting": service.queue_for(db, user),
        "serving": service.serving_for(db, user),
        "rooms": service.rooms_for_admission(db, user),
        "departments": list(db.scalars(select(Department).order_by(Department.name))),
        "colleagues": list(
            db.scalars(
                select(User)
                .where(User.disabled.is_(False), User.id != user.id)
                .order_by(User.display_name)
            )
        ),
        "now": runtime.clock.now(),
        "forwarded_to": forwarded_to,
        "lang": str(get_locale() or "de"),
    }


@bp.get("/staff/queue")
@login_required
def page() -> Any:
    """The live queue of the staff member's departments and personal forwards."""
    return render_template("staff/queue.html", **_context(get_db(), g.user))


def _act(public_id: str, action: str, form: Mapping[str, Any]) -> Ticket:
    service = current_runtime().reception
    db, user = get_db(), g.user
    if action == "admit":
        return service.admit(db, public_id, user, form.get("room") or None)
    if action == "forward":
        return service.forward(
            db,
            public_id,
            user,
            department=form.get("department") or None,
            colleague=form.get("colleague") or None,
            note=form.get("note"),
        )
    if action == "return":
        return service.return_to_lobby(db, public_id, user)
    if action == "end":
        return service.end(db, public_id, user, form.get("outcome"))
    if action == "message":
        service.message(db, public_id, user, form.get("text"))
        return service.by_public_id(db, public_id)
    abort(404)


ACTIONS = ("admit", "forward", "return", "end", "message")


def _done(action: str) -> str:
    return {
        "admit": _("Eingelassen."),
        "forward": _("Weitergeleitet."),
        "return": _("Zurück im Wartebereich."),
        "end": _("Besuch beendet."),
        "message": _("Nachricht gesendet."),
    }[action]


@bp.post("/staff/queue/<public_id>/<action>")
@login_required
def act(public_id: str, action: str) -> Any:
    """Perform a queue action from the staff page's forms."""
    if action not in ACTIONS:
        abort(404)
    try:
        ticket = _act(public_id, action, request.form)
        if action == "admit":  # admitting opens the call at once
            runtime = current_runtime()
            return remember_call(runtime.calls.join_ticket_as_host(get_db(), ticket, g.user))
    except ServiceError as exc:
        get_db().rollback()
        flash(queue_error(exc))
        return redirect(url_for("queue.page")), 303
    flash(_done(action))
    return redirect(url_for("queue.page"))


def queue_error(exc: ServiceError) -> str:
    """A staff-facing explanation of a refused queue action, in the page's language."""
    by_field = {
        "room": _(
            "Der gewählte Raum ist nicht frei (geschlossen, belegt oder „Bitte nicht "
            "stören“). Bitte wählen Sie einen anderen Raum."
        ),
        "ticket": _(
            "Dieser Besuch hat sich inzwischen geändert (eingelassen, weitergeleitet "
            "oder beendet). Die Liste ist aktualisiert."
        ),
        "target": _(
            "Bitte wählen Sie entweder einen Fachbereich oder eine Kollegin bzw. einen Kollegen."
        ),
        "department": _("Diesen Fachbereich gibt es nicht."),
        "colleague": _("Diese Kollegin oder diesen Kollegen gibt es nicht."),
        "note": _("Die Notiz ist zu lang (höchstens 500 Zeichen)."),
        "text": _("Die Nachricht ist leer oder zu lang (höchstens 300 Zeichen)."),
        "outcome": _("Bitte wählen Sie ein Ergebnis."),
    }
    if exc.status == 403:
        return _(
            "Diese Aktion steht Ihnen für diesen Besuch nicht zu (andere Warteschlange "
            "oder eine Kollegin bzw. ein Kollege betreut ihn)."
        )
    return by_field.get(exc.field or "", _("Die Aktion war nicht möglich."))


@bp.get("/api/v1/queue")
@login_required
@operation(200, schemas.QueueLists, errors=(401,), security=STAFF_READ)
def api_list() -> Any:
    """Waiting and served tickets of the caller's queues."""
    db, now = get_db(), current_runtime().clock.now()
    service = current_runtime().reception
    return jsonify(
        waiting=[ticket_json(t, now) for t in service.queue_for(db, g.user)],
        serving=[ticket_json(t, now) for t in service.serving_for(db, g.user)],
    )


@bp.post(f"/api/v1/queue/<public_id>/<any({', '.join(ACTIONS)}):action>")
@login_required
@operation(
    200,
    schemas.QueueTicket,
    json=schemas.QueueAction,
    errors=(401, 403, 404, 409, 422),
    security=STAFF,
)
def api_act(public_id: str, action: str) -> Any:
    """Staff action on a ticket: admit {room}, forward {department | colleague, note},
    return, end {outcome}, message {text}."""
    ticket = _act(public_id, action, given(body()))
    return jsonify(ticket_json(ticket, current_runtime().clock.now()))


@bp.before_request
def _refuse_live_without_login() -> Any:
    if request.endpoint == "queue.live":
        if g.user is None:
            abort(401)
        if not same_origin():
            abort(403)
    return None


def _render_list(runtime: HubRuntime, user_id: int) -> dict[str, Any]:
    with session_scope(runtime.sessions) as db:
        user = db.get(User, user_id)
        if user is None or user.disabled:
            raise Refused
        context = _context(db, user)
        return {
            "type": "queue",
            "waiting": [t.public_id for t in context["waiting"]],
            "names": {t.public_id: t.name for t in context["waiting"]},
            "html": render_template("staff/_queue_lists.html", **context),
        }


@live_route(bp, "/staff/queue/live")
def live(ws: Any) -> None:
    """Push the rendered queue whenever any ticket changed, in any hub process.

    Waiting times tick on the page itself; the list is rendered again only on changes.
    """
    runtime = current_runtime()
    user_id = g.user.id
    channel = Channel(
        topics=[QUEUE_TOPIC],
        snapshot=lambda: _render_list(runtime, user_id),
        shape=lambda _event: _render_list(runtime, user_id),
        account=Account.current(),
        wait=2.0,
    )
    serve(ws, runtime, channel)
