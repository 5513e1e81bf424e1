"""Liveness and readiness for load balancers and monitoring."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    """200 when database and broker answer, 503 naming the failing checks otherwise."""
    runtime = current_app.extensions["empfang"]
    checks = runtime.health()
    failing = [name for name, passed in checks.items() if not passed]
    body = {
        "status": "degraded" if failing else "ok",
        "version": runtime.version,
        "failing": failing,
        **checks,
    }
    return jsonify(body), 503 if failing else 200
