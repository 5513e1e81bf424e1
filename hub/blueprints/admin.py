"""Admin pages: rooms (with opening hours), departments and staff accounts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from hub import validation
from hub.auth import admin_required
from hub.db import get_db
from hub.errors import ServiceError
from hub.models import ROOM_KINDS, ROOM_POLICIES, Department, Room
from hub.runtime import current_runtime
from hub.schedule import WEEKDAYS, Schedule, schedule_from_form
from hub.stats import report, tickets_since, to_csv
from hub.svgchart import bar_chart

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _departments() -> list[Department]:
    return current_runtime().departments.list_departments(get_db())


def _weekday_names() -> tuple[str, ...]:
    return (
        _("Montag"),
        _("Dienstag"),
        _("Mittwoch"),
        _("Donnerstag"),
        _("Freitag"),
        _("Samstag"),
        _("Sonntag"),
    )


def _field_label(field: str) -> str:
    """The name an admin sees for a form field, in the page's language."""
    if field.startswith("hours_") and field[6:] in WEEKDAYS:
        return _weekday_names()[WEEKDAYS.index(field[6:])]
    labels = {
        "name": _("Name"),
        "slug": _("Kennung"),
        "kind": _("Art"),
        "policy": _("Zutritt für Gäste"),
        "department": _("Fachbereich"),
        "enabled": _("Eingeschaltet"),
        "closed_days": _("Geschlossene Tage"),
        "username": _("Benutzername"),
        "display_name": _("Anzeigename"),
        "password": _("Passwort"),
        "is_admin": _("Admin"),
    }
    return labels.get(field, field)


_QUOTED = re.compile(r"""(['"])(.*?)\1""")
_NUMBER = re.compile(r"\d+")


def admin_error(exc: ServiceError) -> str:
    """An admin-facing message for a refused form field, in the page's language.

    The services explain refusals in English for programs (the JSON API); the admin
    pages show the same reason translated, naming the field and quoting the input.
    """
    field, message = exc.field or "", exc.message
    label = _field_label(field)
    quoted = _QUOTED.search(message)
    value = quoted[2] if quoted else ""
    number_match = _NUMBER.search(message)
    number = int(number_match[0]) if number_match else 0
    if value and message.endswith("ends before it starts"):
        return _("Der Zeitraum „%(range)s“ endet, bevor er beginnt.", range=value)
    if value and message.endswith("is not a valid time range"):
        return _("„%(range)s“ enthält keine gültige Uhrzeit (00:00 bis 24:00).", range=value)
    if value and "is not a range like" in message:
        return _("„%(range)s“ ist kein Zeitraum wie 08:00-12:00.", range=value)
    if message == "time ranges overlap":
        return _("Die Zeiträume überschneiden sich.")
    if field.startswith("hours_") and message.startswith("at most") and number:
        return _("Höchstens %(n)d Zeiträume pro Tag.", n=number)
    if value and "is not a date like" in message:
        return _("„%(day)s“ ist kein Datum wie 2026-12-24.", day=value)
    if field == "closed_days" and message.startswith("at most") and number:
        return _("Höchstens %(n)d geschlossene Tage.", n=number)
    if value and field == "username" and message.endswith("is taken"):
        return _("Der Benutzername „%(value)s“ ist schon vergeben.", value=value)
    if value and message.endswith("exists already"):
        return _("Die Kennung „%(value)s“ ist schon vergeben.", value=value)
    if message == "is required":
        return _("Bitte füllen Sie das Feld „%(field)s“ aus.", field=label)
    if message.startswith("must be at most") and number:
        return _("„%(field)s“ darf höchstens %(n)d Zeichen lang sein.", field=label, n=number)
    if message.startswith("must be at least") and number:
        return _("„%(field)s“ muss mindestens %(n)d Zeichen lang sein.", field=label, n=number)
    if "control characters" in message:
        return _("„%(field)s“ darf keine Steuerzeichen enthalten.", field=label)
    if message.startswith("must be 1-64 lower-case"):
        return _(
            "„%(field)s“: bitte 1 bis 64 Kleinbuchstaben, Ziffern oder Bindestriche, "
            "ohne Bindestrich am Anfang oder Ende.",
            field=label,
        )
    if message.startswith(("must be one of", "no department")):
        return _("Bitte wählen Sie bei „%(field)s“ einen Eintrag aus der Liste.", field=label)
    if field:
        return _("Die Eingabe im Feld „%(field)s“ ist ungültig.", field=label)
    return _("Die Eingabe konnte nicht verarbeitet werden.")


def _room_form(room: Room | None, form: dict[str, str], error: ServiceError | None) -> Any:
    return render_template(
        "admin/room_form.html",
        room=room,
        form=form,
        error=error,
        error_message=admin_error(error) if error else "",
        departments=_departments(),
        kinds=ROOM_KINDS,
        policies=ROOM_POLICIES,
        weekdays=list(zip(WEEKDAYS, _weekday_names(), strict=True)),
    ), (error.status if error else 200)


def _form_from_room(room: Room) -> dict[str, str]:
    schedule = Schedule.from_json(room.schedule_json)
    form = {
        "slug": room.slug,
        "name": room.name,
        "kind": room.kind,
        "policy": room.policy,
        "department": room.department.slug if room.department else "",
        "enabled": "on" if room.enabled else "",
        "closed_days": "\n".join(sorted(d.isoformat() for d in schedule.closed_days)),
    }
    form.update({f"hours_{day}": schedule.format_day(day) for day in WEEKDAYS})
    return form


@bp.get("/")
@admin_required
def index() -> Any:
    """Admin start page."""
    return redirect(url_for("admin.rooms"))


@bp.get("/rooms")
@admin_required
def rooms() -> Any:
    """List rooms with their state and switches."""
    runtime = current_runtime()
    all_rooms = runtime.rooms.list_rooms(get_db())
    return render_template(
        "admin/rooms.html",
        rooms=all_rooms,
        statuses={r.slug: runtime.rooms.status_of(r) for r in all_rooms if r.state},
        departments=_departments(),
    )


@bp.route("/rooms/new", methods=["GET", "POST"])
@admin_required
def new_room() -> Any:
    """Create a room."""
    if request.method != "POST":  # GET and HEAD only show the page
        return _room_form(None, {"enabled": "on", "kind": "consultation", "policy": "knock"}, None)
    form = request.form.to_dict()
    service = current_runtime().rooms
    try:
        data = service.parse_input(form, schedule_from_form(form))
        service.create(get_db(), form.get("slug", ""), data)
    except ServiceError as exc:
        get_db().rollback()
        return _room_form(None, form, exc)
    flash(_("Raum „%(name)s“ angelegt.", name=data.name))
    return redirect(url_for("admin.rooms"))


@bp.route("/rooms/<slug>", methods=["GET", "POST"])
@admin_required
def edit_room(slug: str) -> Any:
    """Edit a room's settings and opening hours."""
    service = current_runtime().rooms
    room = service.get(get_db(), slug)
    if request.method != "POST":  # GET and HEAD only show the page
        return _room_form(room, _form_from_room(room), None)
    form = request.form.to_dict()
    form["slug"] = slug
    try:
        data = service.parse_input(form, schedule_from_form(form))
        service.update(get_db(), slug, data)
    except ServiceError as exc:
        get_db().rollback()
        return _room_form(room, form, exc)
    flash(_("Raum „%(name)s“ gespeichert.", name=data.name))
    return redirect(url_for("admin.rooms"))


@bp.post("/rooms/<slug>/enabled")
@admin_required
def set_enabled(slug: str) -> Any:
    """Open (switch on) or close (switch off) a room."""
    on = validation.flag(request.form.get("enabled"), "enabled")
    current_runtime().rooms.set_enabled(get_db(), slug, on)
    flash(_("Raum geöffnet.") if on else _("Raum geschlossen."))
    return redirect(url_for("admin.rooms"))


@bp.post("/rooms/<slug>/delete")
@admin_required
def delete_room(slug: str) -> Any:
    """Delete a room."""
    current_runtime().rooms.delete(get_db(), slug)
    flash(_("Raum %(slug)s gelöscht.", slug=slug))
    return redirect(url_for("admin.rooms"))


@bp.post("/departments")
@admin_required
def new_department() -> Any:
    """Create a department."""
    made = current_runtime().departments.create_department(
        get_db(), request.form.get("slug", ""), request.form.get("name")
    )
    flash(_("Fachbereich „%(name)s“ angelegt.", name=made.name))
    return redirect(url_for("admin.rooms"))


@bp.get("/users")
@admin_required
def users() -> Any:
    """List staff accounts."""
    return render_template(
        "admin/users.html",
        users=current_runtime().users.list_users(get_db()),
        departments=_departments(),
        error=None,
        form={},
    )


@bp.post("/users")
@admin_required
def new_user() -> Any:
    """Create a staff account; the password is shown once."""
    service = current_runtime().users
    form = request.form.to_dict()
    try:
        created = service.create(
            get_db(),
            form.get("username", ""),
            form.get("display_name", ""),
            form.get("password") or None,
            is_admin=validation.flag(form.get("is_admin"), "is_admin"),
        )
    except ServiceError as exc:
        get_db().rollback()
        return render_template(
            "admin/users.html",
            users=service.list_users(get_db()),
            departments=_departments(),
            error=admin_error(exc),
            form=form,
        ), exc.status
    return render_template(
        "admin/password.html", user=created.user, password=created.password, created=True
    )


@bp.post("/users/<int:user_id>")
@admin_required
def edit_user(user_id: int) -> Any:
    """Change an account's name, admin flag or disabled flag."""
    runtime, db = current_runtime(), get_db()
    affected = runtime.rooms.checked_in_rooms(db, runtime.users.get(db, user_id))
    runtime.users.update(
        db,
        user_id,
        request.form.get("display_name"),
        is_admin=validation.flag(request.form.get("is_admin"), "is_admin"),
        disabled=validation.flag(request.form.get("disabled"), "disabled"),
        acting=g.user,
    )
    for slug in affected:  # a disabled account leaves its rooms
        runtime.rooms.sync(db, slug)
    user = runtime.users.get(db, user_id)
    runtime.departments.set_queues(db, user, request.form.getlist("departments"))
    flash(_("Konto gespeichert."))
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/password")
@admin_required
def reset_password(user_id: int) -> Any:
    """Give an account a new generated password, shown once."""
    service = current_runtime().users
    password = service.reset_password(get_db(), user_id)
    return render_template(
        "admin/password.html",
        user=service.get(get_db(), user_id),
        password=password,
        created=False,
    )


@bp.get("/categories")
@admin_required
def categories() -> Any:
    """Concern categories citizens choose from, each leading to a department's queue."""
    return render_template(
        "admin/categories.html",
        categories=current_runtime().reception.categories(get_db(), active_only=False),
        departments=_departments(),
    )


@bp.post("/categories")
@admin_required
def new_category() -> Any:
    """Create a concern category."""
    form = request.form
    made = current_runtime().departments.create_category(
        get_db(), form.get("slug", ""), form.get("name_de"), form.get("name_en"),
        form.get("department", ""),
    )  # fmt: skip
    flash(_("Anliegen „%(name)s“ angelegt.", name=made.name_de))
    return redirect(url_for("admin.categories"))


@bp.post("/categories/<slug>/active")
@admin_required
def category_active(slug: str) -> Any:
    """Offer a category to citizens, or stop offering it."""
    active = validation.flag(request.form.get("active"), "active")
    current_runtime().departments.set_category_active(get_db(), slug, active)
    return redirect(url_for("admin.categories"))


@bp.get("/stats")
@admin_required
def stats() -> Any:
    """Tickets per day and waiting times per department and hour, as server-side charts."""
    runtime = current_runtime()
    zone = runtime.settings.zone
    today = runtime.clock.now().astimezone(zone).date()
    since = runtime.clock.now() - timedelta(days=30)
    data = report(tickets_since(get_db(), since), zone, today)
    tickets = _("Tickets")
    per_day = bar_chart(
        _("Anliegen pro Tag (30 Tage)"),
        [day.strftime("%d.%m.") for day, _count in data.per_day],
        [(tickets, [float(count) for _day, count in data.per_day], "bar-a")],
        tickets,
    )
    hours = list(data.by_hour)
    by_hour = bar_chart(
        _("Wartezeit nach Tageszeit (Minuten)"),
        [_("%(h)02d Uhr", h=h) for h in hours],
        [
            (_("Median"), [data.by_hour[h].p50 for h in hours], "bar-a"),
            ("90 %", [data.by_hour[h].p90 for h in hours], "bar-b"),
        ],
        "min",
    )
    return render_template("admin/stats.html", data=data, per_day=per_day, by_hour=by_hour)


@bp.get("/stats.csv")
@admin_required
def stats_csv() -> Any:
    """The visits of the last 30 days as CSV (statistical fields only)."""
    since = current_runtime().clock.now() - timedelta(days=30)
    body = to_csv(tickets_since(get_db(), since))
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=empfang-statistik.csv"},
    )
