"""A stand-in for the Pi camera (picamera2 on libcamera), for hosts without one.

Only what the kiosk uses, with picamera2's names and shapes: `Picamera2` with
`create_video_configuration`, `configure`, `start`, `capture_array(stream)`,
`start_encoder(encoder, output, name=...)`, `stop_encoder`, `stop`, `close`. Pictures are a
moving gradient at the configured rate; the "hardware" H.264 encoder is libx264 through
PyAV, called the way picamera2 calls its outputs (`output.outputframe(bytes, keyframe,
timestamp)`). `Picamera2.instances` lets a test look at what the kiosk asked for.
"""

from __future__ import annotations

import fractions
import threading
import time
from typing import Any, ClassVar

import av
import numpy as np


class Picamera2:
    """One camera; records its configuration and life cycle for the test."""

    instances: ClassVar[list[Picamera2]] = []

    def __init__(self) -> None:
        self.config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.encoders: list[Any] = []
        self._frame = 0
        self._stop = threading.Event()
        self._encoder_thread: threading.Thread | None = None
        Picamera2.instances.append(self)

    def create_video_configuration(
        self, main: dict[str, Any], lores: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The configuration as picamera2 returns it (a dict of streams and controls)."""
        return {"main": dict(main), "lores": dict(lores) if lores else None, **kwargs}

    def configure(self, config: dict[str, Any]) -> None:
        """Take the configuration."""
        self.config = config

    def start(self) -> None:
        """Start the sensor."""
        assert self.config is not None, "configure() first"
        self.started = True

    def _fps(self) -> float:
        assert self.config is not None
        return float(self.config.get("controls", {}).get("FrameRate", 30))

    def _picture(self, stream: str) -> np.ndarray:
        assert self.config is not None and self.started
        spec = self.config[stream]
        width, height = spec["size"]
        self._frame += 1
        x = (np.arange(width, dtype=np.int32)[None, :] + self._frame * 4) % 256
        y = np.arange(height, dtype=np.int32)[:, None] % 256
        rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) % 256], axis=-1).astype(np.uint8)
        if spec.get("format") == "YUV420":  # picamera2 gives a (h * 3/2, w) plane array
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            return frame.to_ndarray()
        return np.ascontiguousarray(rgb[:, :, ::-1])  # RGB888 is stored B, G, R

    def capture_array(self, name: str = "main") -> np.ndarray:
        """The next picture of stream `name`, at the configured frame rate."""
        time.sleep(1 / self._fps())
        return self._picture(name)

    def start_encoder(self, encoder: Any, output: Any, name: str = "main") -> None:
        """Encode stream `name` continuously into `output` (a thread, like the hardware)."""
        self.encoders.append((encoder, output, name))
        self._stop.clear()
        self._encoder_thread = threading.Thread(
            target=self._encode, args=(encoder, output, name), daemon=True
        )
        self._encoder_thread.start()

    def _encode(self, encoder: Any, output: Any, name: str) -> None:
        assert self.config is not None
        width, height = self.config[name]["size"]
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = fractions.Fraction(1, 1_000_000)
        codec.bit_rate = encoder.bitrate
        codec.options = {
            "profile": "baseline",
            "tune": "zerolatency",
            "g": str(encoder.iperiod or 60),
            "repeat-headers": "1" if encoder.repeat else "0",
        }
        started = time.monotonic()
        while not self._stop.is_set():
            plane = self.capture_array(name)
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = int((time.monotonic() - started) * 1_000_000)
            for packet in codec.encode(frame):
                output.outputframe(bytes(packet), packet.is_keyframe, packet.pts)

    def stop_encoder(self) -> None:
        """Stop every encoder."""
        self._stop.set()
        if self._encoder_thread is not None:
            self._encoder_thread.join(timeout=5)

    def stop(self) -> None:
        """Stop the sensor."""
        self.started = False

    def close(self) -> None:
        """Release the camera."""
        self.closed = True
