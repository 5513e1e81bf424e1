"""The Pi camera path, on a picamera2 double: raw frames, or the hardware encoder's H.264.

The double (tests/kiosk/shims/picamera2) stands in for the camera and its encoder only;
everything of the kiosk's own runs for real: the capture thread, the hand-over to asyncio,
the packet track and the configuration that selects them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from kiosk.camera import Picamera2Camera, open_configured_camera
from kiosk.config import CameraConfig, VideoConfig, parse_config

SHIMS = Path(__file__).resolve().parent / "shims"


@pytest.fixture
def picamera2(monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    """The picamera2 double importable as `picamera2`, fresh for each test."""
    monkeypatch.syspath_prepend(str(SHIMS))
    for name in [m for m in sys.modules if m == "picamera2" or m.startswith("picamera2.")]:
        monkeypatch.delitem(sys.modules, name)
    import picamera2

    picamera2.Picamera2.instances.clear()
    yield picamera2.Picamera2


def test_raw_frames_from_the_main_stream(picamera2: type) -> None:
    async def main() -> list[av.VideoFrame]:
        camera = open_configured_camera(CameraConfig("picamera2"), VideoConfig(640, 480, 15))
        try:
            assert isinstance(camera, Picamera2Camera)
            assert camera.call_track() is camera.track()  # not pre-encoded: the same frames
            return [await camera.track().recv() for _ in range(3)]
        finally:
            camera.close()

    frames = asyncio.run(main())
    assert [(f.width, f.height, f.format.name) for f in frames] == [(640, 480, "yuv420p")] * 3
    # Colours stay right (red and blue not swapped): in the double's first picture the
    # pixel at row 100, column 10 is red 14, green 100, blue 114 (give or take YUV).
    red, green, blue = (int(v) for v in frames[0].to_ndarray(format="rgb24")[100, 10])
    assert abs(red - 14) < 10 and abs(green - 100) < 10 and abs(blue - 114) < 10
    assert frames[0].pts < frames[1].pts < frames[2].pts
    (cam,) = picamera2.instances
    assert cam.config["main"] == {"size": (640, 480), "format": "RGB888"}
    assert cam.config["controls"] == {"FrameRate": 15}
    assert cam.closed and not cam.started


def test_pre_encoded_h264_from_the_hardware_encoder(picamera2: type) -> None:
    async def main() -> tuple[list[av.Packet], list[av.VideoFrame]]:
        video = VideoConfig(640, 480, 15, pre_encoded=True)
        camera = open_configured_camera(CameraConfig("picamera2"), video)
        try:
            packets = [await camera.call_track().recv() for _ in range(20)]
            preview = [await camera.track().recv() for _ in range(2)]
            return packets, preview
        finally:
            camera.close()

    packets, preview = asyncio.run(main())
    (cam,) = picamera2.instances
    assert cam.config["main"] == {"size": (640, 480), "format": "YUV420"}
    assert cam.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    ((encoder, _output, stream),) = cam.encoders
    settings = (encoder.bitrate, encoder.repeat, encoder.iperiod, stream)
    assert settings == (1_000_000, True, 15, "main")
    # The call gets packets, starting at a keyframe with its parameter sets, that decode.
    assert packets[0].is_keyframe
    assert bytes(packets[0])[:4] == b"\x00\x00\x00\x01"
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for p in packets for f in decoder.decode(p)]
    assert decoded and {(f.width, f.height) for f in decoded} == {(640, 480)}
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)
    # The kiosk's own preview reads the small stream.
    assert {(f.width, f.height) for f in preview} == {(320, 240)}
    assert cam.closed


def test_pre_encoding_is_a_video_setting() -> None:
    base = {"hub": "https://empfang.kreis.example", "device": "kiosk-rathaus"}
    assert parse_config(base).video.pre_encoded is False
    assert parse_config({**base, "video": {"pre_encoded": True}}).video.pre_encoded is True
    with pytest.raises(ValueError, match=r"video\.pre_encoded"):
        parse_config({**base, "video": {"pre_encoded": "ja"}})
