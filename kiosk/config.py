"""The kiosk's TOML configuration: parsed once, validated field by field, immutable.

Example (/etc/empfang/kiosk.toml, mode 0600 once it holds the broker password; the first
keys are written by ``empfang-kiosk enroll``)::

    hub = "https://empfang.kreis.example"
    device = "kiosk-rathaus"
    site = "default"
    broker = "mqtts://default.kiosk-rathaus:SECRET@broker.kreis.example:8883"
    ca_file = "/etc/empfang/kiosk-ca.pem"
    camera = "picamera2"                # or "synthetic", "v4l2:/dev/video0"
    languages = ["de", "en"]            # the first is the default

    [gpio]                              # every pin is optional
    call_button = 5
    motion_sensor = 6
    status_led = 13

    [timeouts]                          # seconds
    inactivity = 90
    goodbye = 10

    [video]
    width = 640
    height = 480
    fps = 15
    pre_encoded = false                 # true: calls send H.264 from the Pi's encoder

    [audio]                             # ALSA devices (PulseAudio/PipeWire behind "default")
    microphone = "alsa:default"         # or "alsa:hw:1,0", "tone" (a test tone), "none"
    speaker = "alsa:default"            # or "alsa:hw:1,0", "none"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.settings import ConfigError, Pin, ca_file_exists, read_toml, settings_path
from edge.settings import boolean as _bool
from edge.settings import fail as _fail
from edge.settings import no_unknown as _no_unknown
from edge.settings import number as _number
from edge.settings import pin as _pin
from edge.settings import slug as _slug
from edge.settings import table as _table
from edge.settings import whole as _int
from protocol.broker import BrokerAddress, BrokerUrlError

DEFAULT_PATH = Path("/etc/empfang/kiosk.toml")
ENV_VAR = "EMPFANG_KIOSK_CONFIG"
LANGUAGES = ("de", "en")


def _broker(value: object, field: str = "broker") -> BrokerAddress:
    try:
        return BrokerAddress.parse(value, field)
    except BrokerUrlError as exc:
        raise ConfigError(exc.field, exc.reason) from None


@dataclass(frozen=True)
class CameraConfig:
    """Which camera: "synthetic", "v4l2" (with its device path) or "picamera2"."""

    kind: str = "synthetic"
    device: str | None = None

    @classmethod
    def parse(cls, value: object) -> CameraConfig:
        """Parse ``synthetic``, ``picamera2`` or ``v4l2:/dev/videoN``."""
        if not isinstance(value, str):
            _fail("camera", 'must be "synthetic", "picamera2" or "v4l2:/dev/video0"')
        if value in ("synthetic", "picamera2"):
            return cls(value)
        if value.startswith("v4l2:") and value[5:].startswith("/"):
            return cls("v4l2", value[5:])
        _fail("camera", 'must be "synthetic", "picamera2" or "v4l2:/dev/video0"')


@dataclass(frozen=True)
class GpioConfig:
    """The kiosk's pins; None means that part is not fitted."""

    call_button: Pin | None = None
    motion_sensor: Pin | None = None
    status_led: Pin | None = None
    pull_up: bool = True


@dataclass(frozen=True)
class Timeouts:
    """Seconds: no touch outside a call resets; the goodbye screen stays; retry backoff."""

    inactivity: float = 90.0
    goodbye: float = 10.0
    dim: float = 60.0
    retry_min: float = 1.0
    retry_max: float = 30.0
    poll: float = 10.0  # how often the attract screen refreshes the hub's figures


@dataclass(frozen=True)
class VideoConfig:
    """The camera picture the kiosk sends."""

    width: int = 640
    height: int = 480
    fps: float = 15.0
    pre_encoded: bool = False  # calls send H.264 packets (the Pi's hardware encoder)


@dataclass(frozen=True)
class AudioConfig:
    """Where sound comes from and goes to (see `audio_spec` for the forms)."""

    microphone: str = "alsa:default"
    speaker: str = "alsa:default"


def audio_spec(value: object, field: str, *, microphone: bool) -> tuple[str, str | None]:
    """("alsa", pcm), ("tone", None) or ("none", None), or raise ConfigError naming ``field``.

    "tone" (a test tone) is a microphone only.
    """
    if value == "none":
        return "none", None
    if value == "tone" and microphone:
        return "tone", None
    pcm = value[5:] if isinstance(value, str) and value.startswith("alsa:") else ""
    if pcm.strip() and pcm.isprintable():
        return "alsa", pcm
    known = '"alsa:default", "alsa:hw:1,0", "none"' + (', "tone"' if microphone else "")
    _fail(field, f"must be one of {known}")


@dataclass(frozen=True)
class KioskConfig:
    """Everything one kiosk needs."""

    hub: str
    device: str
    site: str = "default"
    broker: BrokerAddress | None = None
    ca_file: str | None = None
    camera: CameraConfig = CameraConfig()
    gpio: GpioConfig = GpioConfig()
    timeouts: Timeouts = Timeouts()
    video: VideoConfig = VideoConfig()
    audio: AudioConfig = AudioConfig()
    languages: tuple[str, ...] = LANGUAGES
    fullscreen: bool = True
    ui_port: int = 0  # the local page server's port on 127.0.0.1; 0 picks a free one
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def language(self) -> str:
        """The default language (the first listed)."""
        return self.languages[0]


def config_path(cli_path: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The file to read: ``--config``, else $EMPFANG_KIOSK_CONFIG, else the default."""
    return settings_path(cli_path, ENV_VAR, DEFAULT_PATH, environ)


def load_config(path: Path) -> KioskConfig:
    """Read and validate a TOML file, or raise ConfigError."""
    config = parse_config(read_toml(path, ENV_VAR))
    ca_file_exists(config.ca_file)
    return config


TOP_KEYS = {
    "hub", "device", "site", "broker", "ca_file", "camera", "languages", "fullscreen",
    "ui_port", "gpio", "timeouts", "video", "audio",
}  # fmt: skip


def parse_config(data: Mapping[str, Any]) -> KioskConfig:
    """Validate a parsed TOML document, or raise ConfigError naming the first bad field."""
    _no_unknown(data, TOP_KEYS)
    if "hub" not in data:
        _fail("hub", "required: the hub's address, like https://empfang.kreis.example")
    if "device" not in data:
        _fail("device", "required: this kiosk's id (run empfang-kiosk enroll)")
    hub = _hub(data["hub"])
    device = _slug(data["device"], "device")
    site = _slug(data.get("site", "default"), "site")
    broker = _broker(data["broker"]) if data.get("broker") is not None else None
    ca_file = data.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        _fail("ca_file", "must be the path of a PEM file")
    camera = CameraConfig.parse(data.get("camera", "synthetic"))
    languages = _languages(data.get("languages", list(LANGUAGES)))
    fullscreen = _bool(data.get("fullscreen", True), "fullscreen")
    ui_port = _int(data.get("ui_port", 0), "ui_port", 0, 65535)
    gpio = _gpio(_table(data, "gpio") or {})
    timeouts = _timeouts(_table(data, "timeouts") or {})
    video = _video(_table(data, "video") or {})
    audio = _audio(_table(data, "audio") or {})
    return KioskConfig(
        hub=hub,
        device=device,
        site=site,
        broker=broker,
        ca_file=ca_file,
        camera=camera,
        gpio=gpio,
        timeouts=timeouts,
        video=video,
        audio=audio,
        languages=languages,
        fullscreen=fullscreen,
        ui_port=ui_port,
    )


# --- field checks ---------------------------------------------------------------------


def _hub(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        _fail("hub", "must be the hub's address, like https://empfang.kreis.example")
    parts = urlsplit(value)
    if not parts.hostname:
        _fail("hub", "must be the hub's address, like https://empfang.kreis.example")
    return value.rstrip("/")


def _languages(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        _fail("languages", f"must be a non-empty list of {', '.join(LANGUAGES)}")
    for i, item in enumerate(value):
        if item not in LANGUAGES:
            _fail(f"languages[{i}]", f"must be one of {', '.join(LANGUAGES)}")
    if len(set(value)) != len(value):
        _fail("languages", "lists a language twice")
    return tuple(value)


def _gpio(data: Mapping[str, Any]) -> GpioConfig:
    _no_unknown(data, {"call_button", "motion_sensor", "status_led", "pull_up"}, "gpio.")
    pins = {
        key: None if data.get(key) is None else _pin(data[key], f"gpio.{key}")
        for key in ("call_button", "motion_sensor", "status_led")
    }
    used = [p for p in pins.values() if p is not None]
    if len(set(used)) != len(used):
        _fail("gpio", "two parts share a pin")
    return GpioConfig(**pins, pull_up=_bool(data.get("pull_up", True), "gpio.pull_up"))


def _timeouts(data: Mapping[str, Any]) -> Timeouts:
    allowed = {"inactivity", "goodbye", "dim", "retry_min", "retry_max", "poll"}
    _no_unknown(data, allowed, "timeouts.")
    result = Timeouts(
        inactivity=_number(data.get("inactivity", 90), "timeouts.inactivity", 5, 3600),
        goodbye=_number(data.get("goodbye", 10), "timeouts.goodbye", 1, 600),
        dim=_number(data.get("dim", 60), "timeouts.dim", 1, 86400),
        retry_min=_number(data.get("retry_min", 1), "timeouts.retry_min", 0.1, 600),
        retry_max=_number(data.get("retry_max", 30), "timeouts.retry_max", 0.1, 3600),
        poll=_number(data.get("poll", 10), "timeouts.poll", 0.2, 3600),
    )
    if result.retry_max < result.retry_min:
        _fail("timeouts.retry_max", "must not be below timeouts.retry_min")
    return result


def _video(data: Mapping[str, Any]) -> VideoConfig:
    _no_unknown(data, {"width", "height", "fps", "pre_encoded"}, "video.")
    width = _int(data.get("width", 640), "video.width", 160, 1920)
    height = _int(data.get("height", 480), "video.height", 120, 1080)
    if width % 2 or height % 2:
        _fail("video", "width and height must be even")
    fps = _number(data.get("fps", 15), "video.fps", 1, 30)
    return VideoConfig(
        width, height, fps, _bool(data.get("pre_encoded", False), "video.pre_encoded")
    )


def _audio(data: Mapping[str, Any]) -> AudioConfig:
    _no_unknown(data, {"microphone", "speaker"}, "audio.")
    microphone = data.get("microphone", AudioConfig.microphone)
    speaker = data.get("speaker", AudioConfig.speaker)
    audio_spec(microphone, "audio.microphone", microphone=True)
    audio_spec(speaker, "audio.speaker", microphone=False)
    return AudioConfig(microphone, speaker)
