"""Staff accounts: creation, passwords (argon2), login with rate limiting."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import validation
from hub.clock import Clock
from hub.errors import Conflict, NotFound, ServiceError, ValidationError
from hub.models import LoginAttempt, User

MIN_PASSWORD = 10
MAX_PASSWORD = 200
ATTEMPT_WINDOW = timedelta(minutes=10)
MAX_FAILS_PER_USER = 5
MAX_FAILS_PER_ADDRESS = 20


class RateLimited(ServiceError):
    """Too many failed logins; try again later."""

    status = 429


@dataclass(frozen=True)
class NewUser:
    """An account and the password to hand over (printed once, never stored in clear)."""

    user: User
    password: str


class UserService:
    """Owns accounts and logins."""

    def __init__(self, clock: Clock, hasher: PasswordHasher | None = None) -> None:
        self.clock = clock
        self.hasher = hasher or PasswordHasher()
        # Verifying against this keeps the timing of unknown and known usernames alike.
        self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))

    def list_users(self, db: Session) -> list[User]:
        """All accounts by username."""
        return list(db.scalars(select(User).order_by(User.username)))

    def get(self, db: Session, user_id: int) -> User:
        """One account, or NotFound."""
        user = db.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}", "user")
        return user

    def check_password(self, password: object, field: str = "password") -> str:
        """A password that meets the length rule."""
        if not isinstance(password, str):
            raise ValidationError(field, "must be text")
        if len(password) < MIN_PASSWORD:
            raise ValidationError(field, f"must be at least {MIN_PASSWORD} characters")
        if len(password) > MAX_PASSWORD:
            raise ValidationError(field, f"must be at most {MAX_PASSWORD} characters")
        return password

    def create(
        self,
        db: Session,
        username: object,
        display_name: object,
        password: object | None = None,
        is_admin: bool = False,
    ) -> NewUser:
        """Create an account; without a password one is generated and returned."""
        name = validation.slug(
            str(username).lower() if isinstance(username, str) else username, "username"
        )
        shown = validation.text(display_name or name, "display_name", max_len=200)
        clear = self.check_password(password) if password else secrets.token_urlsafe(12)
        if db.scalar(select(User.id).where(User.username == name)) is not None:
            raise Conflict(f"the username {name!r} is taken", "username")
        user = User(
            username=name,
            display_name=shown,
            password_hash=self.hasher.hash(clear),
            is_admin=is_admin,
            disabled=False,
            created=self.clock.now(),
        )
        db.add(user)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            raise Conflict(f"the username {name!r} is taken", "username") from None
        return NewUser(user, clear)

    def update(
        self,
        db: Session,
        user_id: int,
        display_name: object,
        is_admin: bool,
        disabled: bool,
        acting: User,
    ) -> User:
        """Change an account's name and flags; an admin cannot lock themselves out."""
        user = self.get(db, user_id)
        shown = validation.text(display_name, "display_name", max_len=200)
        if user.id == acting.id and (disabled or not is_admin):
            raise Conflict("you cannot disable yourself or remove your own admin flag", "user")
        user.display_name, user.is_admin, user.disabled = shown, is_admin, disabled
        if disabled:
            user.presences.clear()
        db.commit()
        return user

    def reset_password(self, db: Session, user_id: int, password: object | None = None) -> str:
        """Set a new password (generated when not given) and return it."""
        user = self.get(db, user_id)
        clear = self.check_password(password) if password else secrets.token_urlsafe(12)
        user.password_hash = self.hasher.hash(clear)
        db.commit()
        return clear

    def authenticate(self, db: Session, username: object, password: object, address: str) -> User:
        """The account for these credentials, or an error; failures are rate-limited."""
        name = username.strip().lower()[:64] if isinstance(username, str) else ""
        clear = password if isinstance(password, str) else ""
        now = self.clock.now()
        since = now - ATTEMPT_WINDOW
        db.execute(delete(LoginAttempt).where(LoginAttempt.at < since))
        fails_user = (
            db.scalar(
                select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == name)
            )
            or 0
        )
        fails_addr = (
            db.scalar(
                select(func.count())
                .select_from(LoginAttempt)
                .where(LoginAttempt.address == address)
            )
            or 0
        )
        if fails_user >= MAX_FAILS_PER_USER or fails_addr >= MAX_FAILS_PER_ADDRESS:
            db.commit()
            raise RateLimited("too many failed logins; wait a few minutes and try again")
        user = db.scalar(select(User).where(User.username == name)) if name else None
        if self._verify(user, clear) and user is not None and not user.disabled:
            if self.hasher.check_needs_rehash(user.password_hash):
                user.password_hash = self.hasher.hash(clear)
            db.execute(delete(LoginAttempt).where(LoginAttempt.username == name))
            db.commit()
            return user
        db.add(LoginAttempt(address=address[:64], username=name, at=now))
        db.commit()
        raise ServiceError("unknown username or wrong password", "password")

    def _verify(self, user: User | None, clear: str) -> bool:
        try:
            return self.hasher.verify(user.password_hash if user else self._dummy_hash, clear) and (
                user is not None
            )
        except (VerificationError, InvalidHashError):
            return False
