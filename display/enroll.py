"""``empfang-display enroll``: trade a one-time code for this display's id and broker login.

The settings of the hardware already in the file (outputs, LEDs, knock button, panel) are
kept; the rooms are not stored, the hub assigns them over MQTT. The work is done by
`edge.enrollment`, which every device shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.enrollment import EnrollError, dump_toml, enrolled_config, write_private
from edge.enrollment import enroll as enroll_device

__all__ = ["EnrollError", "dump_toml", "enroll", "enrolled_config", "write_private"]


def enroll(hub: str, code: str, path: Path) -> dict[str, Any]:
    """Enroll this display and write its configuration to `path`; the new settings."""
    return enroll_device(hub, code, path, "display", dropped=("rooms",))
