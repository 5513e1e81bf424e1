"""Video pictures for the kiosk's window: raw RGBA frames handed to whoever shows them.

The engine converts a decoded frame only while somebody watches its feed, and only at the
size of the box that shows it: no scaling is left for the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from av.video.reformatter import VideoReformatter


@dataclass(frozen=True)
class Picture:
    """One video picture as RGBA bytes, row by row."""

    width: int
    height: int
    rgba: bytes


Viewer = Callable[[Picture | None], None]


class FrameFeed:
    """The pictures of one video (the staff's, or the citizen's own preview).

    `watch`/`unwatch` may be called from any thread; `put` runs the viewers on the caller's
    thread, so a viewer must only hand the picture on.
    """

    def __init__(self) -> None:
        self._viewers: tuple[Viewer, ...] = ()
        self._lock = threading.Lock()
        self.box: tuple[int, int] | None = None  # (width, height) the viewer shows pictures in

    @property
    def watchers(self) -> int:
        """How many viewers want pictures (none: the engine makes none)."""
        return len(self._viewers)

    def watch(self, viewer: Viewer, box: tuple[int, int] | None = None) -> None:
        """Hand every picture to `viewer` from now on, fitted into `box`."""
        with self._lock:
            self.box = box
            if viewer not in self._viewers:
                self._viewers = (*self._viewers, viewer)

    def unwatch(self, viewer: Viewer) -> None:
        """Stop handing pictures to `viewer`."""
        with self._lock:
            self._viewers = tuple(v for v in self._viewers if v != viewer)

    def put(self, picture: Picture | None) -> None:
        """Show `picture` (None: nothing to show)."""
        for viewer in self._viewers:
            viewer(picture)


def fit(width: int, height: int, box: tuple[int, int] | None) -> tuple[int, int]:
    """The largest even size with the aspect of `width` x `height` inside `box`."""
    if box is None or box[0] < 2 or box[1] < 2:
        return width, height
    scale = min(box[0] / width, box[1] / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def to_picture(
    frame: Any, converter: VideoReformatter, box: tuple[int, int] | None = None
) -> Picture:
    """An av.VideoFrame as RGBA bytes, scaled to fit `box` (None: as it is).

    `converter` belongs to the caller's thread: a frame's own converter may be busy in
    another thread (an encoder's) with the same frame.
    """
    width, height = fit(frame.width, frame.height, box)
    rgba = converter.reformat(frame, width=width, height=height, format="rgba")
    return Picture(width, height, rgba.to_ndarray().tobytes())
