"""The kiosk's microphone and speaker: ALSA, a test tone, or none, chosen by configuration.

- ``alsa:<pcm>`` captures from (or plays to) an ALSA device through PyAV, e.g.
  ``alsa:default`` (which is PulseAudio or PipeWire where those run) or ``alsa:hw:1,0``
  for a USB speakerphone;
- ``tone`` (microphone only) is a quiet 440 Hz sine, for tests and benchmarks;
- ``none`` leaves it out: the kiosk then neither sends nor plays sound.

The microphone reaches the call through `MutableAudioTrack`, which sends silence while the
citizen has muted it (the connection keeps its audio stream). Each remote participant's
sound is played by its own `Speaker`, which writes to ALSA from a worker thread because
ALSA blocks until the device takes the samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from kiosk.config import audio_spec

log = logging.getLogger(__name__)

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, what Opus sends per packet
TONE_HZ = 440.0
TONE_LEVEL = 0.1  # of full scale: audible, never loud
SPEAKER_QUEUE = 25  # frames (0.5 s) a slow device may lag before old sound is dropped
# PyAV's wheels carry their own libasound, which looks for its configuration where it was
# built; Debian's file is the right one on a kiosk.
SYSTEM_ALSA_CONFIG = Path("/usr/share/alsa/alsa.conf")


def use_system_alsa_config() -> None:
    """Point PyAV's libasound at the system's ALSA configuration, unless set already."""
    if "ALSA_CONFIG_PATH" not in os.environ and SYSTEM_ALSA_CONFIG.exists():
        os.environ["ALSA_CONFIG_PATH"] = str(SYSTEM_ALSA_CONFIG)


class ToneTrack(MediaStreamTrack):
    """A quiet sine tone, mono 48 kHz in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float = TONE_HZ) -> None:
        super().__init__()
        self._step = 2 * math.pi * frequency / RATE
        self._started: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms of the tone."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._started is None:
            self._started = now
        else:
            wait = self._started + self._pts / RATE - now
            if wait > 0:
                await asyncio.sleep(wait)
        n = np.arange(self._pts, self._pts + FRAME_SAMPLES)
        samples = (np.sin(n * self._step) * TONE_LEVEL * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME_SAMPLES
        return frame


class MutableAudioTrack(MediaStreamTrack):
    """Passes a microphone's frames on, or silence of the same shape while muted."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self.frames_sent = 0

    async def recv(self) -> av.AudioFrame:
        """The microphone's next frame (silent while muted)."""
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.source.recv()
        self.frames_sent += 1
        if not self.muted:
            return frame
        silent = av.AudioFrame(
            format=frame.format.name, layout=frame.layout.name, samples=frame.samples
        )
        for plane in silent.planes:
            plane.update(bytes(plane.buffer_size))
        silent.sample_rate, silent.pts, silent.time_base = (
            frame.sample_rate,
            frame.pts,
            frame.time_base,
        )
        return silent

    def stop(self) -> None:
        """Stop this track and the microphone behind it."""
        self.source.stop()
        super().stop()


class _AlsaMicrophone:
    """Keeps aiortc's MediaPlayer alive for as long as its audio track is used."""

    def __init__(self, pcm: str) -> None:
        from aiortc.contrib.media import MediaPlayer

        use_system_alsa_config()
        self.player = MediaPlayer(
            pcm, format="alsa", options={"channels": "1", "sample_rate": str(RATE)}
        )
        if self.player.audio is None:
            raise RuntimeError(f"ALSA device {pcm!r} gives no sound")
        self.track: MediaStreamTrack = self.player.audio


def open_microphone(spec: str) -> MutableAudioTrack | None:
    """The configured microphone, ready to mute; None for "none" or when it cannot open."""
    kind, pcm = audio_spec(spec, "audio.microphone", microphone=True)
    try:
        if kind == "tone":
            return MutableAudioTrack(ToneTrack())
        if kind == "alsa":
            assert pcm is not None
            return MutableAudioTrack(_AlsaMicrophone(pcm).track)
    except (OSError, RuntimeError, av.FFmpegError) as exc:
        log.error("the microphone %s cannot be opened: %s", spec, exc)
    return None


class Speaker:
    """Plays one remote participant's sound on an ALSA device, from a worker thread.

    `play(frame)` never blocks the event loop: frames wait in a short queue, and when the
    device falls behind the oldest are dropped (late sound is worse than a gap).
    """

    def __init__(self, pcm: str) -> None:
        self.pcm = pcm
        self.frames_played = 0
        self.failed = False
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=SPEAKER_QUEUE)
        self._thread = threading.Thread(target=self._run, name=f"speaker {pcm}", daemon=True)
        self._thread.start()

    def play(self, frame: av.AudioFrame) -> None:
        """Queue a decoded frame for the device."""
        if self.failed:
            return
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    def close(self) -> None:
        """Stop playing and release the device; idempotent."""
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        use_system_alsa_config()
        try:
            container = av.open(self.pcm, format="alsa", mode="w")
        except (OSError, av.FFmpegError) as exc:
            log.error("the speaker %s cannot play: %s", self.pcm, exc)
            self.failed = True
            return
        try:
            stream = container.add_stream("pcm_s16le", rate=RATE)
            stream.layout = "stereo"
            resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
            while (frame := self._queue.get()) is not None:
                frame.pts = None  # the device plays as it goes; no gaps to fill
                for out in resampler.resample(frame):
                    for packet in stream.encode(out):
                        container.mux(packet)
                self.frames_played += 1
        except (OSError, av.FFmpegError) as exc:
            log.error("the speaker %s cannot play: %s", self.pcm, exc)
            self.failed = True
        finally:
            container.close()


class Speakers:
    """One `Speaker` per remote participant on the configured device (or none at all)."""

    def __init__(self, spec: str) -> None:
        kind, pcm = audio_spec(spec, "audio.speaker", microphone=False)
        self._pcm = pcm if kind == "alsa" else None
        self._speakers: dict[str, Speaker] = {}
        self._played_before = 0  # by the speakers of earlier calls

    @property
    def enabled(self) -> bool:
        """Whether sound is played at all."""
        return self._pcm is not None

    def play(self, participant: str, frame: av.AudioFrame) -> None:
        """Play a frame from `participant` (its speaker opens on the first frame)."""
        if self._pcm is None:
            return
        speaker = self._speakers.get(participant)
        if speaker is None:
            speaker = self._speakers[participant] = Speaker(self._pcm)
        speaker.play(frame)

    def frames_played(self) -> int:
        """Frames played on every speaker so far."""
        return self._played_before + sum(s.frames_played for s in self._speakers.values())

    def close(self) -> None:
        """Close every speaker (the end of a call); blocks until their devices are free."""
        speakers, self._speakers = self._speakers, {}
        for speaker in speakers.values():
            speaker.close()
            self._played_before += speaker.frames_played
