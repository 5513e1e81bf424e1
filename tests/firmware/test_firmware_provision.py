"""firmware/provision.py: config.json from enrolled credentials, and the mpremote steps."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.firmware.helpers import FIRMWARE, FirmwareEnv

PROVISION = FIRMWARE / "provision.py"

CREDENTIALS = {
    "device_id": "light-flur-2",
    "site": "rathaus",
    "rooms": ["sozialamt-2"],
    "username": "light-flur-2",
    "password": "s3cret-from-enrollment",
    "broker": {"host": "mqtt.rathaus.example", "port": 8883, "tls": True},
}


def provision(tmp_path: Path, *args: str, creds: dict[str, Any] | None = None) -> Any:
    credentials = tmp_path / "enrolled.json"
    credentials.write_text(json.dumps(CREDENTIALS if creds is None else creds))
    return subprocess.run(
        [
            sys.executable,
            str(PROVISION),
            "--credentials",
            str(credentials),
            "--wifi-ssid",
            "Rathaus-IoT",
            "--wifi-password",
            "wlan-geheim",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )


def test_dry_run_writes_a_config_the_firmware_accepts(fw: FirmwareEnv, tmp_path: Path) -> None:
    out = tmp_path / "out" / "config.json"
    result = provision(
        tmp_path,
        "--port",
        "/dev/ttyUSB0",
        "--rooms",
        "sozialamt-2,sozialamt-3",
        "--quiet-hours",
        "22:00-06:00",
        "--knock-pin",
        "9",
        "--dry-run",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600, "the file holds passwords"
    cfg = fw.module("config").load_config(str(out))
    assert cfg.device_id == "light-flur-2" and cfg.site == "rathaus"
    assert cfg.rooms == ["sozialamt-2", "sozialamt-3"]
    assert (cfg.broker_host, cfg.broker_port, cfg.tls) == ("mqtt.rathaus.example", 8883, True)
    assert (cfg.username, cfg.password) == ("light-flur-2", "s3cret-from-enrollment")
    assert (cfg.wifi_ssid, cfg.wifi_password) == ("Rathaus-IoT", "wlan-geheim")
    assert cfg.led_type == "ws2812" and cfg.pixels == 12
    assert cfg.quiet_hours == (22 * 60, 6 * 60)
    assert cfg.knock_pin == 9 and cfg.knock_room == "sozialamt-2"
    assert "would run (in firmware/): mpremote connect /dev/ttyUSB0" in result.stdout
    assert "mip install umqtt.simple" in result.stdout


def test_broker_url_flat_keys_and_rgb_led(fw: FirmwareEnv, tmp_path: Path) -> None:
    creds = {**CREDENTIALS, "broker": "mqtt://10.0.0.5:1884"}
    rgb = ("--led", "rgb", "--led-pins", "25,26,27", "--invert")
    result = provision(tmp_path, *rgb, "--out", "a.json", creds=creds)
    assert result.returncode == 0, result.stderr
    cfg = fw.module("config").load_config(str(tmp_path / "a.json"))
    assert (cfg.broker_host, cfg.broker_port, cfg.tls) == ("10.0.0.5", 1884, False)
    assert cfg.rooms == ["sozialamt-2"], "rooms come from the credentials by default"
    assert (cfg.led_type, cfg.led_pins, cfg.led_invert) == ("rgb", [25, 26, 27], True)

    flat = {key: value for key, value in CREDENTIALS.items() if key != "broker"}
    flat.update(broker_host="mqtt.local", broker_port=1883, broker_tls=False)
    result = provision(tmp_path, "--out", "b.json", creds=flat)
    assert result.returncode == 0, result.stderr
    cfg = fw.module("config").load_config(str(tmp_path / "b.json"))
    assert (cfg.broker_host, cfg.broker_port, cfg.tls) == ("mqtt.local", 1883, False)


def test_bad_input_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    result = provision(tmp_path, "--rooms", "Sozialamt 2", "--out", "c.json")
    assert result.returncode == 2
    assert "would be refused: rooms[0]: must be a slug" in result.stderr
    assert not (tmp_path / "c.json").exists(), "nothing is written"

    creds = {key: value for key, value in CREDENTIALS.items() if key != "password"}
    result = provision(tmp_path, "--out", "c.json", creds=creds)
    assert result.returncode == 2 and "credentials: password is missing" in result.stderr

    result = provision(tmp_path, "--brightness", "150", "--out", "c.json")
    assert result.returncode == 2 and "led.brightness" in result.stderr

    result = provision(tmp_path)
    assert result.returncode == 2 and "--port is required" in result.stderr


FAKE_MPREMOTE = """#!{python}
import json, os, sys
with open({log!r}, "a") as f:
    files = sorted(
        os.path.relpath(os.path.join(d, n), ".") for d, _, ns in os.walk(".") for n in ns
    )
    config = json.load(open("config.json")) if os.path.exists("config.json") else None
    f.write(json.dumps({{"argv": sys.argv[1:], "files": files, "config": config}}) + "\\n")
"""


def test_copies_the_app_with_mpremote(fw: FirmwareEnv, tmp_path: Path) -> None:
    log = tmp_path / "mpremote.log"
    fake = tmp_path / "mpremote"
    fake.write_text(FAKE_MPREMOTE.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    result = provision(
        tmp_path, "--port", "/dev/ttyACM0", "--mpremote", str(fake), "--settle-s", "0"
    )
    assert result.returncode == 0, result.stderr
    assert "provisioned light-flur-2 on /dev/ttyACM0" in result.stdout

    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["argv"][:3] == ["connect", "/dev/ttyACM0", "exec"]
    assert 'os.remove("main.py")' in first["argv"][3]
    assert first["argv"][-2:] == ["+", "reset"]

    steps = " ".join(second["argv"]).split(" + ")
    assert steps == [
        "connect /dev/ttyACM0 mip install umqtt.simple",
        "cp -r empfang_light :",
        "cp config.json :config.json",
        "cp main.py :main.py",
        "reset",
    ], "main.py last: a half-finished copy never starts"

    modules = sorted(p.name for p in (FIRMWARE / "empfang_light").glob("*.py"))
    assert second["files"] == sorted(
        ["config.json", "main.py", *(f"empfang_light/{m}" for m in modules)]
    ), "only the app's .py files and config.json, no caches"
    cfg = fw.module("config").parse_config(second["config"])
    assert cfg.device_id == "light-flur-2"
