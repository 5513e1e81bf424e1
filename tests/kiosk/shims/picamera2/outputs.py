"""picamera2.outputs as the kiosk uses it: the base class of encoder outputs."""

from __future__ import annotations

from typing import Any


class Output:
    """Receives each encoded picture through `outputframe`."""

    def __init__(self, pts: Any = None) -> None:
        self.recording = False

    def outputframe(
        self, frame: bytes, keyframe: bool = True, timestamp: int | None = None
    ) -> None:
        """One encoded picture."""
