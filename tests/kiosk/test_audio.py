"""The kiosk's microphone and speaker: the test tone, muting, ALSA playback, configuration."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from kiosk.audio import (
    FRAME_SAMPLES,
    RATE,
    MutableAudioTrack,
    Speaker,
    Speakers,
    ToneTrack,
    open_microphone,
)
from kiosk.config import ConfigError, parse_config


def _frames(track: MutableAudioTrack, count: int) -> list:
    async def read() -> list:
        return [await track.recv() for _ in range(count)]

    return asyncio.run(read())


def _level(frame: object) -> float:
    samples = frame.to_ndarray().astype(np.float64)  # type: ignore[attr-defined]
    return float(np.sqrt(np.mean(samples**2)) / 32767)


def test_the_tone_is_quiet_continuous_and_paced() -> None:
    track = MutableAudioTrack(ToneTrack())
    started = time.monotonic()
    frames = _frames(track, 25)
    elapsed = time.monotonic() - started
    track.stop()
    assert [f.samples for f in frames] == [FRAME_SAMPLES] * 25
    assert {f.sample_rate for f in frames} == {RATE}
    assert [f.pts for f in frames] == [n * FRAME_SAMPLES for n in range(25)]
    assert all(0.05 < _level(f) < 0.1 for f in frames)  # a sine at a tenth of full scale
    assert elapsed >= 24 * FRAME_SAMPLES / RATE * 0.9  # real time, not as fast as it can
    assert track.frames_sent == 25


def test_muting_sends_silence_of_the_same_shape() -> None:
    track = MutableAudioTrack(ToneTrack())
    loud = _frames(track, 2)
    track.muted = True
    quiet = _frames(track, 3)
    track.muted = False
    again = _frames(track, 1)
    track.stop()
    assert all(_level(f) > 0.05 for f in loud + again)
    assert all(_level(f) == 0.0 for f in quiet)
    assert [(f.samples, f.format.name, f.layout.name) for f in quiet] == [
        (FRAME_SAMPLES, "s16", "mono")
    ] * 3
    assert [f.pts for f in quiet] == [2 * FRAME_SAMPLES, 3 * FRAME_SAMPLES, 4 * FRAME_SAMPLES]


def test_a_speaker_plays_on_alsa_and_a_participant_gets_their_own() -> None:
    tone = MutableAudioTrack(ToneTrack())
    frames = _frames(tone, 10)
    tone.stop()
    speakers = Speakers("alsa:null")  # ALSA's null device: real ALSA, no sound card needed
    assert speakers.enabled
    for frame in frames:
        speakers.play("p-staff", frame)
        speakers.play("p-interpreter", frame)
    deadline = time.monotonic() + 10
    while speakers.frames_played() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert speakers.frames_played() == 20
    speakers.close()
    assert speakers.frames_played() == 20  # figures outlive the call's speakers


def test_a_missing_device_is_reported_and_nothing_breaks(caplog: pytest.LogCaptureFixture) -> None:
    speaker = Speaker("no-such-device")
    frame = _frames(MutableAudioTrack(ToneTrack()), 1)[0]
    deadline = time.monotonic() + 10
    while not speaker.failed and time.monotonic() < deadline:
        speaker.play(frame)
        time.sleep(0.05)
    assert speaker.failed
    speaker.close()
    assert "the speaker no-such-device cannot play" in caplog.text
    assert open_microphone("alsa:no-such-device") is None
    assert "the microphone alsa:no-such-device cannot be opened" in caplog.text


def test_no_sound_at_all() -> None:
    assert open_microphone("none") is None
    speakers = Speakers("none")
    assert not speakers.enabled
    speakers.play("p-staff", _frames(MutableAudioTrack(ToneTrack()), 1)[0])
    assert speakers.frames_played() == 0


BASE = {"hub": "https://empfang.kreis.example", "device": "kiosk-rathaus"}


def test_audio_configuration_defaults_and_forms() -> None:
    config = parse_config(BASE)
    assert (config.audio.microphone, config.audio.speaker) == ("alsa:default", "alsa:default")
    config = parse_config({**BASE, "audio": {"microphone": "tone", "speaker": "alsa:hw:1,0"}})
    assert (config.audio.microphone, config.audio.speaker) == ("tone", "alsa:hw:1,0")


@pytest.mark.parametrize(
    ("audio", "field"),
    [
        ({"microphone": "pulse"}, "audio.microphone"),
        ({"microphone": "alsa:"}, "audio.microphone"),
        ({"microphone": 3}, "audio.microphone"),
        ({"speaker": "tone"}, "audio.speaker"),  # a tone is a microphone only
        ({"speaker": "alsa:default\n"}, "audio.speaker"),
        ({"volume": 11}, "audio.volume"),
    ],
)
def test_bad_audio_settings_name_their_field(audio: dict, field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**BASE, "audio": audio})
    assert raised.value.field == field
