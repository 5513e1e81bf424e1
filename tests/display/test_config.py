"""The display's TOML configuration: good files load, bad ones name the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest

from display.config import (
    DEFAULT_PATH,
    ENV_VAR,
    BrokerAddress,
    ConfigError,
    config_path,
    load_config,
    parse_config,
)

FULL = """
broker = "mqtts://tuer-1:geheim%21@broker.example:8884"
site = "kreis"
device = "tuer-1"
rooms = ["sozialamt-2", "sozialamt-3"]
language = "en"
timezone = "Europe/Berlin"
outputs = ["leds", "epaper", "hdmi"]

[leds]
kind = "traffic"
red = 17
amber = "GPIO23"
green = 27
active_high = false
room = "sozialamt-3"

[knock]
pin = 5
room = "sozialamt-2"
min_interval = 10

[epaper]
panel = "waveshare-2in9"
full_refresh_minutes = 30

[hdmi]
layout = "overview"
fullscreen = false

[mqtt]
keepalive = 5
reconnect_max = 8
"""


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "display.toml"
    path.write_text(FULL, encoding="utf-8")
    config = load_config(path)
    assert config.broker == BrokerAddress("broker.example", 8884, True, "tuer-1", "geheim!")
    assert (config.site, config.device, config.language) == ("kreis", "tuer-1", "en")
    assert config.rooms == ("sozialamt-2", "sozialamt-3")
    assert config.outputs == ("leds", "epaper", "hdmi")
    assert config.leds is not None and config.leds.kind == "traffic"
    assert (config.leds.red, config.leds.amber, config.leds.room) == (17, "GPIO23", "sozialamt-3")
    assert config.knock is not None and config.knock.min_interval == 10
    assert config.epaper is not None
    assert (config.epaper.width, config.epaper.height, config.epaper.colours) == (296, 128, "bw")
    assert config.hdmi.layout == "overview" and not config.hdmi.fullscreen
    assert (config.mqtt.keepalive, config.mqtt.reconnect_max) == (5, 8)


def test_defaults() -> None:
    config = parse_config({"broker": "mqtt://h", "device": "d-1", "rooms": ["r"]})
    assert config.broker.port == 1883
    assert (config.site, config.language, config.outputs) == ("default", "de", ("hdmi",))
    assert config.hdmi.layout == "single" and config.hdmi.fullscreen
    # paho notices a silent broker after about 2 x keepalive (+1 s loop): within 10 s.
    assert 2 * config.mqtt.keepalive + 1 < 10
    # The right state must be back within 5 s of the broker's return, backoff included.
    assert config.mqtt.reconnect_max <= 2


BASE = {"broker": "mqtt://h:1883", "device": "tuer-1", "rooms": ["raum-1"]}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"broker": None}, "broker"),
        ({"broker": "http://h"}, "broker"),
        ({"broker": "mqtt://h:99999"}, "broker"),
        ({"device": "Tür 1"}, "device"),
        ({"rooms": []}, "rooms"),
        ({"rooms": ["ok", "Not OK"]}, "rooms[1]"),
        ({"rooms": ["a", "a"]}, "rooms"),
        ({"site": "-x"}, "site"),
        ({"language": "fr"}, "language"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"outputs": ["hdmi", "beamer"]}, "outputs[1]"),
        ({"outputs": ["leds"]}, "leds"),
        ({"outputs": ["leds"], "leds": {"red": 1, "green": 2}}, "leds.blue"),
        ({"outputs": ["leds"], "leds": {"red": 1, "green": 1, "blue": 3}}, "leds"),
        ({"outputs": ["leds"], "leds": {"red": 99, "green": 2, "blue": 3}}, "leds.red"),
        (
            {"outputs": ["leds"], "leds": {"red": 1, "green": 2, "blue": 3, "room": "x"}},
            "leds.room",
        ),
        (
            {"outputs": ["leds"], "leds": {"red": 1, "green": 2, "blue": 3, "pwm": "yes"}},
            "leds.pwm",
        ),
        ({"knock": {"room": "raum-1"}}, "knock.pin"),
        ({"knock": {"pin": 5, "min_interval": 0}}, "knock.min_interval"),
        ({"outputs": ["epaper"], "epaper": {"panel": "kindle"}}, "epaper.panel"),
        ({"outputs": ["epaper"], "epaper": {"panel": "png:"}}, "epaper.panel"),
        ({"outputs": ["epaper"], "epaper": {"panel": "inky", "width": 10}}, "epaper.width"),
        ({"outputs": ["epaper"], "epaper": {"panel": "inky", "colours": "rgb"}}, "epaper.colours"),
        ({"hdmi": {"layout": "grid"}}, "hdmi.layout"),
        ({"hdmi": "big"}, "hdmi"),
        ({"mqtt": {"keepalive": 1}}, "mqtt.keepalive"),
        ({"mqtt": {"reconnect_min": 5, "reconnect_max": 2}}, "mqtt.reconnect_max"),
        ({"outptus": ["hdmi"]}, "outptus"),
    ],
)
def test_bad_values_name_the_field(change: dict, field: str) -> None:
    data = {**BASE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: .*does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("rooms = [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^config: .*not valid TOML"):
        load_config(bad)


def test_config_path_precedence() -> None:
    assert config_path(None, {}) == DEFAULT_PATH
    assert config_path(None, {ENV_VAR: "/env.toml"}) == Path("/env.toml")
    assert config_path("/cli.toml", {ENV_VAR: "/env.toml"}) == Path("/cli.toml")


def test_documented_example_is_valid() -> None:
    import textwrap
    import tomllib

    import display.config

    example = textwrap.dedent((display.config.__doc__ or "").split("::", 1)[1])
    config = parse_config(tomllib.loads(example))
    assert config.outputs == ("hdmi", "leds") and config.knock is not None
