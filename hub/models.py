"""Database tables of the hub (SQLAlchemy 2 declarative mapping)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROOM_KINDS = ("reception", "consultation", "meeting")
TICKET_STATES = ("waiting", "serving", "ended")
OUTCOMES = ("resolved", "forwarded", "no_show", "left")
ROOM_POLICIES = ("open", "knock", "private")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table."""


user_departments = Table(
    "user_departments",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("department_id", ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True),
)


class Department(Base):
    """An organisational unit that owns rooms (and, later, reception queues)."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    rooms: Mapped[list[Room]] = relationship(back_populates="department")
    members: Mapped[list[User]] = relationship(
        secondary=user_departments, back_populates="departments"
    )


class Room(Base):
    """A permanent virtual room and the last status the hub published for it."""

    __tablename__ = "rooms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="consultation")
    policy: Mapped[str] = mapped_column(String(20), default="knock")
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), nullable=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    dnd: Mapped[bool] = mapped_column(Boolean, default=False)
    schedule_json: Mapped[str] = mapped_column(Text, default="")
    # What was last published: seq only grows (also across restarts, it lives here).
    seq: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(10), default="")
    occupants: Mapped[int] = mapped_column(Integer, default=0)
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    published_name: Mapped[str] = mapped_column(String(200), default="")
    since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    department: Mapped[Department | None] = relationship(back_populates="rooms")
    presences: Mapped[list[Presence]] = relationship(
        back_populates="room", cascade="all, delete-orphan"
    )


class User(Base):
    """A staff account; admins also manage rooms and accounts."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(UTCDateTime())

    presences: Mapped[list[Presence]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )
    departments: Mapped[list[Department]] = relationship(
        secondary=user_departments, back_populates="members"
    )


class Presence(Base):
    """A staff member checked in to a room ("I am in this room")."""

    __tablename__ = "presences"
    __table_args__ = (UniqueConstraint("room_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    since: Mapped[datetime] = mapped_column(UTCDateTime())

    room: Mapped[Room] = relationship(back_populates="presences")
    user: Mapped[User] = relationship(back_populates="presences")


class LoginAttempt(Base):
    """A failed login, kept briefly for rate limiting across hub processes."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Category(Base):
    """A concern a citizen can choose at the reception; it leads to a department's queue."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name_de: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    department: Mapped[Department] = relationship()

    def name(self, language: str) -> str:
        """The category's name in `language` (German when no English name is set)."""
        return self.name_en if language == "en" and self.name_en else self.name_de


class Ticket(Base):
    """A citizen's visit to the virtual reception; personal fields are erased after retention."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_arrived", "status", "arrived_at"),
        # Positions: a count within one queue reads the index alone.
        Index("ix_tickets_queue", "status", "assigned_user_id", "department_id", "arrived_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    language: Mapped[str] = mapped_column(String(5), default="de")
    name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), nullable=True
    )
    category_slug: Mapped[str] = mapped_column(String(64))
    origin_department: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), nullable=True
    )
    assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    forward_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str] = mapped_column(Text, default="[]")
    source: Mapped[str] = mapped_column(String(64), default="web")
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    served_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    room_id: Mapped[int | None] = mapped_column(
        ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True
    )
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)

    category: Mapped[Category | None] = relationship()
    department: Mapped[Department | None] = relationship()
    assigned_user: Mapped[User | None] = relationship(foreign_keys=[assigned_user_id])
    served_by: Mapped[User | None] = relationship(foreign_keys=[served_by_id])
    room: Mapped[Room | None] = relationship()
    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketMessage.id"
    )


class TicketMessage(Base):
    """A short message from staff to a waiting citizen."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class RateEvent(Base):
    """One use of a rate-limited public action (ticket creation), shared by hub processes."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_kind_key_at", "kind", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


PARTICIPANT_ROLES = ("host", "guest", "external")


class CallSession(Base):
    """One conversation in a room: an admitted ticket's call or a meeting in a staff room."""

    __tablename__ = "call_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    room_id: Mapped[int | None] = mapped_column(
        ForeignKey("rooms.id", ondelete="SET NULL"), nullable=True, index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    room: Mapped[Room | None] = relationship()
    ticket: Mapped[Ticket | None] = relationship()
    participants: Mapped[list[Participant]] = relationship(
        back_populates="session", cascade="all, delete-orphan"
    )


class Participant(Base):
    """Someone admitted to a call session; connected while `connected` is set."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(10))
    display_name: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True
    )
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which live channel is current: an old one closing after a reconnect changes nothing.
    channel: Mapped[str | None] = mapped_column(String(24), nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Knocking guests wait here until a host lets them in.
    admitted: Mapped[bool] = mapped_column(Boolean, default=True)

    session: Mapped[CallSession] = relationship(back_populates="participants")


class CallColleague(Base):
    """A staff member a host brought into a closed conversation; they may enter it."""

    __tablename__ = "call_colleagues"
    __table_args__ = (UniqueConstraint("session_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class ChatMessage(Base):
    """A chat line in a call; deleted with the session."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)


class Document(Base):
    """A file shared in a call; its bytes live on disk and go with the session."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(120))
    mime: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Invite(Base):
    """A time-limited link for an external participant (interpreter, lawyer, authority)."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("call_sessions.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )

    session: Mapped[CallSession] = relationship()


DEVICE_KINDS = ("kiosk", "display", "light")


class Device(Base):
    """A kiosk, door display or status light: its enrollment, broker login and last state."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200), default="")
    # Room slugs as a JSON list; a kiosk holds its reception room here.
    rooms_json: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The one-time enrollment code, stored hashed; spent once used.
    code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    code_expires: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    code_spent: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    broker_username: Mapped[str | None] = mapped_column(String(150), nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # From devices/<id>/state: online until its will says offline.
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    telemetry_json: Mapped[str] = mapped_column(Text, default="{}")
