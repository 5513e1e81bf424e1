"""Kiosk media: where the picture comes from, and what the kiosk makes of remote media.

- `CameraSource` is the seam for the camera: `open_camera("synthetic")` gives a moving test
  pattern now; a picamera2 or V4L2 source plugs in behind the same protocol (a picamera2
  track hands frames from its worker thread to asyncio through
  `asyncio.run_coroutine_threadsafe`, as aiortc's ``contrib/media.py`` does).
- `SyntheticVideoTrack` is a `VideoStreamTrack` producing RGB frames at a chosen rate.
- `FrameCounter` consumes a remote track and counts its frames (total and per second), for
  the kiosk's "frames received from staff" figure and for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import av
import numpy as np
from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError
from av.video.reformatter import VideoReformatter

log = logging.getLogger(__name__)

# A 3x5 bitmap font for the frame counter (rows top to bottom, 3 bits per row).
DIGITS = (
    (7, 5, 5, 5, 7),
    (2, 6, 2, 2, 7),
    (7, 1, 7, 4, 7),
    (7, 1, 7, 1, 7),
    (5, 5, 7, 1, 1),
    (7, 4, 7, 1, 7),
    (7, 4, 7, 5, 7),
    (7, 1, 1, 1, 1),
    (7, 5, 7, 5, 7),
    (7, 5, 7, 1, 7),
)
COUNTER_SCALE = 8  # each font pixel becomes an 8x8 block: digits 24x40 px
COUNTER_DIGITS = 6
STRIPE_PERIOD = 64  # width of one colour band of the moving background, in pixels
STRIPE_SPEED = 4  # pixels the background moves per frame


class SyntheticVideoTrack(VideoStreamTrack):
    """A moving colour pattern with a bouncing square and a frame counter.

    Frames are yuv420p, as a camera's are: a frame is shared by every consumer (the
    encoder of each call and the kiosk's own preview, in different threads), and PyAV
    keeps one format converter per frame, which two threads must never use at once. An
    encoder given yuv420p converts nothing.

    `fps` sets the pace (`next_timestamp()` sleeps until each frame is due); `clock` is
    injectable for tests. The counter drawn in the top-left corner is `frames_sent`.
    """

    kind = "video"

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError("width and height must be positive and even")
        if not 0 < fps <= 60:
            raise ValueError("fps must be above 0 and at most 60")
        needed = COUNTER_DIGITS * 4 * COUNTER_SCALE + COUNTER_SCALE
        if width < needed or height < 7 * COUNTER_SCALE:
            raise ValueError(f"the picture must be at least {needed}x{7 * COUNTER_SCALE}")
        self.width, self.height, self.fps = width, height, fps
        self.frames_sent = 0
        self._clock = clock
        self._ticks = round(VIDEO_CLOCK_RATE / fps)
        self._first_at: float | None = None
        self._pts = 0
        self._to_yuv = VideoReformatter()
        # Background: diagonal colour bands, twice as wide as the picture so that a moving
        # window over it is a cheap slice.
        x = np.arange(width + STRIPE_PERIOD, dtype=np.int32)[None, :]
        y = np.arange(height, dtype=np.int32)[:, None]
        phase = ((x + y) % STRIPE_PERIOD) * (256 // STRIPE_PERIOD)
        bands = [phase, (phase + 85) % 256, 255 - phase]
        self._background = np.stack(bands, axis=-1).astype(np.uint8)

    async def next_timestamp(self) -> tuple[int, fractions.Fraction]:
        """The next frame's pts at 90 kHz, after sleeping until that frame is due."""
        if self.readyState != "live":
            raise MediaStreamError
        if self._first_at is None:
            self._first_at = self._clock()
            self._pts = 0
        else:
            self._pts += self._ticks
            wait = self._first_at + self._pts / VIDEO_CLOCK_RATE - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
        return self._pts, VIDEO_TIME_BASE

    async def recv(self) -> av.VideoFrame:
        """The next frame (yuv420p, what the encoders take), paced at `fps`."""
        pts, time_base = await self.next_timestamp()
        rgb = av.VideoFrame.from_ndarray(self.render(self.frames_sent), format="rgb24")
        frame = self._to_yuv.reformat(rgb, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        self.frames_sent += 1
        return frame

    def render(self, index: int) -> np.ndarray:
        """Frame number `index` as an RGB array of shape (height, width, 3)."""
        shift = (index * STRIPE_SPEED) % STRIPE_PERIOD
        image = self._background[:, shift : shift + self.width].copy()
        # A white square bouncing left and right across the middle.
        side = self.height // 6
        span = max(1, self.width - side)
        pos = (index * STRIPE_SPEED * 2) % (2 * span)
        left = pos if pos < span else 2 * span - pos
        top = (self.height - side) // 2
        image[top : top + side, left : left + side] = 255
        self._draw_counter(image, index)
        return image

    @staticmethod
    def _draw_counter(image: np.ndarray, value: int) -> None:
        s = COUNTER_SCALE
        text = str(value % 10**COUNTER_DIGITS).rjust(COUNTER_DIGITS, "0")
        image[: 7 * s, : (len(text) * 4 + 1) * s] = 0
        for n, char in enumerate(text):
            glyph = DIGITS[int(char)]
            for row, bits in enumerate(glyph):
                for col in range(3):
                    if bits & (4 >> col):
                        x0 = (1 + n * 4 + col) * s
                        y0 = (1 + row) * s
                        image[y0 : y0 + s, x0 : x0 + s] = 255


def put_newest(queue: asyncio.Queue[Any], item: object) -> None:
    """Queue `item`; when the queue is full the oldest goes (a slow reader gets the newest).

    None is the end of a track.
    """
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


async def next_or_end(track: MediaStreamTrack, queue: asyncio.Queue[Any]) -> Any:
    """The next item of `track`'s queue; at the end (None) the track stops."""
    if track.readyState != "live":
        raise MediaStreamError
    item = await queue.get()
    if item is None:
        track.stop()
        raise MediaStreamError
    return item


class CameraSource(Protocol):
    """Where the kiosk's picture comes from (synthetic now; picamera2 or V4L2 on a Pi)."""

    def track(self) -> MediaStreamTrack:
        """The camera's one live track (share it between calls with aiortc's MediaRelay)."""
        ...

    def call_track(self) -> MediaStreamTrack:
        """What a call sends: `track()` itself, or H.264 packets when the camera encodes."""
        ...

    def close(self) -> None:
        """Release the camera; safe to call more than once."""
        ...


class SyntheticCamera:
    """A `CameraSource` showing `SyntheticVideoTrack`'s test pattern."""

    def __init__(self, width: int = 640, height: int = 480, fps: float = 15.0) -> None:
        self._track = SyntheticVideoTrack(width, height, fps)
        self._closed = False

    def track(self) -> SyntheticVideoTrack:
        """The pattern's track."""
        if self._closed:
            raise RuntimeError("the camera is closed")
        return self._track

    def call_track(self) -> SyntheticVideoTrack:
        """The pattern's track (raw frames)."""
        return self.track()

    def close(self) -> None:
        """Stop the track; safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._track.stop()


CameraFactory = Callable[..., CameraSource]


def open_camera(kind: str = "synthetic", **options: Any) -> CameraSource:
    """The camera source named `kind` (only "synthetic" so far), built with `options`."""
    if kind == "synthetic":
        return SyntheticCamera(**options)
    raise ValueError(f"unknown camera source {kind!r} (known: synthetic)")


class FrameCounter:
    """Consumes a track (usually a remote one) and counts its frames.

    `start()` begins consuming on the running loop; `frames` is the total so far,
    `rate()` the frames of the last `window` seconds per second. Video frames also set
    `size`. `on_frame` (optional) sees every frame, e.g. to show it. The counter ends by
    itself when the track ends; `stop()` is idempotent.
    """

    def __init__(
        self,
        track: MediaStreamTrack,
        *,
        window: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_frame: Callable[[Any], None] | None = None,
    ) -> None:
        self.track = track
        self._on_frame = on_frame
        self.kind = track.kind
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._window = window
        self._clock = clock
        self._recent: deque[float] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether frames are still being consumed."""
        return self._task is not None and not self._task.done()

    def start(self) -> FrameCounter:
        """Begin consuming the track on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._consume(), name=f"count {self.kind} {self.track.id}"
            )
        return self

    def count(self, frame: object) -> None:
        """Count one frame (called for every frame received)."""
        now = self._clock()
        self.frames += 1
        self._recent.append(now)
        self._trim(now)
        if isinstance(frame, av.VideoFrame):
            self.size = (frame.width, frame.height)
        if self._on_frame is not None:
            try:
                self._on_frame(frame)
            except Exception:
                log.exception("the frame handler failed")

    def rate(self) -> float:
        """Frames per second over the last `window` seconds."""
        self._trim(self._clock())
        return len(self._recent) / self._window

    async def stop(self) -> None:
        """Stop consuming; safe to call more than once."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self._window:
            self._recent.popleft()

    async def _consume(self) -> None:
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                log.debug("%s track ended after %d frames", self.kind, self.frames)
                return
            self.count(frame)
