"""The empfang hub: rooms, reception, signalling, devices, admin and the MQTT bridge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the hub application (see hub.app.create_app)."""
    from hub.app import create_app as factory

    return factory(*args, **kwargs)
