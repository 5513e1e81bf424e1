"""The kiosk's camera by configuration: synthetic, V4L2 (USB) or picamera2 (Pi camera).

All three are `kiosk.media.CameraSource`s, so the rest of the code path is the same.

- ``synthetic``: `kiosk.media.SyntheticCamera`, the moving test pattern;
- ``v4l2:/dev/videoN``: aiortc's `MediaPlayer` over PyAV's v4l2 input;
- ``picamera2``: `Picamera2Track`, which captures RGB frames in a worker thread and hands
  them to asyncio with `asyncio.run_coroutine_threadsafe`, as aiortc's
  ``contrib/media.py`` does. picamera2 is imported only when it is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError

from kiosk.config import CameraConfig, VideoConfig
from kiosk.media import CameraSource, SyntheticCamera

log = logging.getLogger(__name__)


class V4l2Camera:
    """A V4L2 (USB) camera through aiortc's MediaPlayer."""

    def __init__(self, device: str, video: VideoConfig) -> None:
        from aiortc.contrib.media import MediaPlayer

        self._player = MediaPlayer(
            device,
            format="v4l2",
            options={
                "video_size": f"{video.width}x{video.height}",
                "framerate": str(int(video.fps)),
            },
        )
        if self._player.video is None:
            raise RuntimeError(f"{device} gives no video")
        self._closed = False

    def track(self) -> MediaStreamTrack:
        """The camera's video track."""
        if self._closed or self._player.video is None:
            raise RuntimeError("the camera is closed")
        return self._player.video

    def close(self) -> None:
        """Stop the player's track (its worker thread ends with it); idempotent."""
        if not self._closed:
            self._closed = True
            if self._player.video is not None:
                self._player.video.stop()


class Picamera2Track(MediaStreamTrack):
    """Frames from a started Picamera2, captured in a worker thread."""

    kind = "video"

    def __init__(self, camera: Any, fps: float, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._camera = camera
        self._loop = loop
        self._queue: asyncio.Queue[av.VideoFrame | None] = asyncio.Queue(maxsize=2)
        self._ticks = round(VIDEO_CLOCK_RATE / fps)
        self._stop = threading.Event()
        self._start: float | None = None
        self._thread = threading.Thread(target=self._capture, name="picamera2", daemon=True)
        self._thread.start()

    def _capture(self) -> None:
        while not self._stop.is_set():
            try:
                array = self._camera.capture_array("main")
            except Exception:
                log.exception("picamera2 capture failed")
                break
            frame = av.VideoFrame.from_ndarray(array[:, :, :3], format="rgb24")
            future = asyncio.run_coroutine_threadsafe(self._offer(frame), self._loop)
            with contextlib.suppress(Exception):
                future.result(timeout=2)
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._queue.put(None), self._loop)

    async def _offer(self, frame: av.VideoFrame) -> None:
        if self._queue.full():  # a slow consumer gets the newest picture
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def recv(self) -> av.VideoFrame:
        """The next captured frame with a 90 kHz timestamp from the wall clock."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self._queue.get()
        if frame is None:
            self.stop()
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        frame.pts = int((now - self._start) * VIDEO_CLOCK_RATE)
        frame.time_base = VIDEO_TIME_BASE
        return frame

    def stop(self) -> None:
        """Stop capturing."""
        self._stop.set()
        super().stop()


class Picamera2Camera:
    """The Pi camera (libcamera) through picamera2; needs a running event loop."""

    def __init__(self, video: VideoConfig) -> None:
        from picamera2 import Picamera2  # only a Pi with picamera2 pays for it

        self._camera = Picamera2()
        config = self._camera.create_video_configuration(
            main={"size": (video.width, video.height), "format": "RGB888"},
            controls={"FrameRate": video.fps},
        )
        self._camera.configure(config)
        self._camera.start()
        self._fps = video.fps
        self._track: Picamera2Track | None = None
        self._closed = False

    def track(self) -> Picamera2Track:
        """The camera's one track (made on first use, on the running loop)."""
        if self._closed:
            raise RuntimeError("the camera is closed")
        if self._track is None:
            self._track = Picamera2Track(self._camera, self._fps, asyncio.get_running_loop())
        return self._track

    def close(self) -> None:
        """Stop the track and the camera; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._track is not None:
            self._track.stop()
        self._camera.stop()
        self._camera.close()


def open_configured_camera(camera: CameraConfig, video: VideoConfig) -> CameraSource:
    """The camera the configuration names."""
    if camera.kind == "synthetic":
        return SyntheticCamera(video.width, video.height, video.fps)
    if camera.kind == "v4l2":
        assert camera.device is not None
        return V4l2Camera(camera.device, video)
    if camera.kind == "picamera2":
        return Picamera2Camera(video)
    raise ValueError(f"unknown camera {camera.kind!r}")
