"""Devices: the fleet view for admins, its JSON API, and the enrollment endpoint."""

from __future__ import annotations

import json
from typing import Any

import segno
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
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.routing import BaseConverter

from hub import schemas
from hub.apispec import ADMIN_READ, STAFF, args, body, given, operation
from hub.auth import admin_required, client_address, same_origin
from hub.blueprints.admin import admin_error
from hub.db import get_db, session_scope
from hub.errors import ServiceError
from hub.live_socket import Account, Channel, live_route, serve
from hub.models import DEVICE_KINDS, Room
from hub.runtime import DEVICES_TOPIC, HubRuntime, current_runtime
from hub.services.devices import MAX_LOCATION, NewCode, device_rooms, device_view
from protocol.text import is_clean

bp = Blueprint("devices", __name__)


def _hub_url() -> str:
    return current_runtime().settings.public_url.rstrip("/") or request.url_root.rstrip("/")


def _code_json(new: NewCode) -> dict[str, Any]:
    return {"code": new.code, "code_expires": new.expires.isoformat().replace("+00:00", "Z")}


def _qr_svg(new: NewCode) -> str:
    """The code (and where to enroll) as an inline SVG QR code for provisioning tools."""
    payload = json.dumps({"hub": _hub_url(), "code": new.code}, separators=(",", ":"))
    return segno.make(payload, error="m").svg_inline(scale=4, title=_("Anmeldecode als QR-Code"))


# ---- enrollment (devices, no session) -----------------------------------------------------


@bp.before_request
def _count_enrollment_attempt() -> None:
    # Before the body is checked: a malformed guess counts against the limit as well
    # (what is not JSON at all is no attempt: it is refused as such).
    if request.endpoint == "devices.enroll" and request.is_json:
        current_runtime().devices.count_attempt(get_db(), client_address())


@bp.post("/api/v1/devices/enroll")
@operation(201, schemas.Enrollment, json=schemas.Enroll, errors=(403, 409, 429))
def enroll() -> Any:
    """Spend a one-time code: the device receives its id and its own broker login."""
    data = given(body())
    enrollment = current_runtime().devices.enroll(
        get_db(), data.get("code"), data.get("kind"), client_address()
    )
    response = jsonify(enrollment.to_dict())
    response.headers["Cache-Control"] = "no-store"
    return response


# ---- admin JSON API ------------------------------------------------------------------------


@bp.get("/api/v1/devices")
@admin_required
@operation(
    200,
    schemas.DeviceList,
    query=schemas.DeviceFilter,
    errors=(401, 403),
    security=ADMIN_READ,
)
def api_list() -> Any:
    """Every device with its state (admins); ?kind= and ?location= filter."""
    runtime = current_runtime()
    wanted = given(args())
    devices = runtime.devices.list_devices(get_db(), wanted.get("kind"), wanted.get("location"))
    now = runtime.clock.now()
    return jsonify(devices=[device_view(d, now) for d in devices])


@bp.post("/api/v1/devices")
@admin_required
@operation(
    201,
    schemas.DeviceWithCode,
    json=schemas.NewDevice,
    errors=(401, 403, 409, 422),
    security=STAFF,
)
def api_create() -> Any:
    """Create a device (admins); the answer holds its one-time enrollment code."""
    runtime = current_runtime()
    new = runtime.devices.create(get_db(), given(body()))
    response = jsonify({**device_view(new.device, runtime.clock.now()), **_code_json(new)})
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.get("/api/v1/devices/<string:device_id>")
@admin_required
@operation(200, schemas.DeviceBody, errors=(401, 403, 404), security=ADMIN_READ)
def api_get(device_id: str) -> Any:
    """One device (admins)."""
    runtime = current_runtime()
    return jsonify(device_view(runtime.devices.get(get_db(), device_id), runtime.clock.now()))


@bp.patch("/api/v1/devices/<string:device_id>")
@admin_required
@operation(
    200,
    schemas.DeviceBody,
    json=schemas.DeviceChange,
    errors=(401, 403, 404, 409, 422),
    security=STAFF,
)
def api_update(device_id: str) -> Any:
    """Change a device's name, location or rooms (admins); the device follows at once."""
    runtime = current_runtime()
    device = runtime.devices.update(get_db(), device_id, given(body()))
    return jsonify(device_view(device, runtime.clock.now()))


@bp.delete("/api/v1/devices/<string:device_id>")
@admin_required
@operation(200, schemas.DeviceBody, errors=(401, 403, 404), security=STAFF)
def api_revoke(device_id: str) -> Any:
    """Revoke a device (admins): its broker login is deleted and its session ends."""
    runtime = current_runtime()
    device = runtime.devices.revoke(get_db(), device_id)
    return jsonify(device_view(device, runtime.clock.now()))


@bp.post("/api/v1/devices/<device_id>/code")
@admin_required
@operation(200, schemas.DeviceWithCode, errors=(401, 403, 404, 409), security=STAFF)
def api_new_code(device_id: str) -> Any:
    """Issue a fresh enrollment code (admins), e.g. for a replaced memory card."""
    runtime = current_runtime()
    new = runtime.devices.new_code(get_db(), device_id)
    response = jsonify({**device_view(new.device, runtime.clock.now()), **_code_json(new)})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/v1/devices/<device_id>/cmd")
@admin_required
@operation(202, None, json=schemas.DeviceCommand, errors=(401, 403, 404, 409), security=STAFF)
def api_command(device_id: str) -> Any:
    """Send reload or identify to a device (admins): body {"cmd": …}."""
    current_runtime().devices.command(get_db(), device_id, body().cmd)
    return "", 202


# ---- admin pages -----------------------------------------------------------------------------


def _rooms() -> list[Room]:
    return list(get_db().scalars(select(Room).order_by(Room.kind != "reception", Room.name)))


def _kind_names() -> dict[str, str]:
    return {"kiosk": _("Kiosk"), "display": _("Türanzeige"), "light": _("Statuslicht")}


def _form_error(exc: ServiceError) -> str:
    """The admin page's reason for a refused device form, in the page's language."""
    labels = {"location": _("Standort"), "id": _("Kennung")}
    if exc.field == "rooms" and "reception" in exc.message:
        return _("Ein Kiosk gehört zu genau einem Empfangsraum.")
    if exc.field == "rooms":
        return _("Bitte wählen Sie bei „%(field)s“ einen Eintrag aus der Liste.", field=_("Räume"))
    if exc.field in labels:  # the shared wording, with this page's field names
        return admin_error(ServiceError(exc.message, labels[exc.field]))
    return admin_error(exc)


class DeviceIdConverter(BaseConverter):
    """A device id in a path: never `enroll`, whose path belongs to enrollment alone.

    Registered as the app's `string` converter, which only the device routes use, so the
    OpenAPI document still calls it a string (and `Allow` lists only enrollment's POST).
    """

    regex = r"(?!enroll(?:/|$))[^/]+"


def fleet_filters() -> dict[str, str]:
    """The fleet page's filters from the query, and nothing else of it (no URL building)."""
    kind = request.args.get("kind", "")
    location = request.args.get("location", "")
    filters = {}
    if kind in DEVICE_KINDS:
        filters["kind"] = kind
    if location and len(location) <= MAX_LOCATION and is_clean(location):
        filters["location"] = location
    return filters


def _fleet(error: str = "", form: dict[str, Any] | None = None, status: int = 200) -> Any:
    runtime = current_runtime()
    filters = fleet_filters()
    kind, location = filters.get("kind", ""), filters.get("location", "")
    devices = runtime.devices.list_devices(get_db(), kind or None, location or None)
    now = runtime.clock.now()
    return render_template(
        "devices/fleet.html",
        devices=devices,
        views={d.public_id: device_view(d, now) for d in devices},
        rooms=_rooms(),
        kinds=_kind_names(),
        locations=runtime.devices.locations(get_db()),
        kind=kind,
        location=location,
        error=error,
        form=form or {"kind": "display"},
        device_rooms=device_rooms,
        filters=filters,
    ), status


def _code_page(new: NewCode, created: bool) -> Any:
    hub = _hub_url()
    if new.device.kind == "light":
        # The light's provisioning (firmware/provision.py) reads this answer as credentials.
        body = json.dumps({"code": new.code, "kind": "light"})
        command = (
            f"curl -sf -X POST {hub}/api/v1/devices/enroll -H 'Content-Type: application/json' "
            f"-d '{body}' -o enrolled.json"
        )
    else:
        command = f"empfang-{new.device.kind} enroll --hub {hub} --code {new.code}"
    return render_template(
        "devices/code.html",
        device=new.device,
        code=new.code,
        expires=new.expires,
        qr=_qr_svg(new),
        command=command,
        created=created,
        kinds=_kind_names(),
    )


@bp.get("/admin/devices")
@admin_required
def fleet() -> Any:
    """Every device: online or offline (live), last seen, version, telemetry, rooms."""
    return _fleet()


@bp.post("/admin/devices")
@admin_required
def create() -> Any:
    """Create a device; its enrollment code and QR code are shown once."""
    form = request.form.to_dict()
    data = {**form, "rooms": request.form.getlist("rooms")}
    try:
        new = current_runtime().devices.create(get_db(), data)
    except ServiceError as exc:
        get_db().rollback()
        return _fleet(_form_error(exc), {**form, "rooms": data["rooms"]}, exc.status)
    return _code_page(new, created=True)


@bp.post("/admin/devices/<device_id>/rooms")
@admin_required
def set_rooms(device_id: str) -> Any:
    """Assign rooms; a running device follows within a second."""
    try:
        current_runtime().devices.set_rooms(get_db(), device_id, request.form.getlist("rooms"))
    except ServiceError as exc:
        get_db().rollback()
        return _fleet(_form_error(exc), status=exc.status)
    flash(_("Räume von %(id)s gespeichert.", id=device_id))
    return redirect(url_for("devices.fleet", **fleet_filters()))


@bp.post("/admin/devices/<device_id>/revoke")
@admin_required
def revoke(device_id: str) -> Any:
    """Revoke a device: its broker access ends at once."""
    current_runtime().devices.revoke(get_db(), device_id)
    flash(_("Gerät %(id)s gesperrt; es hat keinen Zugang mehr.", id=device_id))
    return redirect(url_for("devices.fleet", **fleet_filters()))


@bp.post("/admin/devices/<device_id>/code")
@admin_required
def new_code(device_id: str) -> Any:
    """Issue a fresh enrollment code (the old one stops working)."""
    return _code_page(current_runtime().devices.new_code(get_db(), device_id), created=False)


@bp.post("/admin/devices/<device_id>/cmd")
@admin_required
def command(device_id: str) -> Any:
    """Send reload or identify to a device."""
    cmd = request.form.get("cmd")
    current_runtime().devices.command(get_db(), device_id, cmd)
    names = {"reload": _("Neu laden"), "identify": _("Identifizieren")}
    flash(_("Befehl „%(cmd)s“ an %(id)s gesendet.", cmd=names.get(str(cmd), cmd), id=device_id))
    return redirect(url_for("devices.fleet", **fleet_filters()))


@bp.before_request
def _refuse_live_without_admin() -> Any:
    # Refuse before the WebSocket upgrade, so the page sees a failed connection.
    if request.endpoint == "devices.live":
        if g.user is None:
            abort(401)
        if not g.user.is_admin:
            abort(403)
        if not same_origin():
            abort(403)
    return None


def _snapshot(runtime: HubRuntime) -> dict[str, Any]:
    with session_scope(runtime.sessions) as db:
        now = runtime.clock.now()
        return {
            "type": "snapshot",
            "devices": [device_view(d, now) for d in runtime.devices.list_devices(db)],
        }


@live_route(bp, "/admin/devices/live")
def live(ws: Any) -> None:
    """Push every reported device state to the fleet page as JSON."""
    runtime = current_runtime()
    channel = Channel(
        topics=[DEVICES_TOPIC],
        snapshot=lambda: _snapshot(runtime),
        account=Account.current(admin=True),
        refusal="admins only",
    )
    serve(ws, runtime, channel)
