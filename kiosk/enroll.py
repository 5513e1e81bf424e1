"""``empfang-kiosk enroll``: trade a one-time code for this kiosk's id and broker login.

The kiosk's other settings already in the file (camera, audio, GPIO pins, timeouts) are
kept. The work is done by `edge.enrollment`, which every device shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.enrollment import EnrollError
from edge.enrollment import enroll as enroll_device

__all__ = ["EnrollError", "enroll"]


def enroll(hub: str, code: str, path: Path) -> dict[str, Any]:
    """Enroll this kiosk and write its configuration to `path`; the new settings."""
    return enroll_device(hub, code, path, "kiosk")
