"""Calls: joining (staff, admitted citizens, room guests, invited externals), the call page,
its live channel (signalling, chat, host actions), documents and invitations."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from hub import schemas
from hub.apispec import operation
from hub.auth import login_required, same_origin
from hub.db import get_db, session_scope
from hub.error_texts import friendly
from hub.errors import NotFound, ServiceError, ValidationError
from hub.live import Subscription
from hub.live_socket import Channel, live_route, pump, release_request_db
from hub.models import ChatMessage, Document, Participant, Room
from hub.runtime import HubRuntime, current_runtime
from hub.services.calls import MAX_DOCUMENT, MB, Credentials, _hash, file_too_large
from hub.services.calls import display_time as iso

bp = Blueprint("calls", __name__)
KEYS = "call_keys"  # participant id -> secret, kept in the signed session cookie


def remember(creds: Credentials) -> Any:
    keys = dict(session.get(KEYS, {}))
    keys = dict(list(keys.items())[-5:])  # a browser holds only its latest few seats
    keys[creds.participant.public_id] = creds.key
    session[KEYS] = keys
    return redirect(url_for("calls.page", participant=creds.participant.public_id))


def _key_for(participant: str) -> str | None:
    return request.headers.get("X-Participant-Key") or session.get(KEYS, {}).get(participant)


def _participant(public_id: str) -> Participant:
    return current_runtime().calls.authenticate(get_db(), public_id, _key_for(public_id))


# ---- joining ----------------------------------------------------------------------
@bp.post("/staff/queue/<public_id>/call")
@login_required
def host_ticket(public_id: str) -> Any:
    """The serving staff member opens the call with the admitted citizen."""
    runtime = current_runtime()
    ticket = runtime.reception.by_public_id(get_db(), public_id)
    return remember(runtime.calls.join_ticket_as_host(get_db(), ticket, g.user))


@bp.get("/empfang/t/<token>/call")
def guest_ticket(token: str) -> Any:
    """The admitted citizen enters their call."""
    runtime = current_runtime()
    ticket = runtime.reception.by_token(get_db(), token)
    return remember(runtime.calls.join_ticket_as_guest(get_db(), ticket))


@bp.post("/call/session/<session_id>/join")
@login_required
def join_session(session_id: str) -> Any:
    """A staff member enters a conversation a host brought them into."""
    return remember(current_runtime().calls.join_session(get_db(), session_id, g.user))


def _room(slug: str) -> Room:
    room = get_db().scalar(select(Room).where(Room.slug == slug))
    if room is None:
        raise NotFound(f"no room {slug!r}", "room")
    return room


@bp.route("/r/<slug>", methods=["GET", "POST"])
def room(slug: str) -> Any:
    """A permanent room: staff walk in; guests give a name and enter or knock."""
    runtime = current_runtime()
    target = _room(slug)
    if g.user is not None and request.method == "POST":
        return remember(runtime.calls.join_room(get_db(), target, user=g.user))
    if request.method != "POST":  # GET and HEAD only show the page
        return render_template("calls/enter.html", room=target, error=None, name="")
    try:
        creds = runtime.calls.join_room(get_db(), target, name=request.form.get("name"))
    except ServiceError as exc:
        get_db().rollback()
        return render_template(
            "calls/enter.html",
            room=target,
            error=friendly(exc),
            name=request.form.get("name", ""),
        ), exc.status
    return remember(creds)


@bp.route("/join/<token>", methods=["GET", "POST"])
def invited(token: str) -> Any:
    """An external participant joins by invitation link."""
    runtime = current_runtime()
    invite = runtime.calls.invite_by_token(get_db(), token)
    if request.method != "POST":  # GET and HEAD only show the page
        return render_template("calls/invited.html", invite=invite, error=None)
    try:
        creds = runtime.calls.join_invite(get_db(), token, request.form.get("name"))
    except ServiceError as exc:
        get_db().rollback()
        return render_template("calls/invited.html", invite=invite, error=friendly(exc)), exc.status
    return remember(creds)


@bp.post("/api/v1/reception/tickets/<token>/call")
@operation(201, schemas.CallCredentials, errors=(404, 409))
def kiosk_join(token: str) -> Any:
    """Call credentials for an admitted ticket (kiosks and apps).

    Answers the participant id, its secret key, the live channel path (WebSocket
    /call/{participant}/live?k=KEY: messages `state`, `signal`, `ended`; send `signal`,
    `chat`, `ping`, `leave`) and STUN/TURN servers with time-limited credentials.
    """
    runtime = current_runtime()
    ticket = runtime.reception.by_token(get_db(), token)
    creds = runtime.calls.join_ticket_as_guest(get_db(), ticket)
    pid = creds.participant.public_id
    return jsonify(
        participant=pid,
        key=creds.key,
        live=urlsplit(url_for("calls.live", participant=pid)).path,  # socket routes build ws://
        ice_servers=runtime.turn.ice_servers(pid),
    ), 201


# ---- the call page -------------------------------------------------------------------
@bp.get("/call/<participant>")
def page(participant: str) -> Any:
    """The call: video tiles, controls, chat, documents and (for staff) host tools."""
    runtime = current_runtime()
    me = _participant(participant)
    rooms = list(get_db().scalars(select(Room).where(Room.kind != "reception").order_by(Room.name)))
    config = {
        "participant": me.public_id,
        "key": _key_for(participant),
        "role": me.role,
        "live": url_for("calls.live", participant=me.public_id),
        "documents": url_for("calls.upload", participant=me.public_id),
        "invites": url_for("calls.invite", participant=me.public_id),
        "ice_servers": runtime.turn.ice_servers(me.public_id),
    }
    response = current_app.make_response(
        render_template("calls/call.html", me=me, config=config, rooms=rooms)
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Permissions-Policy"] = "camera=(self), microphone=(self)"
    return response


@bp.post("/call/<participant>/documents")
def upload(participant: str) -> Any:
    """Share a PDF, PNG or JPEG (at most 20 MB) with this call."""
    me = _participant(participant)
    file = request.files.get("file")
    if file is None:
        raise ServiceError("no file", "file", code="document.missing")
    document = current_runtime().calls.upload(get_db(), me, file.filename, file.stream)
    return jsonify(id=document.public_id, filename=document.filename, size=document.size), 201


@bp.before_request
def _refuse_foreign_live() -> Any:
    if request.endpoint == "calls.live" and not same_origin():
        abort(403)
    return None


def allow_large_uploads() -> None:
    """Documents may be up to 20 MB; everything else keeps the app's 1 MB limit.

    Registered before CSRF protection, which reads (and so limits) the body first; a body
    announced as too large is refused here, with the code pages translate.
    """
    if request.endpoint == "calls.upload":
        request.max_content_length = MAX_DOCUMENT + MB  # room for the form around the file
        if (request.content_length or 0) > request.max_content_length:
            raise file_too_large()


@bp.get("/call/<participant>/documents/<document>")
def download(participant: str, document: str) -> Any:
    """Download a document shared in this call (participants only)."""
    me = _participant(participant)
    found, path = current_runtime().calls.document(get_db(), me, document)
    if not path.is_file():
        raise NotFound("the document is gone", "document")
    response = send_file(
        path, mimetype=found.mime, as_attachment=True, download_name=found.filename, max_age=0
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/call/<participant>/invites/<int:invite_id>")
def revoke_invite(participant: str, invite_id: int) -> Any:
    """Withdraw an invitation link (staff)."""
    me = _participant(participant)
    current_runtime().calls.revoke(get_db(), me, invite_id)
    return "", 204


@bp.post("/call/<participant>/invites")
def invite(participant: str) -> Any:
    """A time-limited invitation link and QR code for an external participant (staff)."""
    me = _participant(participant)
    body = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(body, Mapping):
        raise ValidationError("body", "must be a JSON object", code="request.not_object")
    invitation, token = current_runtime().calls.invite(get_db(), me, body.get("label"))
    link = url_for("calls.invited", token=token, _external=True)
    qr = segno.make(link, error="m").svg_inline(scale=4, title="QR-Code der Einladung")
    return jsonify(
        id=invitation.id, url=link, qr_svg=qr, expires_at=iso(invitation.expires_at)
    ), 201


# ---- the live channel ---------------------------------------------------------------------
def call_state(runtime: HubRuntime, participant_id: str) -> dict[str, Any]:
    """Everything a participant's page shows, as of now."""
    with session_scope(runtime.sessions) as db:
        me = db.scalar(select(Participant).where(Participant.public_id == participant_id))
        if me is None:
            return {"type": "ended"}
        call = me.session
        if call.ended_at is not None:
            return {"type": "ended"}
        if me.left_at is not None:
            return {"type": "removed"}
        state: dict[str, Any] = {
            "type": "state",
            "session": call.public_id,
            "me": {
                "id": me.public_id,
                "role": me.role,
                "name": me.display_name,
                "admitted": me.admitted,
            },
            "room": {"slug": call.room.slug, "name": call.room.name, "dnd": call.room.dnd}
            if call.room
            else None,
            "private": call.private,
            "participants": [],
            "chat": [],
            "documents": [],
            "knocking": [],
        }
        if not me.admitted:
            return state
        state["participants"] = [
            {"id": p.public_id, "name": p.display_name, "role": p.role}
            for p in runtime.calls.active(call)
        ]
        docs = sorted(db.scalars(select_documents(call.id)), key=lambda d: d.at)
        state["documents"] = [
            {
                "id": d.public_id,
                "filename": d.filename,
                "size": d.size,
                "by": d.uploaded_by,
                "url": url_for("calls.download", participant=me.public_id, document=d.public_id),
            }
            for d in docs
        ]
        state["chat"] = [
            {"author": m.author, "at": iso(m.at), "text": m.text}
            for m in db.scalars(select_chat(call.id))
        ]
        if me.role == "host":
            state["knocking"] = [
                {"id": p.public_id, "name": p.display_name} for p in runtime.calls.knocking(call)
            ]
            state["colleagues"] = [
                {"username": u.username, "name": u.display_name}
                for u in runtime.calls.colleagues(db, call)
            ]
        return state


def select_documents(session_id: int) -> Any:
    """Documents of a session."""
    return select(Document).where(Document.session_id == session_id)


def select_chat(session_id: int) -> Any:
    """Chat lines of a session, oldest first."""
    return select(ChatMessage).where(ChatMessage.session_id == session_id).order_by(ChatMessage.id)


def _handle(
    runtime: HubRuntime, participant_id: str, message: dict[str, Any], inbox: Subscription
) -> None:
    """One message from a participant's page; refusals go back to that page only."""
    kind = message.get("type")
    with session_scope(runtime.sessions) as db:
        calls = runtime.calls
        me = calls.present(db, participant_id)
        if kind == "ping":
            calls.heartbeat(db, me)
        elif kind == "signal":
            calls.signal(db, me, message.get("to"), message.get("kind"), message.get("data"))
        elif kind == "chat":
            calls.chat(db, me, message.get("text"))
        elif kind == "admit":
            calls.admit(db, me, message.get("participant"))
        elif kind == "bring":
            calls.bring_in(db, me, message.get("user"))
        elif kind == "remove":
            calls.remove(db, me, message.get("participant"))
        elif kind == "move":
            calls.move_private(db, me, message.get("room"))
        elif kind == "dnd":
            calls.set_dnd(db, me, bool(message.get("on")))
        elif kind == "leave":
            calls.leave(db, me)
        else:
            inbox.offer({"type": "error", "error": f"unknown message type {kind!r}"})


def _reader(
    ws: Any, runtime: HubRuntime, participant_id: str, inbox: Subscription, app: Any
) -> None:
    """Reads the page's messages on its own thread, so pushes never wait for them."""
    with app.app_context():
        while True:
            try:
                raw = ws.receive(timeout=30)
            except ConnectionClosed:
                break
            if raw is None:
                continue  # the page pings every few seconds; the reaper notices silence
            try:
                message = json.loads(raw)
                if not isinstance(message, dict):
                    raise ValueError("not an object")
                _handle(runtime, participant_id, message, inbox)
            except ServiceError as exc:
                inbox.offer({"type": "error", **exc.to_dict()})
            except (ValueError, TypeError) as exc:
                inbox.offer({"type": "error", "error": f"malformed message: {exc}"})
    inbox.offer({"type": "closed"})


@live_route(bp, "/call/<participant>/live")
def live(ws: Any, participant: str) -> None:
    """The participant's live channel: state, signalling, chat; host actions."""
    runtime = current_runtime()
    key = request.args.get("k") or _key_for(participant)
    with session_scope(runtime.sessions) as db:
        try:
            me = runtime.calls.authenticate(db, participant, key)
        except ServiceError as exc:
            known = db.scalar(select(Participant).where(Participant.public_id == participant))
            if known is not None and hmac.compare_digest(known.secret_hash, _hash(str(key))):
                ws.send(json.dumps(call_state(runtime, participant)))  # ended or removed
                return
            ws.send(json.dumps({"type": "error", **exc.to_dict()}))
            ws.close(reason=1008, message="not a participant")
            return
        session_id = me.session.public_id
    release_request_db()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # Listen before announcing the arrival, so no offer sent in reply can be missed.
    with runtime.live.subscribe(f"call:{session_id}", f"participant:{participant}") as inbox:
        with session_scope(runtime.sessions) as db:
            me = runtime.calls.authenticate(db, participant, key)
            channel = runtime.calls.connected(db, me)
        first = call_state(runtime, participant)
        first["ice_servers"] = runtime.turn.ice_servers(participant)
        states = iter([first])  # the first snapshot carries the ICE servers, later ones not
        live_channel = Channel(
            topics=inbox.topics,  # subscribed above, before the arrival was announced
            snapshot=lambda: next(states, None) or call_state(runtime, participant),
            shape=lambda event: (
                call_state(runtime, participant) if event.get("type") == "call" else event
            ),
            listen_only=False,
            final=lambda payload: payload.get("type") in ("ended", "removed"),
            gone=lambda event: event.get("type") == "closed",
        )
        reader = threading.Thread(
            target=_reader, args=(ws, runtime, participant, inbox, app), daemon=True
        )
        reader.start()
        try:
            pump(ws, runtime, live_channel, inbox)
        finally:
            with session_scope(runtime.sessions) as db:
                gone = db.scalar(select(Participant).where(Participant.public_id == participant))
                if gone is not None:
                    runtime.calls.disconnected(db, gone, channel)
