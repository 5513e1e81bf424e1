"""Staff login and logout."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from hub.auth import client_address, fingerprint, safe_next
from hub.db import get_db
from hub.errors import ServiceError

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Show the login form; on valid credentials start a staff session."""
    target = safe_next(request.values.get("next")) or url_for("rooms.board")
    if request.method != "POST":  # GET and HEAD only show the page
        if g.user is not None:
            return redirect(target)
        return render_template("staff/login.html", next=target, error=None, username="")
    users = current_app.extensions["empfang"].users
    username = request.form.get("username", "")
    try:
        user = users.authenticate(
            get_db(), username, request.form.get("password", ""), client_address()
        )
    except ServiceError as exc:
        # The service explains in English for programs; the page speaks the visitor's language.
        if exc.status == 429:  # too many failed logins
            error, status = (
                _("Zu viele fehlgeschlagene Anmeldungen. Bitte warten Sie einige Minuten."),
                429,
            )
        else:
            error, status = _("Benutzername oder Passwort ist falsch."), 401
        return (
            render_template("staff/login.html", next=target, error=error, username=username),
            status,
        )
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["pw"] = fingerprint(user)
    return redirect(target)


@bp.post("/logout")
def logout() -> Any:
    """End the staff session."""
    session.clear()
    return redirect(url_for("staff.login"))
