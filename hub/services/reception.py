"""The virtual reception: tickets, positions, estimates, staff actions and retention."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from hub import validation
from hub.clock import Clock
from hub.errors import Conflict, Forbidden, NotFound, RuleBroken, ServiceError, ValidationError
from hub.models import (
    OUTCOMES,
    CallSession,
    Category,
    Department,
    Participant,
    RateEvent,
    Room,
    Ticket,
    TicketMessage,
    User,
)
from hub.schedule import Schedule

MAX_NAME = 80
MAX_DESCRIPTION = 500
MAX_MESSAGE = 300
MAX_NOTE = 500
LANGUAGES = ("de", "en")
ESTIMATE_MIN_SAMPLES = 5
ESTIMATE_WINDOW = timedelta(days=14)
SERVER_WINDOW = timedelta(hours=1)
STALE_WAITING = timedelta(hours=12)
RATE_WINDOW = timedelta(minutes=10)
RATE_CACHE = timedelta(seconds=5)  # how long a computed service rate is reused


class RateLimited(ServiceError):
    """Too many tickets from one address; try again later."""

    status = 429


@dataclass(frozen=True)
class ReceptionInfo:
    """What a citizen sees before taking a ticket."""

    open: bool
    configured: bool
    waiting: int
    estimate_minutes: int | None
    next_opening: datetime | None


@dataclass(frozen=True)
class NewTicket:
    """A created ticket and its secret token (given to the citizen only, stored hashed)."""

    ticket: Ticket
    token: str


@dataclass(frozen=True)
class Place:
    """A waiting ticket's place in its queue."""

    position: int
    estimate_minutes: int | None


def hash_token(token: str) -> str:
    """The stored form of a ticket token."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReceptionService:
    """Owns every change to tickets; commits first, then tells all hub processes."""

    def __init__(
        self,
        clock: Clock,
        zone: Any,
        notify: Callable[[str, str | None], None],
        sync_room: Callable[[Session, str], object],
        retention: timedelta,
        ticket_rate: int,
        end_call: Callable[[Session, Ticket], None] | None = None,
        open_call: Callable[[Session, Ticket], object] | None = None,
    ) -> None:
        self.clock = clock
        self.zone = zone
        self._notify = notify
        self._sync_room = sync_room
        self.retention = retention
        self.ticket_rate = ticket_rate
        self._end_call = end_call
        self._open_call = open_call
        self._rate_cache: tuple[datetime, tuple[float | None, int]] | None = None

    # ---- reading ----------------------------------------------------------
    def reception_room(self, db: Session) -> Room | None:
        """The room of kind reception whose opening hours and status the reception uses."""
        return db.scalar(select(Room).where(Room.kind == "reception").order_by(Room.id).limit(1))

    def categories(self, db: Session, active_only: bool = True) -> list[Category]:
        """Concern categories in display order."""
        stmt = select(Category).options(selectinload(Category.department))
        if active_only:
            stmt = stmt.where(Category.active.is_(True))
        return list(db.scalars(stmt.order_by(Category.position, Category.name_de)))

    def info(self, db: Session) -> ReceptionInfo:
        """Open or closed, how many wait, and an estimate for a newcomer."""
        now = self.clock.now()
        room = self.reception_room(db)
        if room is None:
            return ReceptionInfo(False, False, 0, None, None)
        schedule = Schedule.from_json(room.schedule_json)
        is_open = room.enabled and schedule.is_open(now, self.zone)
        waiting = self.waiting_count(db)
        estimate = self._estimate(db, waiting + 1, now) if is_open else None
        nxt = None if is_open or not room.enabled else schedule.next_opening(now, self.zone)
        return ReceptionInfo(is_open, True, waiting, estimate, nxt)

    def waiting_count(self, db: Session) -> int:
        """Tickets waiting in any queue."""
        return (
            db.scalar(select(func.count()).select_from(Ticket).where(Ticket.status == "waiting"))
            or 0
        )

    def by_token(self, db: Session, token: object) -> Ticket:
        """The ticket for a citizen's token, or NotFound (timing does not reveal near misses)."""
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise NotFound("no such ticket", "token")
        digest = hash_token(token)
        ticket = db.scalar(select(Ticket).where(Ticket.token_hash == digest))
        if ticket is None or not hmac.compare_digest(ticket.token_hash, digest):
            raise NotFound("no such ticket", "token")
        return ticket

    def by_public_id(self, db: Session, public_id: str) -> Ticket:
        """A ticket by the id staff pages use, or NotFound."""
        ticket = db.scalar(select(Ticket).where(Ticket.public_id == public_id))
        if ticket is None:
            raise NotFound(f"no ticket {public_id!r}", "ticket")
        return ticket

    def places(self, db: Session) -> dict[str, Place]:
        """Every waiting ticket's position and estimate, keyed by public id (one query)."""
        now = self.clock.now()
        rows = db.execute(
            select(Ticket.public_id, Ticket.department_id, Ticket.assigned_user_id)
            .where(Ticket.status == "waiting")
            .order_by(Ticket.arrived_at, Ticket.id)
        ).all()
        per_queue: dict[tuple[int | None, int | None], int] = {}
        service, servers = self._service_rate(db, now)
        places: dict[str, Place] = {}
        for public_id, department_id, user_id in rows:
            key = (None, user_id) if user_id is not None else (department_id, None)
            per_queue[key] = per_queue.get(key, 0) + 1
            position = per_queue[key]
            places[public_id] = Place(position, _estimate(position, service, servers))
        return places

    def place_of(self, db: Session, ticket: Ticket) -> Place | None:
        """One waiting ticket's place (one COUNT), or None when it is not waiting."""
        if ticket.status != "waiting":
            return None
        same_queue = (
            Ticket.assigned_user_id == ticket.assigned_user_id
            if ticket.assigned_user_id is not None
            else (
                Ticket.assigned_user_id.is_(None) & (Ticket.department_id == ticket.department_id)
            )
        )
        ahead = (
            db.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    Ticket.status == "waiting",
                    same_queue,
                    Ticket.arrived_at <= ticket.arrived_at,  # lets the index bound the count
                    or_(
                        Ticket.arrived_at < ticket.arrived_at,
                        (Ticket.arrived_at == ticket.arrived_at) & (Ticket.id < ticket.id),
                    ),
                )
            )
            or 0
        )
        service, servers = self._service_rate(db, self.clock.now())
        return Place(ahead + 1, _estimate(ahead + 1, service, servers))

    def _service_rate(self, db: Session, now: datetime) -> tuple[float | None, int]:
        """Mean service time in seconds (None with too little history) and active servers."""
        # Every position and estimate needs this; it changes only when a visit is admitted
        # or ends, so it is reused for a few seconds (this process's changes renew it).
        cached = self._rate_cache
        if cached is not None and timedelta(0) <= now - cached[0] < RATE_CACHE:
            return cached[1]
        rate = self._compute_service_rate(db, now)
        self._rate_cache = (now, rate)
        return rate

    def _compute_service_rate(self, db: Session, now: datetime) -> tuple[float | None, int]:
        rows = db.execute(
            select(Ticket.served_at, Ticket.ended_at)
            .where(
                Ticket.ended_at.is_not(None),
                Ticket.served_at.is_not(None),
                Ticket.ended_at > now - ESTIMATE_WINDOW,
            )
            .order_by(Ticket.ended_at.desc())
            .limit(50)
        ).all()
        durations = [(end - start).total_seconds() for start, end in rows if end > start]
        servers = (
            db.scalar(
                select(func.count(func.distinct(Ticket.served_by_id))).where(
                    Ticket.served_at > now - SERVER_WINDOW
                )
            )
            or 0
        )
        if len(durations) < ESTIMATE_MIN_SAMPLES:
            return None, max(1, servers)
        return statistics.fmean(durations), max(1, servers)

    def _estimate(self, db: Session, position: int, now: datetime) -> int | None:
        service, servers = self._service_rate(db, now)
        return _estimate(position, service, servers)

    def queue_for(self, db: Session, user: User) -> list[Ticket]:
        """Waiting tickets this staff member may take: their departments' and their own."""
        dept_ids = [d.id for d in user.departments]
        mine = Ticket.assigned_user_id == user.id
        unassigned = Ticket.assigned_user_id.is_(None)
        scope = (
            or_(mine, unassigned & Ticket.department_id.in_(dept_ids))
            if dept_ids
            else or_(mine, unassigned)
        )
        stmt = (
            select(Ticket)
            .options(selectinload(Ticket.category), selectinload(Ticket.department))
            .where(Ticket.status == "waiting", scope)
            .order_by(Ticket.arrived_at, Ticket.id)
        )
        return list(db.scalars(stmt))

    def serving_for(self, db: Session, user: User) -> list[Ticket]:
        """Tickets this staff member is serving now."""
        stmt = (
            select(Ticket)
            .options(selectinload(Ticket.category), selectinload(Ticket.room))
            .where(Ticket.status == "serving", Ticket.served_by_id == user.id)
            .order_by(Ticket.served_at)
        )
        return list(db.scalars(stmt))

    def serving_count(self, db: Session, room: Room) -> int:
        """Citizens being served in `room` now (they count as occupants)."""
        return (
            db.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.status == "serving", Ticket.room_id == room.id)
            )
            or 0
        )

    # ---- citizen actions ----------------------------------------------------
    def create(
        self,
        db: Session,
        *,
        name: object,
        category: object,
        description: object,
        consent: object,
        language: object,
        source: str,
        rate_key: str,
    ) -> NewTicket:
        """Validate and create a ticket at the end of its department's queue."""
        lang = validation.choice(language or "de", "language", LANGUAGES)
        clean_name = validation.text(name, "name", max_len=MAX_NAME)
        clean_description = validation.multiline(
            description, "description", max_len=MAX_DESCRIPTION, required=False
        )
        if not validation.flag(consent, "consent"):
            raise ValidationError("consent", "the privacy notice must be accepted")
        slug = validation.slug(category if isinstance(category, str) else "", "category")
        cat = db.scalar(
            select(Category)
            .options(joinedload(Category.department))
            .where(Category.slug == slug, Category.active.is_(True))
        )
        if cat is None:
            raise RuleBroken("category", f"no category {slug!r}")
        room = self.reception_room(db)
        now = self.clock.now()
        if room is None or not (
            room.enabled and Schedule.from_json(room.schedule_json).is_open(now, self.zone)
        ):
            raise Conflict("the reception is closed", "reception")
        self._rate_limit(db, "ticket", rate_key, now)
        token = secrets.token_urlsafe(32)  # 256 bits
        ticket = Ticket(
            public_id=f"t-{secrets.token_hex(8)}",
            token_hash=hash_token(token),
            status="waiting",
            language=lang,
            name=clean_name,
            description=clean_description,
            category_id=cat.id,
            category_slug=cat.slug,
            origin_department=cat.department.slug,
            department_id=cat.department_id,
            path=json.dumps([{"to": f"department:{cat.department.slug}", "at": _iso(now)}]),
            source=source,
            arrived_at=now,
            created_at=now,
            erased=False,
            messages=[],  # known empty: reading them later needs no query
        )
        db.add(ticket)
        db.commit()
        self._changed(db, ticket, reception=room)
        return NewTicket(ticket, token)

    def _rate_limit(self, db: Session, kind: str, key: str, now: datetime) -> None:
        # Older events are deleted by purge(); the window keeps the count right meanwhile.
        used = (
            db.scalar(
                select(func.count())
                .select_from(RateEvent)
                .where(
                    RateEvent.kind == kind,
                    RateEvent.key == key[:64],
                    RateEvent.at >= now - RATE_WINDOW,
                )
            )
            or 0
        )
        if used >= self.ticket_rate:
            db.commit()
            raise RateLimited("too many tickets from this address; please try again later")
        db.add(RateEvent(kind=kind, key=key[:64], at=now))

    def leave(self, db: Session, ticket: Ticket) -> None:
        """The citizen leaves the queue (or hangs up)."""
        if ticket.status == "ended":
            return
        self._end(db, ticket, "left")

    # ---- staff actions ------------------------------------------------------
    def _visible_to(self, ticket: Ticket, user: User) -> bool:
        if ticket.assigned_user_id is not None:
            return ticket.assigned_user_id == user.id
        dept_ids = {d.id for d in user.departments}
        return not dept_ids or ticket.department_id in dept_ids

    def _own(self, ticket: Ticket, user: User) -> None:
        if ticket.status == "serving" and ticket.served_by_id != user.id and not user.is_admin:
            raise Forbidden("another staff member is serving this citizen", "ticket")
        if ticket.status == "waiting" and not self._visible_to(ticket, user) and not user.is_admin:
            raise Forbidden("this citizen waits in another queue", "ticket")

    def admit(self, db: Session, public_id: str, user: User, room_slug: str | None) -> Ticket:
        """Serve a waiting citizen in one of the staff member's rooms; the room becomes busy."""
        ticket = self.by_public_id(db, public_id)
        if ticket.status != "waiting":
            raise Conflict("this citizen is not waiting any more", "ticket")
        self._own(ticket, user)
        room = self._room_for(db, user, room_slug, ticket)
        now = self.clock.now()
        result = db.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.status == "waiting")
            .values(
                status="serving",
                served_by_id=user.id,
                room_id=room.id,
                served_at=now,
                admitted_at=func.coalesce(Ticket.admitted_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            db.rollback()
            raise Conflict("a colleague admitted this citizen a moment ago", "ticket")
        db.commit()
        db.refresh(ticket)
        if self._open_call is not None:
            self._open_call(db, ticket)
            db.commit()
        self._changed(db, ticket, room.slug)
        return ticket

    def _room_for(self, db: Session, user: User, slug: str | None, ticket: Ticket) -> Room:
        if slug:
            room = db.scalar(select(Room).where(Room.slug == slug))
            if room is None:
                raise RuleBroken("room", f"no room {slug!r}")
        else:
            room = self._default_room(db, user, ticket)
            if room is None:
                raise RuleBroken("room", "no free room: check in to a room first")
        if room.kind == "reception":
            raise RuleBroken("room", "choose a consultation or meeting room")
        if not room.enabled or not Schedule.from_json(room.schedule_json).is_open(
            self.clock.now(), self.zone
        ):
            raise Conflict("the room is closed", "room")
        if room.dnd:
            raise Conflict("the room is set to do not disturb", "room")
        if self._in_use(db, room):
            raise Conflict("another conversation is going on in this room", "room")
        return room

    def _in_use(self, db: Session, room: Room) -> bool:
        """A citizen is served there, or a call is open in it (e.g. a staff meeting)."""
        open_call = db.scalar(
            select(CallSession.id).where(
                CallSession.room_id == room.id, CallSession.ended_at.is_(None)
            )
        )
        return open_call is not None or self.serving_count(db, room) > 0

    def _default_room(self, db: Session, user: User, ticket: Ticket) -> Room | None:
        candidates = [p.room for p in user.presences if p.room.kind != "reception"]
        if ticket.department_id is not None:
            candidates += list(
                db.scalars(
                    select(Room)
                    .where(Room.department_id == ticket.department_id, Room.kind != "reception")
                    .order_by(Room.name)
                )
            )
        for room in candidates:
            if room.enabled and not room.dnd and not self._in_use(db, room):
                return room
        return None

    def rooms_for_admission(self, db: Session, user: User) -> list[Room]:
        """Rooms to admit into: checked-in rooms, then the own departments', then the rest."""
        mine = [p.room for p in user.presences if p.room.kind != "reception"]
        dept_ids = {d.id for d in user.departments}
        rest = list(db.scalars(select(Room).where(Room.kind != "reception").order_by(Room.name)))
        own = [r for r in rest if r.department_id in dept_ids and r not in mine]
        return mine + own + [r for r in rest if r not in mine and r not in own]

    def forward(
        self,
        db: Session,
        public_id: str,
        user: User,
        *,
        department: object = None,
        colleague: object = None,
        note: object = None,
    ) -> Ticket:
        """Send a citizen to another department's queue or a colleague, keeping their place."""
        ticket = self.by_public_id(db, public_id)
        if ticket.status == "ended":
            raise Conflict("this visit has ended", "ticket")
        self._own(ticket, user)
        clean_note = validation.multiline(note, "note", max_len=MAX_NOTE, required=False)
        if bool(department) == bool(colleague):
            raise RuleBroken("target", "choose either a department or a colleague")
        path = json.loads(ticket.path)
        now = self.clock.now()
        room_slug = ticket.room.slug if ticket.room else None
        if department:
            slug = validation.slug(department, "department")
            dept = db.scalar(select(Department).where(Department.slug == slug))
            if dept is None:
                raise RuleBroken("department", f"no department {slug!r}")
            ticket.department_id, ticket.assigned_user_id = dept.id, None
            path.append({"to": f"department:{dept.slug}", "at": _iso(now)})
        else:
            name = validation.slug(colleague, "colleague")
            other = db.scalar(select(User).where(User.username == name, User.disabled.is_(False)))
            if other is None:
                raise RuleBroken("colleague", f"no colleague {name!r}")
            ticket.assigned_user_id = other.id
            path.append({"to": f"user:{other.username}", "at": _iso(now)})
        ticket.path = json.dumps(path)
        ticket.forward_note = clean_note or None
        ticket.status, ticket.room_id, ticket.served_by_id = "waiting", None, None
        db.commit()
        self._changed(db, ticket, room_slug)
        return ticket

    def return_to_lobby(self, db: Session, public_id: str, user: User) -> Ticket:
        """Send a citizen in service back to the waiting queue (same place in the order)."""
        ticket = self.by_public_id(db, public_id)
        if ticket.status != "serving":
            raise Conflict("this citizen is not in a conversation", "ticket")
        self._own(ticket, user)
        room_slug = ticket.room.slug if ticket.room else None
        ticket.status, ticket.room_id, ticket.served_by_id = "waiting", None, None
        db.commit()
        self._changed(db, ticket, room_slug)
        return ticket

    def end(self, db: Session, public_id: str, user: User, outcome: object) -> Ticket:
        """Close the visit with an outcome (resolved, forwarded elsewhere, no-show)."""
        ticket = self.by_public_id(db, public_id)
        if ticket.status == "ended":
            raise Conflict("this visit has ended already", "ticket")
        self._own(ticket, user)
        clean = validation.choice(outcome, "outcome", [o for o in OUTCOMES if o != "left"])
        if ticket.served_by_id is None:
            ticket.served_by_id = user.id
        self._end(db, ticket, clean)
        return ticket

    def _end(self, db: Session, ticket: Ticket, outcome: str) -> None:
        room_slug = ticket.room.slug if ticket.room else None
        ticket.status, ticket.outcome, ticket.ended_at = "ended", outcome, self.clock.now()
        ticket.room_id = None
        db.commit()
        self._changed(db, ticket, room_slug)

    def message(self, db: Session, public_id: str, user: User, text: object) -> TicketMessage:
        """Send a short message to a waiting or served citizen."""
        ticket = self.by_public_id(db, public_id)
        if ticket.status == "ended":
            raise Conflict("this visit has ended", "ticket")
        self._own(ticket, user)
        clean = validation.multiline(text, "text", max_len=MAX_MESSAGE)
        msg = TicketMessage(ticket_id=ticket.id, at=self.clock.now(), text=clean)
        db.add(msg)
        db.commit()
        self._notify("ticket", ticket.public_id)
        return msg

    # ---- retention ----------------------------------------------------------
    def purge(self, db: Session) -> int:
        """Erase personal fields of visits that ended longer ago than the retention period."""
        now = self.clock.now()
        db.execute(delete(RateEvent).where(RateEvent.at < now - RATE_WINDOW))
        stale = list(
            db.scalars(
                select(Ticket).where(
                    Ticket.status == "waiting", Ticket.arrived_at < now - STALE_WAITING
                )
            )
        )
        for ticket in stale:  # nobody will serve these any more
            self._end(db, ticket, "no_show")
        due = list(
            db.scalars(
                select(Ticket).where(
                    Ticket.status == "ended",
                    Ticket.erased.is_(False),
                    Ticket.ended_at < now - self.retention,
                )
            )
        )
        for ticket in due:
            for seat in db.scalars(select(Participant).where(Participant.ticket_id == ticket.id)):
                seat.display_name = "–"  # the call record keeps no name either
            ticket.name = None
            ticket.description = None
            ticket.forward_note = None
            ticket.messages.clear()
            ticket.erased = True
        db.commit()
        return len(due)

    # ---- plumbing -------------------------------------------------------------
    def _changed(
        self, db: Session, ticket: Ticket, *rooms: str | None, reception: Room | None = None
    ) -> None:
        # A ticket that was never served has no call to end.
        if ticket.status != "serving" and ticket.served_at and self._end_call is not None:
            self._end_call(db, ticket)  # leaving service ends the call, chat and documents
        if ticket.status != "waiting":
            self._rate_cache = None  # service times or the number of servers changed
        reception = reception or self.reception_room(db)
        for slug in {*(r for r in rooms if r), *([reception.slug] if reception else [])}:
            self._sync_room(db, slug)
        self._notify("queue", ticket.public_id)


def _estimate(position: int, service: float | None, servers: int) -> int | None:
    if service is None:
        return None
    return max(1, math.ceil(position * service / servers / 60))


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
