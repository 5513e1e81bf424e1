"""Pre-encoded H.264: the camera's own encoder does the work, aiortc only packs and sends.

A Raspberry Pi 4 encodes H.264 in hardware; handing aiortc those packets instead of raw
frames saves the kiosk's CPU the software encoder. `EncodedVideoTrack` is what a call
sends then: it yields `av.Packet`s (aiortc's sender packs them as they are), and the
call offers H.264 only (`H264_MIME`).

Where the packets come from:

- `Picamera2H264` (camera.py) feeds the Pi's hardware encoder output into the track;
- `SoftwareH264` encodes a raw track with libx264 in a worker thread: the stand-in for the
  hardware encoder on machines without one (tests, benchmarks), with the same packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
import time

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError
from av.video.reformatter import VideoReformatter

from kiosk.media import next_or_end, put_newest

log = logging.getLogger(__name__)

H264_MIME = "video/H264"
KEYFRAME_SECONDS = 1.0  # a receiver that lost packets recovers within this (no PLI path)
QUEUE_PACKETS = 8


class EncodedVideoTrack(MediaStreamTrack):
    """H.264 access units (Annex B, SPS/PPS before each keyframe) as `av.Packet`s.

    `push()` may be called from any thread; the newest packets win when the call falls
    behind, except that dropping stops at a keyframe's dependants: after a drop the track
    waits for the next keyframe, so a receiver never decodes a broken picture.
    """

    kind = "video"
    mime = H264_MIME

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue(maxsize=QUEUE_PACKETS)
        self._need_keyframe = True
        self._start: float | None = None
        self.packets_sent = 0
        self.dropped = 0

    def push(self, data: bytes, keyframe: bool) -> None:
        """One encoded picture (thread-safe; never blocks)."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
            self._loop.call_soon_threadsafe(self._offer, data, keyframe, time.monotonic())

    def end(self) -> None:
        """No more packets (thread-safe): the track ends."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._offer_end)

    def _offer(self, data: bytes, keyframe: bool, at: float) -> None:
        if self._need_keyframe and not keyframe:
            self.dropped += 1
            return
        if self._queue.full():
            while not self._queue.empty():  # too late to send: start again at a keyframe
                self._queue.get_nowait()
                self.dropped += 1
            if not keyframe:
                self._need_keyframe = True
                self.dropped += 1
                return
        self._need_keyframe = False
        packet = av.Packet(data)
        if self._start is None:
            self._start = at
        packet.pts = int((at - self._start) * VIDEO_CLOCK_RATE)
        packet.time_base = VIDEO_TIME_BASE
        packet.is_keyframe = keyframe
        self._queue.put_nowait(packet)

    def _offer_end(self) -> None:
        put_newest(self._queue, None)

    async def recv(self) -> av.Packet:
        """The next packet."""
        packet = await next_or_end(self, self._queue)
        self.packets_sent += 1
        return packet


class SoftwareH264:
    """Encodes a raw video track with libx264 into an `EncodedVideoTrack`.

    The stand-in for a hardware encoder: baseline profile (what every browser decodes),
    no B-frames, a keyframe every `KEYFRAME_SECONDS` with the parameter sets repeated,
    tuned for latency. Runs on the current event loop; the encoding itself happens in a
    worker thread so the loop stays free for the call.
    """

    def __init__(self, source: MediaStreamTrack, fps: float, bitrate: int = 1_000_000) -> None:
        self.source = source
        self.track = EncodedVideoTrack(asyncio.get_running_loop())
        self._fps = fps
        self._bitrate = bitrate
        self._codec: av.VideoCodecContext | None = None
        self._to_yuv = VideoReformatter()  # never the frame's own: others convert it too
        self._lock = threading.Lock()  # the codec is used from one worker at a time
        self._task = asyncio.get_running_loop().create_task(self._run(), name="h264 encoder")

    def _open(self, width: int, height: int) -> av.VideoCodecContext:
        codec = av.CodecContext.create("libx264", "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(round(self._fps))
        codec.time_base = VIDEO_TIME_BASE
        codec.bit_rate = self._bitrate
        codec.options = {
            "profile": "baseline",
            "level": "31",
            "tune": "zerolatency",
            "preset": "veryfast",
            "g": str(max(1, round(self._fps * KEYFRAME_SECONDS))),
            "bf": "0",
            "repeat-headers": "1",  # x264: SPS/PPS before each keyframe
        }
        return codec

    def _encode(self, frame: av.VideoFrame) -> list[tuple[bytes, bool]]:
        with self._lock:
            if self._codec is None:
                self._codec = self._open(frame.width, frame.height)
            yuv = self._to_yuv.reformat(frame, format="yuv420p")
            return [(bytes(p), p.is_keyframe) for p in self._codec.encode(yuv)]

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                for data, keyframe in await asyncio.to_thread(self._encode, frame):
                    self.track.push(data, keyframe)
        except MediaStreamError:
            pass
        except Exception:
            log.exception("the H.264 stand-in encoder failed")
        finally:
            self.track.end()

    def stop(self) -> None:
        """Stop encoding, the source and the track (the worker ends on its own)."""
        self._task.cancel()
        self.source.stop()
        self.track.stop()
