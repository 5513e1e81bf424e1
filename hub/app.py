"""The application factory: builds a hub from settings, with nothing done at import."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from hub import auth, db, i18n
from hub.clock import Clock
from hub.config import Settings, ensure_secret_key, load_settings
from hub.error_texts import friendly
from hub.errors import ServiceError
from hub.runtime import HubRuntime


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    start: bool = True,
    flask_config: dict[str, Any] | None = None,
) -> Flask:
    """Build a hub app; `start` connects the broker and begins background work."""
    settings = ensure_secret_key(settings or load_settings())
    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="empfang_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        SOCK_SERVER_OPTIONS={"ping_interval": 25},
        EMPFANG=settings,
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
    )
    if settings.public_url.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.config.update(flask_config or {})

    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    runtime = HubRuntime(settings, clock)
    app.extensions["empfang"] = runtime
    from hub.blueprints.calls import allow_large_uploads

    app.before_request(allow_large_uploads)  # must run before the CSRF check reads the body
    app.before_request(_no_socket_compression)
    csrf = CSRFProtect(app)
    db.init_app(app)
    i18n.init_app(app)
    app.before_request(auth.load_user)
    _register_blueprints(app, csrf)
    _register_errors(app)
    app.add_template_global(settings.site, "site")
    app.add_template_global(back_url, "back_url")
    app.add_template_filter(lambda dt: format_local(dt, runtime), "localtime")

    @app.get("/")
    def index() -> Any:
        """Send visitors to the room board (staff log in there)."""
        return redirect(url_for("rooms.board"))

    @app.after_request
    def _security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self' ws: wss:; frame-ancestors 'none'",
        )
        return response

    if start:
        runtime.start()
    logging.getLogger("hub").setLevel(logging.INFO)
    return app


def _register_blueprints(app: Flask, csrf: CSRFProtect) -> None:
    from hub.blueprints import (
        admin,
        api,
        calls,
        devices,
        health,
        queue,
        reception,
        reception_api,
        rooms,
        staff,
    )

    app.url_map.converters["string"] = devices.DeviceIdConverter
    # The kiosk API takes only application/json (or DELETE), which no cross-site form
    # can send without a CORS preflight that the hub never grants.
    csrf.exempt(reception_api.bp)
    csrf.exempt(calls.kiosk_join)
    csrf.exempt(devices.enroll)  # devices have no session; the one-time code is the proof
    for module in (
        staff, rooms, queue, reception, reception_api, calls, admin, devices, api, health,
    ):  # fmt: skip
        app.register_blueprint(module.bp)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError) -> Any:
        if auth.wants_json():
            return jsonify(exc.to_dict()), exc.status
        return render_template(
            "error.html", code=exc.status, message=friendly(exc), detail=exc.to_dict()["error"]
        ), exc.status

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Any:
        # Like a missing login: the request is not the caller's own, so 403 (not 400).
        message = f"csrf_token: {exc.description}"
        if auth.wants_json():
            return jsonify(error=message, field="csrf_token", code="request.csrf"), 403
        page = _(
            "Das Formular ist abgelaufen oder kam nicht von dieser Seite. "
            "Bitte laden Sie die Seite neu und versuchen Sie es noch einmal."
        )
        return render_template("error.html", code=403, message=page, detail=message), 403

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = exc.code or 500
        # Keep what the exception says beyond its body (Allow on 405, Retry-After on 429).
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if auth.wants_json():
            return jsonify(error=exc.description or exc.name), code, headers
        if request.path.startswith("/static/"):
            return exc
        return render_template("error.html", code=code, message=exc.description), code, headers


def back_url() -> str | None:
    """Where "back" on an error page leads: the page the visitor came from, if it is ours."""
    referrer = request.referrer
    if not referrer:
        return None
    came = urlsplit(referrer)
    here = urlsplit(request.host_url)
    if (came.scheme, came.netloc) != (here.scheme, here.netloc) or came.path == request.path:
        return None
    return came.path + (f"?{came.query}" if came.query else "")


def format_local(dt: datetime, runtime: HubRuntime) -> str:
    """'14:03' for today in the site's zone, '24.11. 14:03' for another day."""
    local = dt.astimezone(runtime.settings.zone)
    today = runtime.clock.now().astimezone(runtime.settings.zone).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%d.%m. %H:%M")


def _no_socket_compression() -> None:
    # permessage-deflate keeps a compressor per connection (about 190 MB for 1,000 waiting
    # citizens) for messages of a few hundred bytes: not worth it.
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)


def close_app(app: Flask) -> None:
    """Release everything the app holds (broker link, threads, database pool)."""
    app.extensions["empfang"].close()
