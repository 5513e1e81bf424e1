"""The kiosk's TOML configuration: defaults, every field checked, errors name the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kiosk.config import ConfigError, load_config, parse_config

MINIMAL = {"hub": "https://empfang.example/", "device": "kiosk-rathaus"}


def test_a_minimal_file_gets_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('hub = "http://127.0.0.1:5000"\ndevice = "kiosk-1"\n')
    config = load_config(path)
    assert config.hub == "http://127.0.0.1:5000"
    assert (config.camera.kind, config.language) == ("synthetic", "de")
    assert config.languages == ("de", "en")
    assert (config.timeouts.inactivity, config.timeouts.goodbye) == (90.0, 10.0)
    assert config.broker is None and config.gpio.call_button is None


def test_a_full_file(tmp_path: Path) -> None:
    config = parse_config(
        {
            **MINIMAL,
            "broker": "mqtts://default.kiosk-rathaus:p%40ss@broker.example",
            "camera": "v4l2:/dev/video2",
            "languages": ["en", "de"],
            "gpio": {"call_button": 5, "motion_sensor": "GPIO6", "status_led": 13},
            "timeouts": {"inactivity": 30, "goodbye": 5},
            "video": {"width": 320, "height": 240, "fps": 10},
        }
    )
    assert config.hub == "https://empfang.example"
    assert config.broker is not None
    assert (config.broker.port, config.broker.tls, config.broker.password) == (8883, True, "p@ss")
    assert (config.camera.kind, config.camera.device) == ("v4l2", "/dev/video2")
    assert config.language == "en"
    assert config.gpio.motion_sensor == "GPIO6"
    assert config.timeouts.inactivity == 30.0
    assert (config.video.width, config.video.fps) == (320, 10.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hub": "empfang.example"}, "hub"),
        ({"device": "Kiosk 1"}, "device"),
        ({"broker": "http://x"}, "broker"),
        ({"camera": "webcam"}, "camera"),
        ({"languages": ["de", "fr"]}, "languages[1]"),
        ({"gpio": {"call_button": 99}}, "gpio.call_button"),
        ({"gpio": {"call_button": 5, "status_led": 5}}, "gpio"),
        ({"timeouts": {"inactivity": "90"}}, "timeouts.inactivity"),
        ({"video": {"width": 641}}, "video"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_values_name_their_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, **change})
    assert info.value.field == field


def test_missing_file_and_required_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: .* does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"^device: required"):
        parse_config({"hub": "http://h"})
