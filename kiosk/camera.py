"""The kiosk's camera by configuration: synthetic, V4L2 (USB) or picamera2 (Pi camera).

All three are `kiosk.media.CameraSource`s, so the rest of the code path is the same.

- ``synthetic``: `kiosk.media.SyntheticCamera`, the moving test pattern;
- ``v4l2:/dev/videoN``: aiortc's `MediaPlayer` over PyAV's v4l2 input;
- ``picamera2``: `Picamera2Track`, which captures RGB frames in a worker thread and hands
  them to asyncio with `asyncio.run_coroutine_threadsafe`, as aiortc's
  ``contrib/media.py`` does. picamera2 is imported only when it is configured.

With ``[video] pre_encoded = true`` a call sends H.264 packets instead of raw frames: the
Pi camera's hardware encoder makes them (`Picamera2Camera`, the picture for the kiosk's
own preview then comes from the camera's small "lores" stream); on other sources the
software stand-in `kiosk.encoded.SoftwareH264` does (`EncodingCamera`).
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
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE

from kiosk.config import CameraConfig, VideoConfig
from kiosk.encoded import KEYFRAME_SECONDS, EncodedVideoTrack, SoftwareH264
from kiosk.media import CameraSource, SyntheticCamera, next_or_end, put_newest

PREVIEW_STREAM = (320, 240)  # the Pi camera's "lores" stream when the main one is encoded
H264_BITRATE = 1_000_000

log = logging.getLogger(__name__)


class V4l2Camera:
    """A V4L2 (USB) camera through aiortc's MediaPlayer."""

    def __init__(self, device: str, video: VideoConfig) -> None:
        from aiortc.contrib.media import MediaPlayer

        if not {"v4l2", "video4linux2"} & set(av.formats_available):
            # PyAV's wheels from PyPI come without FFmpeg's device inputs.
            raise RuntimeError(
                "this PyAV has no V4L2 input: install the distribution's python3-av "
                "(and let the kiosk's virtualenv see system packages) or use picamera2"
            )
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

    def call_track(self) -> MediaStreamTrack:
        """The camera's video track (raw frames)."""
        return self.track()

    def close(self) -> None:
        """Stop the player's track (its worker thread ends with it); idempotent."""
        if not self._closed:
            self._closed = True
            if self._player.video is not None:
                self._player.video.stop()


class Picamera2Track(MediaStreamTrack):
    """Frames from a started Picamera2, captured in a worker thread."""

    kind = "video"

    def __init__(
        self, camera: Any, fps: float, loop: asyncio.AbstractEventLoop, stream: str = "main"
    ) -> None:
        super().__init__()
        self._camera = camera
        self._stream = stream
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
                frame = _to_frame(self._camera.capture_array(self._stream))
            except Exception:
                log.exception("picamera2 capture failed")
                break
            future = asyncio.run_coroutine_threadsafe(self._offer(frame), self._loop)
            with contextlib.suppress(Exception):
                future.result(timeout=2)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        put_newest(self._queue, None)

    async def _offer(self, frame: av.VideoFrame) -> None:
        put_newest(self._queue, frame)

    async def recv(self) -> av.VideoFrame:
        """The next captured frame with a 90 kHz timestamp from the wall clock."""
        frame = await next_or_end(self, self._queue)
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


def _to_frame(array: Any) -> av.VideoFrame:
    """A picamera2 picture as a yuv420p VideoFrame (see `SyntheticVideoTrack` for why).

    YUV420 comes as one (h * 3/2, w) plane array; RGB888 and XRGB8888 are stored blue
    first, so their first three bytes are B, G, R.
    """
    if array.ndim == 2:
        return av.VideoFrame.from_ndarray(array, format="yuv420p")
    bgr = av.VideoFrame.from_ndarray(array[:, :, :3], format="bgr24")
    return bgr.reformat(format="yuv420p")  # a fresh frame: its converter is not shared


class Picamera2Camera:
    """The Pi camera (libcamera) through picamera2; needs a running event loop.

    With `video.pre_encoded` the main stream goes to the Pi's hardware H.264 encoder and
    calls send its packets; the kiosk's own preview then reads the small "lores" stream.
    """

    def __init__(self, video: VideoConfig) -> None:
        from picamera2 import Picamera2  # only a Pi with picamera2 pays for it

        self._camera = Picamera2()
        self._fps = video.fps
        self._pre_encoded = video.pre_encoded
        size = (video.width, video.height)
        if self._pre_encoded:
            config = self._camera.create_video_configuration(
                main={"size": size, "format": "YUV420"},
                lores={"size": PREVIEW_STREAM, "format": "YUV420"},
                controls={"FrameRate": video.fps},
            )
        else:
            config = self._camera.create_video_configuration(
                main={"size": size, "format": "RGB888"}, controls={"FrameRate": video.fps}
            )
        self._camera.configure(config)
        self._camera.start()
        self._track: Picamera2Track | None = None
        self._encoded: EncodedVideoTrack | None = None
        self._closed = False

    def track(self) -> Picamera2Track:
        """The camera's raw picture (made on first use, on the running loop)."""
        if self._closed:
            raise RuntimeError("the camera is closed")
        if self._track is None:
            stream = "lores" if self._pre_encoded else "main"
            loop = asyncio.get_running_loop()
            self._track = Picamera2Track(self._camera, self._fps, loop, stream)
        return self._track

    def call_track(self) -> MediaStreamTrack:
        """Raw frames, or the hardware encoder's H.264 packets when pre-encoded."""
        if not self._pre_encoded:
            return self.track()
        if self._closed:
            raise RuntimeError("the camera is closed")
        if self._encoded is None:
            from picamera2.encoders import H264Encoder

            self._encoded = EncodedVideoTrack(asyncio.get_running_loop())
            encoder = H264Encoder(
                H264_BITRATE, repeat=True, iperiod=max(1, round(self._fps * KEYFRAME_SECONDS))
            )
            self._camera.start_encoder(encoder, _packet_output(self._encoded), name="main")
        return self._encoded

    def close(self) -> None:
        """Stop the tracks, the encoder and the camera; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._track is not None:
            self._track.stop()
        if self._encoded is not None:
            self._camera.stop_encoder()
            self._encoded.stop()
        self._camera.stop()
        self._camera.close()


def _packet_output(track: EncodedVideoTrack) -> Any:
    """A picamera2 Output that hands each encoded picture to `track`."""
    from picamera2.outputs import Output

    class PacketOutput(Output):  # type: ignore[misc]
        def outputframe(
            self,
            frame: bytes,
            keyframe: bool = True,
            timestamp: int | None = None,
            *_: Any,
            **__: Any,
        ) -> None:
            track.push(bytes(frame), keyframe)

    return PacketOutput()


class EncodingCamera:
    """Any camera whose frames `SoftwareH264` encodes for calls (the hardware stand-in)."""

    def __init__(self, camera: CameraSource, fps: float) -> None:
        from aiortc.contrib.media import MediaRelay

        self._camera = camera
        self._fps = fps
        self._relay = MediaRelay()  # preview and encoder both read the camera
        self._encoder: SoftwareH264 | None = None
        self._closed = False

    def track(self) -> MediaStreamTrack:
        """The camera's raw picture."""
        if self._closed:
            raise RuntimeError("the camera is closed")
        return self._relay.subscribe(self._camera.track(), buffered=False)

    def call_track(self) -> EncodedVideoTrack:
        """H.264 packets from the software encoder (started on first use)."""
        if self._closed:
            raise RuntimeError("the camera is closed")
        if self._encoder is None:
            self._encoder = SoftwareH264(self.track(), self._fps, H264_BITRATE)
        return self._encoder.track

    def close(self) -> None:
        """Stop the encoder and the camera; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._encoder is not None:
            self._encoder.stop()
        self._camera.close()


def open_configured_camera(camera: CameraConfig, video: VideoConfig) -> CameraSource:
    """The camera the configuration names (pre-encoding in software where no hardware does)."""
    if camera.kind == "picamera2":
        return Picamera2Camera(video)
    source: CameraSource
    if camera.kind == "synthetic":
        source = SyntheticCamera(video.width, video.height, video.fps)
    elif camera.kind == "v4l2":
        assert camera.device is not None
        source = V4l2Camera(camera.device, video)
    else:
        raise ValueError(f"unknown camera {camera.kind!r}")
    return EncodingCamera(source, video.fps) if video.pre_encoded else source
