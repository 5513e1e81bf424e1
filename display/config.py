"""The display's TOML configuration: parsed once, validated field by field, immutable.

Example (/etc/empfang/display.toml, mode 0600: it holds the broker password). The first
five keys are written by ``empfang-display enroll``; the rooms come from the hub (the
retained ``devices/<id>/config``), so an enrolled display has no ``rooms`` key. A
``rooms`` list is only a start value for a display that is not managed by a hub::

    hub = "https://empfang.kreis.example"
    device = "display-3f9a2c"
    site = "default"
    broker = "mqtts://default.display-3f9a2c:SECRET@broker.kreis.example:8883"
    ca_file = "/etc/empfang/display-ca.pem"
    language = "de"
    outputs = ["hdmi", "leds"]          # any of hdmi, epaper, leds

    [leds]                              # kind = "rgb" (red/green/blue) or "traffic"
    red = 17                            # (red/amber/green, optional blue)
    green = 27
    blue = 22

    [knock]                             # room: default the first assigned room
    pin = 5

    [epaper]
    panel = "waveshare-7in5b"           # or "waveshare:MODULE", "inky", "png:/path.png"
    full_refresh_minutes = 60

    [hdmi]
    layout = "single"                   # or "overview" for a hallway screen
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.settings import ConfigError, Pin, ca_file_exists, read_toml, settings_path
from edge.settings import boolean as _bool
from edge.settings import choice as _choice
from edge.settings import fail as _fail
from edge.settings import no_unknown as _no_unknown
from edge.settings import number as _number
from edge.settings import pin as _pin
from edge.settings import slug as _slug
from edge.settings import table as _table
from edge.settings import whole as _int
from protocol.broker import BrokerAddress, BrokerUrlError

DEFAULT_PATH = Path("/etc/empfang/display.toml")
ENV_VAR = "EMPFANG_DISPLAY_CONFIG"

Output = Literal["hdmi", "epaper", "leds"]
Layout = Literal["single", "overview"]
Colours = Literal["bw", "bwr"]
LedKind = Literal["rgb", "traffic"]

OUTPUTS: tuple[Output, ...] = ("hdmi", "epaper", "leds")
# Known e-paper panels: name -> (width, height, colours).
PANELS: Mapping[str, tuple[int, int, Colours]] = {
    "waveshare-7in5b": (800, 480, "bwr"),
    "waveshare-2in9": (296, 128, "bw"),
    "inky": (400, 300, "bwr"),
}


def _broker(value: object, field: str = "broker") -> BrokerAddress:
    try:
        return BrokerAddress.parse(value, field)
    except BrokerUrlError as exc:
        raise ConfigError(exc.field, exc.reason) from None


@dataclass(frozen=True)
class LedConfig:
    """An RGB LED, or a traffic light of single LEDs, showing one room (None: the first)."""

    room: str | None
    kind: LedKind = "rgb"
    red: Pin | None = None
    green: Pin | None = None
    blue: Pin | None = None
    amber: Pin | None = None
    active_high: bool = True
    pwm: bool = True


@dataclass(frozen=True)
class KnockConfig:
    """A push button that knocks on one room's door (None: the first assigned room)."""

    pin: Pin
    room: str | None
    min_interval: float = 5.0
    pull_up: bool = True


@dataclass(frozen=True)
class EpaperConfig:
    """The e-paper panel: driver, resolution, colours, full-refresh interval."""

    panel: str
    width: int
    height: int
    colours: Colours
    full_refresh_minutes: float = 60.0


@dataclass(frozen=True)
class HdmiConfig:
    """The full-screen page: one big room or an overview of many."""

    layout: Layout = "single"
    fullscreen: bool = True


@dataclass(frozen=True)
class MqttConfig:
    """Connection timing: keepalive (dead broker detection) and reconnect backoff."""

    keepalive: int = 3
    reconnect_min: int = 1
    reconnect_max: int = 2


@dataclass(frozen=True)
class DisplayConfig:
    """Everything one door display needs; ``rooms`` is empty when the hub assigns them."""

    broker: BrokerAddress
    device: str
    rooms: tuple[str, ...] = ()
    site: str = "default"
    hub: str | None = None
    ca_file: str | None = None
    language: Literal["de", "en"] = "de"
    timezone: str = "Europe/Berlin"
    outputs: tuple[Output, ...] = ("hdmi",)
    leds: LedConfig | None = None
    knock: KnockConfig | None = None
    epaper: EpaperConfig | None = None
    hdmi: HdmiConfig = HdmiConfig()
    mqtt: MqttConfig = MqttConfig()

    @property
    def zone(self) -> ZoneInfo:
        """The time zone in which times are shown."""
        return ZoneInfo(self.timezone)


def config_path(cli_path: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The file to read: ``--config``, else $EMPFANG_DISPLAY_CONFIG, else the default."""
    return settings_path(cli_path, ENV_VAR, DEFAULT_PATH, environ)


def load_config(path: Path) -> DisplayConfig:
    """Read and validate a TOML file, or raise ConfigError."""
    config = parse_config(read_toml(path, ENV_VAR))
    ca_file_exists(config.ca_file)
    return config


# --- field checks ---------------------------------------------------------------------


def _optional_pin(data: Mapping[str, Any], key: str, field: str) -> Pin | None:
    return None if data.get(key) is None else _pin(data[key], field)


def _room_of(data: Mapping[str, Any], field: str, rooms: tuple[str, ...]) -> str | None:
    if not rooms:  # the hub assigns the rooms: a named room is checked by the broker's rules
        return None if data.get("room") is None else _slug(data["room"], field)
    room = _slug(data.get("room", rooms[0]), field)
    if room not in rooms:
        _fail(field, f"{room!r} is not one of the display's rooms")
    return room


def _hub(value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        _fail("hub", "must be the hub's address, like https://empfang.kreis.example")
    return value.rstrip("/")


def _ca_file(value: object) -> str:
    if not isinstance(value, str) or not value:
        _fail("ca_file", "must be the path of a PEM file")
    return value


def _rooms(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        _fail("rooms", "must be a non-empty list of room slugs")
    if len(value) > 100:
        _fail("rooms", "more than 100 rooms")
    rooms = tuple(_slug(room, f"rooms[{i}]") for i, room in enumerate(value))
    if len(set(rooms)) != len(rooms):
        _fail("rooms", "lists a room twice")
    return rooms


def _outputs(value: object) -> tuple[Output, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        _fail("outputs", f"must be a non-empty list of {', '.join(OUTPUTS)}")
    chosen = tuple(
        cast(Output, _choice(item, f"outputs[{i}]", OUTPUTS)) for i, item in enumerate(value)
    )
    if len(set(chosen)) != len(chosen):
        _fail("outputs", "lists an output twice")
    return chosen


def _leds(data: Mapping[str, Any], rooms: tuple[str, ...]) -> LedConfig:
    _no_unknown(
        data, {"kind", "red", "green", "blue", "amber", "active_high", "pwm", "room"}, "leds."
    )
    kind = cast(LedKind, _choice(data.get("kind", "rgb"), "leds.kind", ("rgb", "traffic")))
    needed = ("red", "green", "blue") if kind == "rgb" else ("red", "amber", "green")
    for key in needed:
        if data.get(key) is None:
            _fail(f"leds.{key}", f"required for kind = {kind!r}")
    pins = {
        key: _optional_pin(data, key, f"leds.{key}") for key in ("red", "green", "blue", "amber")
    }
    used = [p for p in pins.values() if p is not None]
    if len(set(used)) != len(used):
        _fail("leds", "two colours share a pin")
    return LedConfig(
        room=_room_of(data, "leds.room", rooms),
        kind=kind,
        active_high=_bool(data.get("active_high", True), "leds.active_high"),
        pwm=_bool(data.get("pwm", True), "leds.pwm"),
        **pins,
    )


def _knock(data: Mapping[str, Any], rooms: tuple[str, ...]) -> KnockConfig:
    _no_unknown(data, {"pin", "room", "min_interval", "pull_up"}, "knock.")
    if data.get("pin") is None:
        _fail("knock.pin", "required")
    return KnockConfig(
        pin=_pin(data["pin"], "knock.pin"),
        room=_room_of(data, "knock.room", rooms),
        min_interval=_number(data.get("min_interval", 5.0), "knock.min_interval", 0.5, 3600),
        pull_up=_bool(data.get("pull_up", True), "knock.pull_up"),
    )


def _epaper(data: Mapping[str, Any]) -> EpaperConfig:
    _no_unknown(data, {"panel", "width", "height", "colours", "full_refresh_minutes"}, "epaper.")
    panel = data.get("panel")
    if not isinstance(panel, str) or not panel:
        _fail("epaper.panel", "required, e.g. 'png:/path/door.png', 'waveshare-7in5b' or 'inky'")
    if panel.startswith("png:"):
        if not panel[4:]:
            _fail("epaper.panel", "png: needs a file path, e.g. 'png:/run/empfang/door.png'")
        default = (800, 480, "bwr")
    elif panel.startswith("waveshare:"):
        default = (800, 480, "bwr")
    elif panel in PANELS:
        default = PANELS[panel]
    else:
        known = ", ".join(["png:PATH", "waveshare:MODULE", *PANELS])
        _fail("epaper.panel", f"unknown panel {panel!r}; known: {known}")
    return EpaperConfig(
        panel=panel,
        width=_int(data.get("width", default[0]), "epaper.width", 64, 4096),
        height=_int(data.get("height", default[1]), "epaper.height", 32, 4096),
        colours=cast(
            Colours, _choice(data.get("colours", default[2]), "epaper.colours", ("bw", "bwr"))
        ),
        full_refresh_minutes=_number(
            data.get("full_refresh_minutes", 60), "epaper.full_refresh_minutes", 0, 24 * 60
        ),
    )


def _hdmi(data: Mapping[str, Any]) -> HdmiConfig:
    _no_unknown(data, {"layout", "fullscreen"}, "hdmi.")
    return HdmiConfig(
        layout=cast(
            Layout, _choice(data.get("layout", "single"), "hdmi.layout", ("single", "overview"))
        ),
        fullscreen=_bool(data.get("fullscreen", True), "hdmi.fullscreen"),
    )


def _mqtt(data: Mapping[str, Any]) -> MqttConfig:
    _no_unknown(data, {"keepalive", "reconnect_min", "reconnect_max"}, "mqtt.")
    low = _int(data.get("reconnect_min", 1), "mqtt.reconnect_min", 1, 60)
    high = _int(data.get("reconnect_max", 2), "mqtt.reconnect_max", 1, 300)
    if high < low:
        _fail("mqtt.reconnect_max", "must not be smaller than mqtt.reconnect_min")
    return MqttConfig(
        keepalive=_int(data.get("keepalive", 3), "mqtt.keepalive", 2, 60),
        reconnect_min=low,
        reconnect_max=high,
    )


_TOP = {
    "broker", "site", "device", "rooms", "language", "timezone", "outputs",
    "leds", "knock", "epaper", "hdmi", "mqtt", "hub", "ca_file",
}  # fmt: skip


def parse_config(data: Mapping[str, Any]) -> DisplayConfig:
    """Validate a parsed TOML document, or raise ConfigError naming the first bad field."""
    _no_unknown(data, _TOP)
    if "broker" not in data:
        _fail("broker", "required, e.g. broker = 'mqtt://user:pass@host:1883'")
    broker = _broker(data["broker"])
    if "device" not in data:
        _fail("device", "required: this display's device id (a slug)")
    device = _slug(data["device"], "device")
    site = _slug(data.get("site", "default"), "site")
    # Without a rooms list the display shows what the hub assigns (devices/<id>/config).
    rooms = _rooms(data["rooms"]) if "rooms" in data else ()
    language = cast(
        Literal["de", "en"], _choice(data.get("language", "de"), "language", ("de", "en"))
    )
    timezone = data.get("timezone", "Europe/Berlin")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        _fail("timezone", f"unknown time zone {timezone!r}")
    outputs = _outputs(data.get("outputs", ["hdmi"]))
    leds_table, epaper_table = _table(data, "leds"), _table(data, "epaper")
    if "leds" in outputs and leds_table is None:
        _fail("leds", "outputs lists leds, so a [leds] table with the pins is required")
    if "epaper" in outputs and epaper_table is None:
        _fail("epaper", "outputs lists epaper, so an [epaper] table with the panel is required")
    knock_table = _table(data, "knock")
    return DisplayConfig(
        broker=broker,
        device=device,
        rooms=rooms,
        site=site,
        language=language,
        timezone=timezone,
        outputs=outputs,
        leds=_leds(leds_table, rooms) if leds_table is not None and "leds" in outputs else None,
        knock=_knock(knock_table, rooms) if knock_table is not None else None,
        epaper=_epaper(epaper_table) if epaper_table is not None and "epaper" in outputs else None,
        hdmi=_hdmi(_table(data, "hdmi") or {}),
        mqtt=_mqtt(_table(data, "mqtt") or {}),
        hub=_hub(data["hub"]) if "hub" in data else None,
        ca_file=_ca_file(data["ca_file"]) if "ca_file" in data else None,
    )
