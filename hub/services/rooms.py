"""Rooms: their derived state, staff presence, do-not-disturb, admin changes, publishing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, null, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from hub import validation
from hub.clock import Clock
from hub.errors import Conflict, NotFound, RuleBroken
from hub.models import (
    ROOM_KINDS,
    ROOM_POLICIES,
    CallSession,
    Department,
    Participant,
    Presence,
    Room,
    Ticket,
    User,
)
from hub.schedule import Schedule
from protocol.payloads import RoomState, RoomStatus

log = logging.getLogger(__name__)

MAX_NAME = 200


class StatusPublisher(Protocol):
    """Where room statuses go once committed (the MQTT bridge)."""

    def publish_status(self, status: RoomStatus) -> None:
        """Publish one room's status."""

    def clear_status(self, room: str) -> None:
        """Remove a deleted room's status."""


@dataclass(frozen=True)
class RoomInput:
    """Validated fields of a room as an admin sets them."""

    name: str
    kind: str
    policy: str
    department: str | None
    enabled: bool
    schedule: Schedule


class RoomService:
    """Owns every change to rooms; commits first, then publishes the new status."""

    def __init__(
        self,
        clock: Clock,
        zone: Any,
        ttl: int,
        publisher: StatusPublisher,
        notify_presence: Callable[[int], None] = lambda _user_id: None,
    ) -> None:
        self.clock = clock
        self.zone = zone
        self.ttl = ttl
        self.publisher = publisher
        # Tells a staff member's own pages that the rooms they are checked in to changed.
        self.notify_presence = notify_presence
        # Serialises read-then-publish inside this process so a republish never
        # overtakes a newer status on its way out.
        self._publish_lock = threading.Lock()

    # ---- reading -------------------------------------------------------
    def list_rooms(self, db: Session) -> list[Room]:
        """All rooms, ordered by department and name."""
        stmt = (
            select(Room)
            .options(selectinload(Room.department))
            .outerjoin(Department)
            .order_by(
                Room.kind != "reception", Department.name.is_(None), Department.name, Room.name
            )
        )
        return list(db.scalars(stmt))

    def get(self, db: Session, slug: str) -> Room:
        """One room by slug, or NotFound."""
        room = db.scalar(select(Room).where(Room.slug == slug))
        if room is None:
            raise NotFound(f"no room {slug!r}", "room")
        return room

    def status_of(self, room: Room, now: datetime | None = None) -> RoomStatus:
        """The status last published for `room`, stamped `now`."""
        stamp = now or self.clock.now()
        return RoomStatus(
            room=room.slug,
            name=room.published_name or room.name,
            state=RoomState(room.state or RoomState.CLOSED),
            occupants=room.occupants,
            waiting=room.waiting,
            since=room.since or stamp,
            seq=room.seq,
            updated=stamp,
            ttl=self.ttl,
        )

    def is_open(self, room: Room, now: datetime | None = None) -> bool:
        """Whether the room is enabled and inside its opening hours."""
        at = now or self.clock.now()
        return room.enabled and Schedule.from_json(room.schedule_json).is_open(at, self.zone)

    def present_user_ids(self, db: Session, room: Room) -> set[int]:
        """Ids of staff checked in to `room`."""
        return set(db.scalars(select(Presence.user_id).where(Presence.room_id == room.id)))

    def checked_in_rooms(self, db: Session, user: User) -> set[str]:
        """Slugs of the rooms `user` is checked in to."""
        return self.checked_in_rooms_of(db, user.id)

    def checked_in_rooms_of(self, db: Session, user_id: int) -> set[str]:
        """Slugs of the rooms the user with `user_id` is checked in to."""
        stmt = select(Room.slug).join(Presence).where(Presence.user_id == user_id)
        return set(db.scalars(stmt))

    # ---- derivation and publishing -------------------------------------
    def _waiting(self, db: Session, room: Room) -> int:
        """Citizens waiting: the reception room carries the whole lobby's count."""
        if room.kind != "reception":
            return 0
        count = select(func.count()).select_from(Ticket).where(Ticket.status == "waiting")
        return db.scalar(count) or 0

    def _occupants(self, db: Session, room: Room) -> int:
        """Distinct people in the room: checked-in staff, served citizens, call participants."""
        # One statement: (user id, ticket id, guest seat) of everybody who counts.
        none = null()
        present = select(Presence.user_id, none, none).where(Presence.room_id == room.id)
        served = select(none, Ticket.id, none).where(
            Ticket.status == "serving", Ticket.room_id == room.id
        )
        connected = (
            select(Participant.user_id, Participant.ticket_id, Participant.public_id)
            .join(CallSession)
            .where(
                CallSession.room_id == room.id,
                CallSession.ended_at.is_(None),
                Participant.connected.is_(True),
                Participant.admitted.is_(True),
                Participant.left_at.is_(None),
            )
        )
        people = {
            ("user", uid) if uid else ("ticket", tid) if tid else ("guest", pid)
            for uid, tid, pid in db.execute(union_all(present, served, connected))
        }
        return len(people)

    def _derive(self, db: Session, room: Room, now: datetime) -> tuple[RoomState, int, int]:
        occupants = self._occupants(db, room)
        waiting = self._waiting(db, room)
        if not self.is_open(room, now):
            state = RoomState.CLOSED
        elif room.dnd:
            state = RoomState.DND
        elif occupants:
            state = RoomState.BUSY
        elif waiting:
            state = RoomState.WAITING
        else:
            state = RoomState.FREE
        return state, occupants, waiting

    def sync(self, db: Session, slug: str) -> RoomStatus | None:
        """Recompute one room; when anything visible changed, bump seq, commit, publish."""
        # One sync at a time in this process: concurrent ones would only collide on seq
        # and derive again; other processes still can, and then this one retries.
        with self._publish_lock:
            return self._sync(db, slug)

    def _sync(self, db: Session, slug: str) -> RoomStatus | None:
        fresh = select(Room).where(Room.slug == slug).execution_options(populate_existing=True)
        for _attempt in range(10):
            _end_transaction(db)
            room = db.scalar(fresh)
            if room is None:
                return None
            now = self.clock.now()
            state, occupants, waiting = self._derive(db, room, now)
            unchanged = (
                room.state == state
                and room.occupants == occupants
                and room.waiting == waiting
                and room.published_name == room.name
            )
            if unchanged:
                _end_transaction(db)
                return None
            since = room.since if room.state == state and room.since else now
            result = db.execute(
                update(Room)
                .where(Room.id == room.id, Room.seq == room.seq)
                .values(
                    seq=Room.seq + 1,
                    state=state.value,
                    occupants=occupants,
                    waiting=waiting,
                    published_name=room.name,
                    since=since,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                db.rollback()
                continue  # another process published first: derive again
            status = RoomStatus(
                room=room.slug,
                name=room.name,
                state=state,
                occupants=occupants,
                waiting=waiting,
                since=since,
                seq=room.seq + 1,
                updated=now,
                ttl=self.ttl,
            )
            db.commit()
            self.publisher.publish_status(status)
            _end_transaction(db)
            return status
        raise RuntimeError(f"room {slug}: status kept changing under us")

    def refresh_all(self, db: Session) -> list[RoomStatus]:
        """Sync every room (opening-hours boundaries, missed updates); returns what changed."""
        slugs = list(db.scalars(select(Room.slug)))
        changed = []
        for slug in slugs:
            try:
                changed.append(self.sync(db, slug))
            except Exception:  # one broken room must never silence the others
                log.exception("could not sync room %s", slug)
                db.rollback()
        return [s for s in changed if s is not None]

    def republish_all(self, db: Session) -> int:
        """Publish every room's current status again (same seq, fresh `updated`)."""
        count = 0
        with self._publish_lock:
            db.rollback()
            now = self.clock.now()
            for room in db.scalars(select(Room)):
                if not room.state:
                    continue
                try:
                    self.publisher.publish_status(self.status_of(room, now))
                except Exception:  # one broken room must never silence the others
                    log.exception("could not republish room %s", room.slug)
                    continue
                count += 1
            db.rollback()
        return count

    # ---- staff actions --------------------------------------------------
    def check_in(self, db: Session, slug: str, user: User) -> RoomStatus:
        """Mark `user` as present in the room."""
        room = self.get(db, slug)
        if not self.is_open(room):
            raise Conflict("the room is closed", "room")
        exists = db.scalar(
            select(Presence).where(Presence.room_id == room.id, Presence.user_id == user.id)
        )
        if exists is None:
            db.add(Presence(room_id=room.id, user_id=user.id, since=self.clock.now()))
            try:
                db.commit()
            except IntegrityError:
                db.rollback()  # a second click raced the first: already present
            else:
                self.notify_presence(user.id)
        return self._after_change(db, slug)

    def check_out(self, db: Session, slug: str, user: User) -> RoomStatus:
        """Mark `user` as no longer present in the room."""
        room = self.get(db, slug)
        presence = db.scalar(
            select(Presence).where(Presence.room_id == room.id, Presence.user_id == user.id)
        )
        if presence is not None:
            db.delete(presence)
            db.commit()
            self.notify_presence(user.id)
        return self._after_change(db, slug)

    def set_dnd(self, db: Session, slug: str, on: bool) -> RoomStatus:
        """Set or clear do-not-disturb on the room."""
        room = self.get(db, slug)
        room.dnd = on
        db.commit()
        return self._after_change(db, slug)

    def _after_change(self, db: Session, slug: str) -> RoomStatus:
        published = self.sync(db, slug)
        return published or self.status_of(self.get(db, slug))

    # ---- admin ------------------------------------------------------------
    def parse_input(self, data: Mapping[str, Any], schedule: Schedule) -> RoomInput:
        """Validate the editable fields of a room."""
        department = data.get("department") or None
        if department is not None:
            department = validation.slug(department, "department")
        return RoomInput(
            name=validation.text(data.get("name"), "name", max_len=MAX_NAME),
            kind=validation.choice(data.get("kind", "consultation"), "kind", ROOM_KINDS),
            policy=validation.choice(data.get("policy", "knock"), "policy", ROOM_POLICIES),
            department=department,
            enabled=validation.flag(data.get("enabled", True), "enabled"),
            schedule=schedule,
        )

    def _department(self, db: Session, slug: str | None) -> Department | None:
        if slug is None:
            return None
        dept = db.scalar(select(Department).where(Department.slug == slug))
        if dept is None:
            raise RuleBroken("department", f"no department {slug!r}")
        return dept

    def create(self, db: Session, slug: str, data: RoomInput) -> RoomStatus:
        """Create a room and publish its first status."""
        slug = validation.slug(slug, "slug")
        if db.scalar(select(Room.id).where(Room.slug == slug)) is not None:
            raise Conflict(f"a room {slug!r} exists already", "slug")
        room = Room(
            slug=slug,
            seq=0,
            state="",
            occupants=0,
            waiting=0,
            published_name="",
            dnd=False,
            **self._fields(db, data),
        )
        db.add(room)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            raise Conflict(f"a room {slug!r} exists already", "slug") from None
        return self._after_change(db, slug)

    def update(self, db: Session, slug: str, data: RoomInput) -> RoomStatus:
        """Change a room's settings; its status follows at once."""
        room = self.get(db, slug)
        for key, value in self._fields(db, data).items():
            setattr(room, key, value)
        db.commit()
        return self._after_change(db, slug)

    def _fields(self, db: Session, data: RoomInput) -> dict[str, Any]:
        return {
            "name": data.name,
            "kind": data.kind,
            "policy": data.policy,
            "department": self._department(db, data.department),
            "enabled": data.enabled,
            "schedule_json": data.schedule.to_json(),
        }

    def set_enabled(self, db: Session, slug: str, enabled: bool) -> RoomStatus:
        """Switch a room on or off (off shows as closed)."""
        room = self.get(db, slug)
        room.enabled = enabled
        left = [presence.user_id for presence in room.presences] if not enabled else []
        if not enabled:
            room.dnd = False
            room.presences.clear()  # a switched-off room has nobody in it
        db.commit()
        for user_id in left:
            self.notify_presence(user_id)
        return self._after_change(db, slug)

    def delete(self, db: Session, slug: str) -> None:
        """Delete a room and clear its retained status."""
        room = self.get(db, slug)
        if room.presences:
            raise Conflict("staff are checked in to this room; they must check out first", "room")
        with self._publish_lock:
            db.delete(room)
            db.commit()
            self.publisher.clear_status(slug)


def _end_transaction(db: Session) -> None:
    """End the caller's transaction: the next read sees what other writers committed."""
    if db.new or db.dirty or db.deleted:
        raise RuntimeError("commit before syncing a room")  # a programming error
    db.commit()
    # Callers read relationships after a sync (a ticket's new room, say): reload them.
    db.expire_all()
