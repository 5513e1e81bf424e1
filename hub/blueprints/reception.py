"""The citizen side of the virtual reception: enter, register, wait, leave."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from hub.auth import client_address, same_origin
from hub.db import get_db, session_scope
from hub.errors import NotFound, ServiceError
from hub.live_socket import Channel, live_route, serve
from hub.queue_feed import ticket_topic
from hub.runtime import HubRuntime, current_runtime
from hub.services.reception import MAX_DESCRIPTION, MAX_NAME, Place
from hub.ticket_view import ticket_view

bp = Blueprint("reception", __name__, url_prefix="/empfang")
TICKET_COOKIE = "empfang_ticket"


def friendly_error(exc: ServiceError) -> str:
    """A citizen-facing message for a refused form, in the page's language."""
    messages = {
        "name": _(
            "Bitte geben Sie einen Namen oder ein Kürzel an (höchstens %(n)d Zeichen).", n=MAX_NAME
        ),
        "description": _(
            "Bitte beschreiben Sie Ihr Anliegen in höchstens %(n)d Zeichen.", n=MAX_DESCRIPTION
        ),
        "category": _("Bitte wählen Sie ein Anliegen aus der Liste."),
        "consent": _("Bitte bestätigen Sie den Datenschutzhinweis."),
        "reception": _("Der Empfang ist gerade geschlossen."),
        "language": _("Bitte wählen Sie eine Sprache."),
    }
    if exc.status == 429:
        return _(
            "Von Ihrem Anschluss kamen gerade sehr viele Anmeldungen. "
            "Bitte versuchen Sie es in einigen Minuten noch einmal."
        )
    return messages.get(exc.field or "", _("Die Eingabe konnte nicht verarbeitet werden."))


def _language() -> str:
    return str(get_locale() or "de")


def _privacy_notice() -> str:
    settings = current_runtime().settings
    custom = settings.privacy_notice_en if _language() == "en" else settings.privacy_notice_de
    return custom or _(
        "Wir verwenden Ihren Namen und Ihre Beschreibung nur, um Ihr Anliegen zu bearbeiten. "
        "Das Gespräch wird nicht aufgezeichnet. Chat und Dokumente werden am Ende des "
        "Gesprächs gelöscht; Name und Beschreibung 24 Stunden nach dem Ende. Für die "
        "Statistik bleiben nur Zeiten, Anliegen und Ergebnis, ohne Bezug zu Ihrer Person."
    )


def _current_ticket_token() -> str | None:
    token = request.cookies.get(TICKET_COOKIE)
    if not token:
        return None
    try:
        ticket = current_runtime().reception.by_token(get_db(), token)
    except NotFound:
        return None
    return token if ticket.status != "ended" else None


@bp.get("/")
def landing() -> Any:
    """Open or closed, people waiting, an estimate, and the registration form."""
    return _landing(None, None, 200)


def _landing(form: dict[str, str] | None, error: str | None, status: int) -> Any:
    runtime = current_runtime()
    db = get_db()
    info = runtime.reception.info(db)
    return render_template(
        "reception/landing.html",
        info=info,
        categories=runtime.reception.categories(db),
        form=form or {},
        error=error,
        lang=_language(),
        privacy=_privacy_notice(),
        resume=_current_ticket_token(),
        zone=runtime.settings.zone,
    ), status


@bp.post("/")
def register() -> Any:
    """Take a ticket and go to the waiting page."""
    runtime = current_runtime()
    form = request.form.to_dict()
    try:
        new = runtime.reception.create(
            get_db(),
            name=form.get("name"),
            category=form.get("category"),
            description=form.get("description"),
            consent=form.get("consent"),
            language=_language(),
            source="web",
            rate_key=f"addr:{client_address()}",
        )
    except ServiceError as exc:
        get_db().rollback()
        return _landing(form, friendly_error(exc), exc.status)
    response = make_response(redirect(url_for("reception.waiting", token=new.token)))
    response.set_cookie(
        TICKET_COOKIE,
        new.token,
        max_age=24 * 3600,
        httponly=True,
        samesite="Lax",
        path="/empfang",
        secure=request.is_secure,
    )
    return response


@bp.get("/datenschutz")
def privacy() -> Any:
    """The privacy notice on its own page."""
    return render_template("reception/privacy.html", privacy=_privacy_notice())


@bp.get("/t/<token>")
def waiting(token: str) -> Any:
    """The waiting page: live position, estimate, messages, leave."""
    runtime = current_runtime()
    db = get_db()
    try:
        ticket = runtime.reception.by_token(db, token)
    except NotFound:
        return render_template("reception/unknown.html"), 404
    view = ticket_view(runtime.reception, db, ticket)
    response = make_response(
        render_template("reception/waiting.html", token=token, view=view, ticket=ticket)
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the address holds the token
    return response


@bp.post("/t/<token>/leave")
def leave(token: str) -> Any:
    """Leave the queue."""
    runtime = current_runtime()
    db = get_db()
    try:
        ticket = runtime.reception.by_token(db, token)
    except NotFound:
        return render_template("reception/unknown.html"), 404
    runtime.reception.leave(db, ticket)
    response = make_response(render_template("reception/goodbye.html", left=True))
    response.delete_cookie(TICKET_COOKIE, path="/empfang")
    return response


@bp.before_request
def _refuse_foreign_live() -> Any:
    if request.endpoint == "reception.live" and not same_origin():
        abort(403)
    return None


def stream_ticket(ws: Any, token: str) -> None:
    """Push a citizen's ticket view whenever it changed; the channel is read-only."""
    runtime = current_runtime()
    with session_scope(runtime.sessions) as db:
        public_id = runtime.reception.by_token(db, token).public_id
    last: dict[str, Any] = {}

    def snapshot() -> dict[str, Any]:
        last["view"] = _fresh_view(runtime, token, None)
        return {"type": "ticket", **last["view"]}

    def shape(event: dict[str, Any]) -> dict[str, Any] | None:
        view = _next_view(runtime, token, last["view"], event)
        if view == last["view"]:
            return None
        last["view"] = view
        return {"type": "ticket", **view}

    channel = Channel(topics=[ticket_topic(public_id)], snapshot=snapshot, shape=shape, wait=1.0)
    serve(ws, runtime, channel)


def _next_view(
    runtime: HubRuntime, token: str, last: dict[str, Any], event: dict[str, Any]
) -> dict[str, Any]:
    if event.get("own"):
        return _fresh_view(runtime, token, event.get("place"))
    place = event.get("place")
    if place is None or last["status"] != "waiting":
        return last  # a move in the queue changes nothing for a citizen not waiting
    position, estimate = place
    return {**last, "position": position, "estimate_minutes": estimate, "next": position == 1}


def _fresh_view(runtime: HubRuntime, token: str, place: list[Any] | None) -> dict[str, Any]:
    """The ticket as stored now; `place` saves the position query when the event has it."""
    with session_scope(runtime.sessions) as db:
        ticket = runtime.reception.by_token(db, token)
        known = Place(place[0], place[1]) if place and ticket.status == "waiting" else None
        return ticket_view(runtime.reception, db, ticket, known)


@live_route(bp, "/t/<token>/live")
def live(ws: Any, token: str) -> None:
    """The waiting page's live channel."""
    try:
        stream_ticket(ws, token)
    except NotFound:
        ws.close(reason=1008, message="no such ticket")
