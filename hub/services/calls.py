"""Calls: sessions, participants, knocking, moving to private rooms, chat, documents, invites."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import itertools
import logging
import secrets
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import imageinfo, validation
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError
from hub.models import (
    CallColleague,
    CallSession,
    ChatMessage,
    Document,
    Invite,
    Participant,
    Room,
    Ticket,
    User,
)
from protocol.payloads import Signal
from protocol.text import BAD_CHARS

log = logging.getLogger(__name__)
MAX_PARTICIPANTS = 4  # a peer-to-peer mesh stays usable up to four people
CLOSED = "this conversation is closed: only the people in it and colleagues they bring in"
MAX_CHAT = 1000
MB = 1024 * 1024
MAX_DOCUMENT = 20 * MB  # one file; what a call and the disk may hold is in DocumentLimits
CHUNK = 64 * 1024  # uploads are read and written in pieces of this size
# A JPEG's frame header may come after big metadata segments (EXIF, ICC, XMP); past this
# many bytes without one, the picture is refused rather than held in memory any longer.
IMAGE_HEADER_LIMIT = 1 * MB
HEARTBEAT_TIMEOUT = timedelta(seconds=15)
INVITE_LIFETIME = timedelta(hours=4)
MAGIC = (
    (b"%PDF-", "application/pdf", ".pdf"),
    (imageinfo.PNG_SIGNATURE, "image/png", ".png"),
    (imageinfo.JPEG_SIGNATURE, "image/jpeg", ".jpg"),
)
NOT_AN_IMAGE = "this is not a valid PNG or JPEG image"


class TooLarge(ServiceError):
    """An upload over the size limit."""

    status = 413


def file_too_large() -> TooLarge:
    """The refusal of a file over MAX_DOCUMENT."""
    return TooLarge(
        f"files may be at most {MAX_DOCUMENT // MB} MB", "file", code="document.too_large"
    )


class NoRoom(ServiceError):
    """The hub's disk is too full to take documents."""

    status = 507


@dataclass(frozen=True)
class DocumentLimits:
    """How many documents and bytes one call may hold, what the disk keeps free, picture size."""

    per_call: int
    bytes_per_call: int
    min_free: int  # bytes left free on the documents' disk
    max_pixels: int


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


def display_name(filename: object, ext: str) -> str:
    """The uploader's file name made harmless: no folders, no control or format characters,
    at most 100 characters, and the extension that the content earned."""
    base = (filename if isinstance(filename, str) else "").replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in BAD_CHARS.sub("", base) if unicodedata.category(c) != "Cf")
    stem = clean.rsplit(".", 1)[0].strip(" .")[:100].strip(" .")
    return (stem or "dokument") + ext


class CallService:
    """Owns call state; every change is committed, then announced to all hub processes."""

    def __init__(
        self,
        clock: Clock,
        documents_dir: Path,
        notify: Callable[[str], None],
        sync_room: Callable[[Session, str], object],
        set_dnd: Callable[[Session, str, bool], object],
        notify_user: Callable[[int], None] = lambda _user_id: None,
        *,
        limits: DocumentLimits,
        send_signal: Callable[[str, str, Signal], None] = lambda _session, _to, _signal: None,
    ) -> None:
        self.clock = clock
        self.documents_dir = documents_dir
        self.limits = limits
        self._notify = notify
        self._notify_user = notify_user
        self._send_signal = send_signal
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

    def present(self, db: Session, public_id: str) -> Participant:
        """The participant behind a live channel, while still in the call, or Forbidden."""
        found = db.scalar(select(Participant).where(Participant.public_id == public_id))
        if found is None or found.left_at is not None:
            raise Forbidden("you are no longer in this call", "participant")
        return found

    def signal(
        self, db: Session, sender: Participant, to: object, kind: object, data: object
    ) -> None:
        """Relay a WebRTC message between two admitted participants of the same call."""
        if not sender.admitted:
            raise Forbidden("you are not in the call yet", "participant")
        target = db.scalar(
            select(Participant).where(
                Participant.public_id == str(to),
                Participant.session_id == sender.session_id,
                Participant.left_at.is_(None),
                Participant.admitted.is_(True),
            )
        )
        if target is None:
            raise NotFound("no such participant in this call", "to")
        message = Signal(
            sender=sender.public_id,
            kind=str(kind),
            data=data if isinstance(data, dict) else {},
        )
        self._send_signal(sender.session.public_id, target.public_id, message)

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
        session = self.ticket_session(db, ticket)
        if not self.may_enter(db, session, user):
            raise Forbidden("another staff member serves this citizen", "ticket")
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
        if session is None:
            reserved = db.scalar(
                select(Ticket).where(Ticket.status == "serving", Ticket.room_id == room.id)
            )
            if reserved is not None:  # a citizen was admitted here; their call opens soon
                if user is None or reserved.served_by_id != user.id:
                    raise Forbidden(CLOSED, "room", code="call.closed")
                session = self.ticket_session(db, reserved)
        if session is not None:
            self._refuse_walk_in(db, session, user, "room")
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

    # ---- who may enter --------------------------------------------------------------
    @staticmethod
    def closed(session: CallSession) -> bool:
        """A consultation from the reception, or a private room: no walking in."""
        return session.private or session.ticket_id is not None

    def may_enter(self, db: Session, session: CallSession, user: User) -> bool:
        """Whether a staff member is seated in a closed conversation or was brought in."""
        return user.id in self._allowed(db, session)

    def _allowed(self, db: Session, session: CallSession) -> set[int]:
        """Ids of the staff members who may enter: seated, serving, or brought in."""
        allowed = self._seated_ids(session)
        if session.ticket is not None and session.ticket.served_by_id is not None:
            allowed.add(session.ticket.served_by_id)
        return allowed | self._colleague_ids(db, session)

    @staticmethod
    def _seated_ids(session: CallSession) -> set[int]:
        return {p.user_id for p in session.participants if p.user_id and not p.left_at}

    @staticmethod
    def _colleague_ids(db: Session, session: CallSession) -> set[int]:
        return set(
            db.scalars(select(CallColleague.user_id).where(CallColleague.session_id == session.id))
        )

    def _refuse_walk_in(
        self, db: Session, session: CallSession, user: User | None, field: str
    ) -> None:
        """Refuse whoever would walk into a closed conversation without a seat in it."""
        if self.closed(session) and (user is None or not self.may_enter(db, session, user)):
            raise Forbidden(CLOSED, field, code="call.closed")

    def bring_in(self, db: Session, actor: Participant, username: object) -> User:
        """A host lets a colleague (another staff member of the hub) enter this call."""
        self._host(actor)
        found = (
            db.scalar(select(User).where(User.username == username))
            if isinstance(username, str)
            else None
        )
        if found is None or found.disabled:
            raise NotFound("no such staff member", "user", code="call.colleague.unknown")
        session = actor.session
        if self.may_enter(db, session, found):
            raise Conflict(
                "this colleague may already enter", "user", code="call.colleague.already"
            )
        self._seat(db, session, [found.id])
        db.commit()
        self._changed(db, session)
        self._notify_user(found.id)
        return found

    def _seat(self, db: Session, session: CallSession, user_ids: list[int]) -> None:
        """Let these staff members (back) into the conversation, whatever happens to seats."""
        known = self._colleague_ids(db, session)
        for user_id in dict.fromkeys(user_ids):
            if user_id not in known:
                db.add(
                    CallColleague(session_id=session.id, user_id=user_id, added_at=self.clock.now())
                )

    def brought_in(self, db: Session, user: User) -> list[CallSession]:
        """Open conversations a host brought this staff member into, not yet entered."""
        sessions = db.scalars(
            select(CallSession)
            .join(CallColleague, CallColleague.session_id == CallSession.id)
            .where(CallColleague.user_id == user.id, CallSession.ended_at.is_(None))
            .order_by(CallColleague.added_at)
        )
        return [s for s in sessions if user.id not in self._seated_ids(s)]

    def colleagues(self, db: Session, session: CallSession) -> list[User]:
        """Staff members a host could bring into this call (not yet allowed in)."""
        allowed = self._allowed(db, session)
        users = db.scalars(select(User).where(User.disabled.is_(False)).order_by(User.display_name))
        return [u for u in users if u.id not in allowed]

    def join_session(self, db: Session, public_id: str, user: User) -> Credentials:
        """A staff member enters a conversation they were brought into (or sit in)."""
        session = self.session(db, public_id)
        self._refuse_walk_in(db, session, user, "session")
        return self._add(db, session, "host", user.display_name, user=user)

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
        if target.user_id is not None:  # sent out means out: no way back in by address
            for row in db.scalars(
                select(CallColleague).where(
                    CallColleague.session_id == actor.session_id,
                    CallColleague.user_id == target.user_id,
                )
            ):
                db.delete(row)
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
        self._seat(db, session, sorted(self._seated_ids(session)))  # they may come back
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
        """Store a PDF, PNG or JPEG (checked by content) within the call's and the disk's room."""
        if not actor.admitted:
            raise Forbidden("you are not in the call yet", "participant")
        room = self._room_left(db, actor.session_id)
        self.documents_dir.mkdir(parents=True, exist_ok=True)
        self._check_disk(self.documents_dir)
        head = stream.read(16)
        kind = sniff(head)
        if kind is None:
            raise ValidationError(
                "file", "only PDF, PNG and JPEG files can be shared", code="document.type"
            )
        mime, ext = kind
        if mime != "application/pdf":
            head = self._picture_head(head, stream)
        public_id = f"d-{secrets.token_hex(8)}"
        folder = self.documents_dir / actor.session.public_id
        created = not folder.is_dir()
        folder.mkdir(exist_ok=True)
        path = folder / public_id  # never the uploader's name: no path tricks on disk
        size = 0
        try:
            with path.open("xb") as out:
                for chunk in itertools.chain([head], iter(lambda: stream.read(CHUNK), b"")):
                    size += len(chunk)
                    self._check_size(size, room)
                    self._check_disk(folder)
                    out.write(chunk)
            # Another upload to this call may have finished in the meantime.
            self._check_size(size, self._room_left(db, actor.session_id))
            document = Document(
                public_id=public_id,
                session_id=actor.session_id,
                filename=display_name(filename, ext),
                mime=mime,
                size=size,
                uploaded_by=actor.display_name,
                at=self.clock.now(),
            )
            db.add(document)
            db.commit()
        except Exception as exc:
            path.unlink(missing_ok=True)
            if created:  # the call's first document: leave no empty folder behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._disk_full() from exc
            raise
        self._changed(db, actor.session)
        return document

    def _room_left(self, db: Session, session_id: int) -> int:
        """Bytes this call may still take; refused when it is full by count or by size."""
        count, used = db.execute(
            select(func.count(Document.id), func.coalesce(func.sum(Document.size), 0)).where(
                Document.session_id == session_id
            )
        ).one()
        if count >= self.limits.per_call:
            raise Conflict(
                f"a call may hold at most {self.limits.per_call} documents",
                "file",
                code="document.quota.count",
            )
        if used >= self.limits.bytes_per_call:
            raise self._quota_full()
        return self.limits.bytes_per_call - used

    def _check_size(self, size: int, room: int) -> None:
        if size > MAX_DOCUMENT:
            raise file_too_large()
        if size > room:
            raise self._quota_full()

    def _quota_full(self) -> TooLarge:
        return TooLarge(
            f"the documents of a call may come to at most {self.limits.bytes_per_call / MB:g} MB",
            "file",
            code="document.quota.size",
        )

    def _check_disk(self, folder: Path) -> None:
        if shutil.disk_usage(folder).free < self.limits.min_free:
            raise self._disk_full()

    def _disk_full(self) -> NoRoom:
        log.warning("a document was refused: the disk of %s is nearly full", self.documents_dir)
        return NoRoom(
            "the hub's disk is nearly full; no documents can be shared now",
            "file",
            code="document.disk_full",
        )

    def _picture_head(self, head: bytes, stream: Any) -> bytes:
        """Read on until the header gives the picture's size; refuse broken ones and bombs."""
        try:
            while (found := imageinfo.size(head)) is None:
                chunk = stream.read(CHUNK)
                if not chunk or len(head) > IMAGE_HEADER_LIMIT:
                    raise imageinfo.NotAnImage("the header ends before the picture's size")
                head += chunk
        except imageinfo.NotAnImage:
            raise ValidationError("file", NOT_AN_IMAGE, code="document.image_invalid") from None
        if found.pixels > self.limits.max_pixels:
            raise ValidationError(
                "file",
                f"pictures may have at most {self.limits.max_pixels / 1e6:g} megapixels"
                f" (this one has {found.width} x {found.height})",
                code="document.image_too_large",
            )
        return head

    def document(self, db: Session, actor: Participant, public_id: str) -> tuple[Document, Path]:
        """A document of the actor's own session and its file (seated participants only)."""
        if not actor.admitted:
            raise Forbidden("you are not in the call yet", "participant")
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
        for model in (ChatMessage, Document, Invite, CallColleague):
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
