"""Database tables of the hub (SQLAlchemy 2 declarative mapping)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROOM_KINDS = ("reception", "consultation", "meeting")
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


class Department(Base):
    """An organisational unit that owns rooms (and, later, reception queues)."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))

    rooms: Mapped[list[Room]] = relationship(back_populates="department")


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
