"""picamera2.encoders as the kiosk uses it: the H.264 encoder's settings."""

from __future__ import annotations


class H264Encoder:
    """The Pi's hardware H.264 encoder (settings only; the camera double encodes)."""

    def __init__(self, bitrate: int, repeat: bool = False, iperiod: int | None = None) -> None:
        self.bitrate = bitrate
        self.repeat = repeat
        self.iperiod = iperiod
