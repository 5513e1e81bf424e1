"""Who is asking: the logged-in staff member, and decorators that demand one."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import abort, current_app, g, jsonify, redirect, request, session, url_for

from hub.db import get_db
from hub.models import User

F = TypeVar("F", bound=Callable[..., Any])


def fingerprint(user: User) -> str:
    """What a login session remembers of the password, so a new password ends it."""
    return user.password_hash[-16:]


def still_valid(user: User | None, remembered: str | None, *, admin: bool = False) -> bool:
    """Whether a login made with `remembered` still stands (and still is an admin's)."""
    if user is None or user.disabled or remembered != fingerprint(user):
        return False
    return user.is_admin or not admin


def load_user() -> None:
    """Put the session's active staff member (or None) into g.user."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    user = get_db().get(User, user_id)
    if not still_valid(user, session.get("pw")):
        session.clear()  # disabled, deleted, or password reset since login
        return
    g.user = user


def wants_json() -> bool:
    """True for API and live-channel requests, which get JSON errors instead of pages."""
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def _refuse(status: int, message: str) -> Any:
    if wants_json():
        return jsonify(error=message), status
    if status == 401:
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    abort(status, message)


def login_required(view: F) -> F:
    """Only logged-in staff may use this view."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return _refuse(401, "login required")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """Only logged-in admins may use this view."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return _refuse(401, "login required")
        if not g.user.is_admin:
            return _refuse(403, "admins only")
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def client_address() -> str:
    """The caller's address as the WSGI server (or a trusted proxy fix) reports it."""
    return (request.remote_addr or "unknown")[:64]


def same_origin() -> bool:
    """Whether a WebSocket handshake comes from our own pages (no cross-site hijacking)."""
    origin = request.headers.get("Origin")
    if not origin:
        return not current_app.config.get("LIVE_REQUIRE_ORIGIN", True)
    return urlsplit(origin).netloc == request.host


def safe_next(target: str | None) -> str | None:
    """A local redirect target from ?next=, never another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target
