"""Liveness and readiness for load balancers and monitoring."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when database and broker are reachable, 503 otherwise."""
    runtime = current_app.extensions["empfang"]
    checks = runtime.health()
    ok = all(checks.values())
    body = {"status": "ok" if ok else "degraded", "version": runtime.version, **checks}
    return jsonify(body), 200 if ok else 503
