"""Calls: sessions, participants, knocking, moving to private rooms, chat, documents, invites."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import validation
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError
from hub.models import (
    CallSession,
    ChatMessage,
    Document,
    Invite,
    Participant,
    Room,
    Ticket,
    User,
)

MAX_PARTICIPANTS = 4  # a peer-to-peer mesh stays usable up to four people
MAX_CHAT = 1000
MAX_DOCUMENT = 20 * 1024 * 1024
HEARTBEAT_TIMEOUT = timedelta(seconds=15)
INVITE_LIFETIME = timedelta(hours=4)
MAGIC = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
)


class TooLarge(ServiceError):
    """An upload over the size limit."""

    status = 413


@dataclass(frozen=True)
class Credentials:
    """What a browser or kiosk needs to join a call: its participant id and secret."""

    participant: Participant
    key: str


@dataclass(frozen=True)
class TurnSettings:
    """STUN/TURN servers and the coturn REST secret (time-limited credentials)."""

    stun: tuple[str, ...]
    turn: tuple[str, ...]
    secret: str
    ttl: int = 12 * 3600

    def ice_servers(self, participant_id: str, now: float | None = None) -> list[dict[str, Any]]:
        """RTCIceServer entries; TURN gets coturn's `expiry:user` name and HMAC password."""
        servers: list[dict[str, Any]] = []
        if self.stun:
            servers.append({"urls": list(self.stun)})
        if self.turn and self.secret:
            username = f"{int((now or time.time()) + self.ttl)}:{participant_id}"
            digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
            servers.append(
                {
                    "urls": list(self.turn),
                    "username": username,
                    "credential": base64.b64encode(digest).decode(),
                }
            )
        return servers


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sniff(head: bytes) -> tuple[str, str] | None:
    """The (mime, extension) of a PDF, PNG or JPEG judged by its first bytes, else None."""
    for magic, mime, ext in MAGIC:
        if head.startswith(magic):
            return mime, ext
    return None


class CallService:
    """Owns call state; every change is committed, then announced to all hub processes."""

    def __init__(
        self,
        clock: Clock,
        documents_dir: Path,
        notify: Callable[[str], None],
        sync_room: Callable[[Session, str], object],
        set_dnd: Callable[[Session, str, bool], object],
    ) -> None:
        self.clock = clock
        self.documents_dir = documents_dir
        self._notify = notify
        self._sync_room = sync_room
        self._set_dnd = set_dnd

    # ---- lookups -------------------------------------------------------------
    def session(self, db: Session, public_id: str) -> CallSession:
        """An open session by id, or NotFound."""
        found = db.scalar(select(CallSession).where(CallSession.public_id == public_id))
        if found is None or found.ended_at is not None:
            raise NotFound("no such call", "session")
        return found

    def authenticate(self, db: Session, public_id: object, key: object) -> Participant:
        """The participant for an id and secret (constant-time), or Forbidden."""
        if not isinstance(public_id, str) or not isinstance(key, str) or len(key) > 100:
            raise Forbidden("not a participant of this call", "participant")
        found = db.scalar(select(Participant).where(Participant.public_id == public_id))
        digest = _hash(key)
        if found is None or not hmac.compare_digest(found.secret_hash, digest):
            raise Forbidden("not a participant of this call", "participant")
        if found.left_at is not None or found.session.ended_at is not None:
            raise Forbidden("this call has ended for you", "participant")
        return found

    def active(self, session: CallSession) -> list[Participant]:
        """Participants who are in the call now (admitted and connected)."""
        return [p for p in session.participants if p.admitted and p.connected and not p.left_at]

    def knocking(self, session: CallSession) -> list[Participant]:
        """Guests waiting at the door of a knock room."""
        return [p for p in session.participants if not p.admitted and not p.left_at]

    def room_session(self, db: Session, room: Room) -> CallSession | None:
        """The open session in a room, if any."""
        return db.scalar(
            select(CallSession).where(
                CallSession.room_id == room.id, CallSession.ended_at.is_(None)
            )
        )

    # ---- joining ----------------------------------------------------------------
    def _new_session(self, db: Session, room: Room, ticket: Ticket | None) -> CallSession:
        session = CallSession(
            public_id=f"c-{secrets.token_hex(8)}",
            room_id=room.id,
            ticket_id=ticket.id if ticket else None,
            private=False,
            created_at=self.clock.now(),
        )
        db.add(session)
        db.flush()
        return session

    def _add(
        self,
        db: Session,
        session: CallSession,
        role: str,
        name: str,
        *,
        user: User | None = None,
        ticket: Ticket | None = None,
        admitted: bool = True,
    ) -> Credentials:
        for old in session.participants:  # a reload or a second tab replaces the old seat
            same = (user is not None and old.user_id == user.id) or (
                ticket is not None and old.ticket_id == ticket.id
            )
            if same and not old.left_at:
                old.left_at, old.connected = self.clock.now(), False
        present = [p for p in session.participants if not p.left_at]
        if len(present) >= MAX_PARTICIPANTS:
            raise Conflict(f"a call holds at most {MAX_PARTICIPANTS} participants", "session")
        key = secrets.token_urlsafe(24)
        participant = Participant(
            public_id=f"p-{secrets.token_hex(8)}",
            secret_hash=_hash(key),
            session=session,
            role=role,
            display_name=name,
            user_id=user.id if user else None,
            ticket_id=ticket.id if ticket else None,
            connected=False,
            last_seen=self.clock.now(),  # a seat nobody takes up is reaped like a dead one
            admitted=admitted,
        )
        db.add(participant)
        db.commit()
        self._changed(db, session)
        return Credentials(participant, key)

    def join_ticket_as_host(self, db: Session, ticket: Ticket, user: User) -> Credentials:
        """The staff member serving `ticket` joins its call."""
        if ticket.status != "serving" or ticket.room is None:
            raise Conflict("this citizen is not admitted", "ticket")
        if ticket.served_by_id != user.id and not user.is_admin:
            raise Forbidden("another staff member serves this citizen", "ticket")
        session = self.ticket_session(db, ticket)
        return self._add(db, session, "host", user.display_name, user=user)

    def join_ticket_as_guest(self, db: Session, ticket: Ticket) -> Credentials:
        """The admitted citizen joins their call."""
        if ticket.status != "serving" or ticket.room is None:
            raise Conflict("you are not admitted yet", "ticket")
        session = self.ticket_session(db, ticket)
        return self._add(db, session, "guest", ticket.name or "Gast", ticket=ticket)

    def ticket_session(self, db: Session, ticket: Ticket) -> CallSession:
        """The open call of an admitted ticket (created on first join)."""
        session = db.scalar(
            select(CallSession).where(
                CallSession.ticket_id == ticket.id, CallSession.ended_at.is_(None)
            )
        )
        if session is None:
            assert ticket.room is not None
            if self.room_session(db, ticket.room) is not None:
                raise Conflict("another conversation is going on in this room", "room")
            session = self._new_session(db, ticket.room, ticket)
        return session

    def join_room(
        self, db: Session, room: Room, *, user: User | None = None, name: object = None
    ) -> Credentials:
        """Enter a permanent room: staff freely, guests by the room's policy."""
        if not room.enabled:
            raise Conflict("the room is closed", "room")
        session = self.room_session(db, room)
        if session is not None and session.private:
            in_it = user is not None and any(
                p.user_id == user.id and not p.left_at for p in session.participants
            )
            if not in_it:
                raise Forbidden("this is a private conversation; nobody else can enter", "room")
        if user is not None:
            session = session or self._new_session(db, room, None)
            return self._add(db, session, "host", user.display_name, user=user)
        clean = validation.text(name, "name", max_len=80)
        if room.policy == "private":
            raise Forbidden("guests cannot enter this room", "room")
        if room.dnd:
            raise Conflict("the room asks not to be disturbed", "room")
        if session is None or not self.active(session):
            if room.policy == "knock":
                raise Conflict("nobody is in the room to let you in", "room")
            session = session or self._new_session(db, room, None)
        return self._add(db, session, "guest", clean, admitted=room.policy == "open")

    def join_invite(self, db: Session, token: object, name: object) -> Credentials:
        """An external participant enters by invitation link."""
        invite = self.invite_by_token(db, token)
        clean = validation.text(name, "name", max_len=80)
        return self._add(db, invite.session, "external", clean)

    # ---- presence -------------------------------------------------------------
    def connected(self, db: Session, participant: Participant) -> str:
        """The participant's live channel opened (again); returns that channel's id."""
        participant.channel = secrets.token_hex(8)
        participant.connected, participant.last_seen = True, self.clock.now()
        db.commit()
        self._changed(db, participant.session)
        return str(participant.channel)

    def heartbeat(self, db: Session, participant: Participant) -> None:
        """The participant is still there."""
        participant.last_seen = self.clock.now()
        db.commit()

    def leave(self, db: Session, participant: Participant) -> None:
        """The participant hung up, closed the page or lost the connection."""
        if participant.left_at is not None:
            return
        participant.connected = False
        participant.left_at = self.clock.now()
        session = participant.session
        db.commit()
        if session.ticket_id is None and not any(not p.left_at for p in session.participants):
            self.end(db, session)  # the last one out of a staff room closes the session
            return
        self._changed(db, session)

    def disconnected(self, db: Session, participant: Participant, channel: str) -> None:
        """The live channel closed: out of the room at once, but a reload may come back."""
        if participant.left_at is not None or not participant.connected:
            return
        if participant.channel != channel:
            return  # a newer channel of the same participant is open
        participant.connected, participant.last_seen = False, self.clock.now()
        db.commit()
        self._changed(db, participant.session)

    def reap(self, db: Session) -> int:
        """Drop participants whose connection died or who did not come back in time."""
        limit = self.clock.now() - HEARTBEAT_TIMEOUT
        stale = list(
            db.scalars(
                select(Participant).where(
                    Participant.left_at.is_(None), Participant.last_seen < limit
                )
            )
        )
        for participant in stale:
            self.leave(db, participant)
        return len(stale)

    # ---- host actions ------------------------------------------------------------
    def _host(self, actor: Participant) -> None:
        if actor.role != "host":
            raise Forbidden("only staff may do this", "role")

    def _other(self, db: Session, actor: Participant, public_id: object) -> Participant:
        target = db.scalar(
            select(Participant).where(
                Participant.public_id == str(public_id), Participant.session_id == actor.session_id
            )
        )
        if target is None or target.left_at is not None:
            raise NotFound("no such participant in this call", "participant")
        return target

    def admit(self, db: Session, actor: Participant, public_id: object) -> None:
        """Let a knocking guest in."""
        self._host(actor)
        target = self._other(db, actor, public_id)
        target.admitted = True
        db.commit()
        self._changed(db, actor.session)

    def remove(self, db: Session, actor: Participant, public_id: object) -> None:
        """Send a participant out (or decline a knock)."""
        self._host(actor)
        target = self._other(db, actor, public_id)
        if target.id == actor.id:
            raise ValidationError("participant", "use leave to leave")
        self.leave(db, target)

    def move_private(self, db: Session, actor: Participant, room_slug: object) -> CallSession:
        """Move the whole conversation into a protected room nobody else can enter."""
        self._host(actor)
        slug = validation.slug(room_slug, "room")
        room = db.scalar(select(Room).where(Room.slug == slug))
        if room is None:
            raise ValidationError("room", f"no room {slug!r}")
        session = actor.session
        if room.id != session.room_id:
            if room.kind == "reception" or not room.enabled:
                raise Conflict("this room cannot take a conversation", "room")
            other = self.room_session(db, room)
            serving = db.scalar(
                select(Ticket.id).where(Ticket.status == "serving", Ticket.room_id == room.id)
            )
            if other is not None or room.dnd or serving is not None:
                raise Conflict("the room is in use", "room")
        old = session.room.slug if session.room else None
        session.room_id, session.private = room.id, True
        if session.ticket is not None:
            session.ticket.room_id = room.id
        db.commit()
        if old and old != room.slug:
            self._sync_room(db, old)
        self._changed(db, session)
        return session

    def set_dnd(self, db: Session, actor: Participant, on: bool) -> None:
        """Ask not to be disturbed in the call's room (or stop asking)."""
        self._host(actor)
        if actor.session.room is None:
            raise NotFound("this call has no room", "room")
        self._set_dnd(db, actor.session.room.slug, on)
        self._changed(db, actor.session)

    def invite(self, db: Session, actor: Participant, label: object) -> tuple[Invite, str]:
        """A time-limited invitation link for an external participant."""
        self._host(actor)
        clean = validation.text(label or "Externe Person", "label", max_len=80)
        token = secrets.token_urlsafe(24)
        invite = Invite(
            token_hash=_hash(token),
            session_id=actor.session_id,
            label=clean,
            expires_at=self.clock.now() + INVITE_LIFETIME,
            revoked=False,
            created_by=actor.user_id,
        )
        db.add(invite)
        db.commit()
        return invite, token

    def revoke(self, db: Session, actor: Participant, invite_id: int) -> None:
        """Make an invitation link useless."""
        self._host(actor)
        invite = db.get(Invite, invite_id)
        if invite is None or invite.session_id != actor.session_id:
            raise NotFound("no such invitation", "invite")
        invite.revoked = True
        db.commit()

    def invite_by_token(self, db: Session, token: object) -> Invite:
        """A valid invitation, or a clear refusal."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise NotFound("no such invitation", "invite")
        invite = db.scalar(select(Invite).where(Invite.token_hash == _hash(token)))
        if invite is None:
            raise NotFound("no such invitation", "invite")
        if invite.revoked:
            raise Forbidden("this invitation was withdrawn", "invite")
        if invite.expires_at < self.clock.now():
            raise Forbidden("this invitation has expired", "invite")
        if invite.session.ended_at is not None:
            raise Forbidden("this conversation has ended", "invite")
        return invite

    # ---- chat and documents --------------------------------------------------------
    def chat(self, db: Session, actor: Participant, text: object) -> ChatMessage:
        """Add a chat line."""
        if not actor.admitted:
            raise Forbidden("you are not in the call yet", "participant")
        clean = validation.multiline(text, "text", max_len=MAX_CHAT)
        message = ChatMessage(
            session_id=actor.session_id, author=actor.display_name, at=self.clock.now(), text=clean
        )
        db.add(message)
        db.commit()
        self._changed(db, actor.session)
        return message

    def upload(self, db: Session, actor: Participant, filename: object, stream: Any) -> Document:
        """Store a PDF, PNG or JPEG (checked by content) for this session's participants."""
        if not actor.admitted:
            raise Forbidden("you are not in the call yet", "participant")
        name = validation.text(filename or "dokument", "filename", max_len=200)
        head = stream.read(16)
        kind = sniff(head)
        if kind is None:
            raise ValidationError("file", "only PDF, PNG and JPEG files can be shared")
        mime, ext = kind
        public_id = f"d-{secrets.token_hex(8)}"
        folder = self.documents_dir / actor.session.public_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / public_id  # never the uploader's name: no path tricks on disk
        size = len(head)
        try:
            with path.open("wb") as out:
                out.write(head)
                while chunk := stream.read(64 * 1024):
                    size += len(chunk)
                    if size > MAX_DOCUMENT:
                        raise TooLarge("files may be at most 20 MB", "file")
                    out.write(chunk)
        except ServiceError:
            path.unlink(missing_ok=True)
            raise
        safe = "".join(c for c in Path(name.replace("\\", "/")).name if c.isprintable())
        stem = (safe.rsplit(".", 1)[0] or "dokument")[:100]
        document = Document(
            public_id=public_id,
            session_id=actor.session_id,
            filename=stem + ext,
            mime=mime,
            size=size,
            uploaded_by=actor.display_name,
            at=self.clock.now(),
        )
        db.add(document)
        db.commit()
        self._changed(db, actor.session)
        return document

    def document(self, db: Session, actor: Participant, public_id: str) -> tuple[Document, Path]:
        """A document of the actor's own session and its file."""
        found = db.scalar(
            select(Document).where(
                Document.public_id == public_id, Document.session_id == actor.session_id
            )
        )
        if found is None:
            raise NotFound("no such document in this call", "document")
        return found, self.documents_dir / actor.session.public_id / found.public_id

    # ---- ending -----------------------------------------------------------------------
    def end(self, db: Session, session: CallSession) -> None:
        """Close a session: everyone leaves; chat and documents are deleted, on disk too."""
        if session.ended_at is not None:
            return
        now = self.clock.now()
        session.ended_at = now
        for p in session.participants:
            if not p.left_at:
                p.left_at, p.connected = now, False
        for model in (ChatMessage, Document, Invite):
            for row in db.scalars(select(model).where(model.session_id == session.id)):
                db.delete(row)
        db.commit()
        shutil.rmtree(self.documents_dir / session.public_id, ignore_errors=True)
        self._changed(db, session)

    def end_for_ticket(self, db: Session, ticket: Ticket) -> None:
        """The ticket left service (ended, forwarded, back to the lobby): its call ends."""
        session = db.scalar(
            select(CallSession).where(
                CallSession.ticket_id == ticket.id, CallSession.ended_at.is_(None)
            )
        )
        if session is not None:
            self.end(db, session)

    def _changed(self, db: Session, session: CallSession) -> None:
        if session.room is not None:
            self._sync_room(db, session.room.slug)
        self._notify(session.public_id)


def display_time(dt: datetime) -> str:
    """A chat timestamp as ISO 8601 UTC."""
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
