"""The kiosk's synthetic camera and frame counter."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError

from kiosk.media import FrameCounter, SyntheticVideoTrack, open_camera


class FakeClock:
    """A clock that only moves when told (and when the track sleeps)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_frames_are_640x480_yuv_with_90khz_timestamps_at_the_chosen_rate() -> None:
    async def main() -> list[av.VideoFrame]:
        track = SyntheticVideoTrack(fps=30)
        return [await track.recv() for _ in range(4)]

    frames = asyncio.run(main())
    assert [(f.width, f.height, f.format.name) for f in frames] == [(640, 480, "yuv420p")] * 4
    assert [f.pts for f in frames] == [0, 3000, 6000, 9000]
    assert frames[0].time_base == Fraction(1, VIDEO_CLOCK_RATE)


def test_pacing_follows_fps() -> None:
    clock = FakeClock()

    async def main() -> float:
        track = SyntheticVideoTrack(fps=10, clock=clock)
        await track.recv()  # the first frame is due at once
        loop = asyncio.get_running_loop()
        started = loop.time()
        clock.now += 0.05  # half a frame has passed: the next is due in 50 ms
        await track.recv()
        return loop.time() - started

    waited = asyncio.run(main())
    assert 0.04 <= waited < 0.2


def test_the_pattern_moves_and_the_counter_changes() -> None:
    track = SyntheticVideoTrack()
    first, second = track.render(0), track.render(1)
    assert first.shape == (480, 640, 3) and first.dtype == np.uint8
    assert not np.array_equal(first[100:], second[100:])  # the picture moves
    assert not np.array_equal(track.render(1)[:56, :200], track.render(2)[:56, :200])
    assert np.array_equal(track.render(7), track.render(7))  # and is deterministic


def test_a_stopped_track_ends() -> None:
    async def main() -> None:
        track = SyntheticVideoTrack()
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 641}, "even"),
        ({"height": 0}, "even"),
        ({"fps": 0}, "fps"),
        ({"fps": 120}, "fps"),
        ({"width": 100, "height": 100}, "at least"),
    ],
)
def test_bad_track_options_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticVideoTrack(**options)  # type: ignore[arg-type]


def test_open_camera_knows_synthetic_only_and_close_is_idempotent() -> None:
    async def main() -> None:
        camera = open_camera("synthetic", fps=5)
        track = camera.track()
        assert track.kind == "video" and track.readyState == "live"
        camera.close()
        camera.close()
        assert track.readyState == "ended"
        with pytest.raises(RuntimeError):
            camera.track()

    asyncio.run(main())
    with pytest.raises(ValueError, match="unknown camera source 'usb'"):
        open_camera("usb")


def test_frame_counter_counts_frames_and_their_rate_until_the_track_ends() -> None:
    async def main() -> None:
        track = SyntheticVideoTrack(fps=20)
        counter = FrameCounter(track).start()
        await asyncio.sleep(1.0)
        assert 15 <= counter.frames <= 25
        assert 15 <= counter.rate() <= 25
        assert counter.size == (640, 480)
        track.stop()
        for _ in range(50):
            if not counter.running:
                break
            await asyncio.sleep(0.05)
        assert not counter.running
        frames = counter.frames
        await counter.stop()
        await counter.stop()
        assert counter.frames == frames

    asyncio.run(main())


def test_frame_counter_rate_forgets_old_frames() -> None:
    async def main() -> None:
        clock = FakeClock()
        counter = FrameCounter(SyntheticVideoTrack(), window=1.0, clock=clock)
        for _ in range(5):
            counter.count(object())
            clock.now += 0.1
        assert counter.rate() == 5
        clock.now += 0.7
        assert counter.rate() == 2  # frames at 0.0..0.3 fell out of the window
        clock.now += 5
        assert counter.frames == 5 and counter.rate() == 0

    asyncio.run(main())
