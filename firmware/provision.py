#!/usr/bin/env python3
"""Provision an ESP32 status light: write config.json from an enrolled device's
credentials and copy the application onto the board with mpremote.

CPython, standard library only; mpremote (pip install mpremote) is run as a subprocess.

    python firmware/provision.py --port /dev/ttyUSB0 --credentials enrolled.json \\
        --wifi-ssid Rathaus-IoT --wifi-password '…' --rooms sozialamt-2,sozialamt-3 \\
        --led ws2812 --led-pin 5 --pixels 12

With --dry-run or --out FILE it only writes config.json (mode 0600) and, for --dry-run,
prints the mpremote commands it would run. The config is checked with the firmware's own
validator (empfang_light/config.py), so the board never gets a file it would refuse.

The credentials file is what enrollment hands out, for example:

    {"device_id": "light-flur-2", "site": "default", "rooms": ["sozialamt-2"],
     "username": "default.light-flur-2", "password": "…",
     "client_id": "empfang.default.light-flur-2",
     "broker": {"host": "mqtt.rathaus.example", "port": 8883, "tls": true}}

"broker" may also be a URL ("mqtts://mqtt.rathaus.example:8883"), or the keys may be
flat: "broker_host", "broker_port", "broker_tls". "client_id" is the only MQTT client id
the broker accepts with that login (the hub binds it); without one the light connects as
its device_id.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
APP_PACKAGE = "empfang_light"
REMOVE_MAIN = 'import os; "main.py" in os.listdir() and os.remove("main.py")'


class ProvisionError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _config_module():
    sys.dont_write_bytecode = True  # no __pycache__ next to the firmware sources
    sys.path.insert(0, str(HERE))
    try:
        from empfang_light import config
    finally:
        sys.path.remove(str(HERE))
    return config


def _broker(creds: dict) -> dict:
    broker = creds.get("broker")
    if isinstance(broker, str):
        parts = urlsplit(broker)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ProvisionError("credentials: broker URL must look like mqtts://host:8883")
        tls = parts.scheme == "mqtts"
        return {"host": parts.hostname, "port": parts.port or (8883 if tls else 1883), "tls": tls}
    if isinstance(broker, dict):
        out = {key: broker[key] for key in ("host", "port", "tls") if key in broker}
    elif broker is None:
        out = {}
        for key in ("host", "port", "tls"):
            if "broker_" + key in creds:
                out[key] = creds["broker_" + key]
    else:
        raise ProvisionError("credentials: broker must be an object or a URL")
    if "host" not in out:
        raise ProvisionError("credentials: the broker host is missing")
    return out


def _hhmm_pair(text: str) -> list[str]:
    parts = text.split("-")
    if len(parts) != 2:
        raise ProvisionError('--quiet-hours must look like "22:00-06:00"')
    return [part.strip() for part in parts]


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ProvisionError(f"{option} must be comma-separated GPIO numbers") from None


def build_config(args: argparse.Namespace, creds: dict) -> dict:
    """The config.json object for these options and credentials (not yet validated)."""
    for key in ("device_id", "username", "password"):
        if not isinstance(creds.get(key), str):
            raise ProvisionError(f"credentials: {key} is missing")
    rooms = args.rooms.split(",") if args.rooms else creds.get("rooms")
    if not rooms:
        raise ProvisionError("no rooms: give --rooms or put rooms into the credentials")
    broker = _broker(creds)
    broker["username"] = creds["username"]
    broker["password"] = creds["password"]
    if args.ca_file:
        broker["ca_file"] = Path(args.ca_file).name
    if args.led == "rgb":
        led: dict = {"type": "rgb", "pins": _int_list(args.led_pins, "--led-pins")}
        if args.invert:
            led["invert"] = True
    else:
        led = {"type": "ws2812", "pin": args.led_pin, "pixels": args.pixels}
    led["brightness"] = args.brightness
    config: dict = {
        "device_id": creds["device_id"],
        "site": args.site or creds.get("site", "default"),
        "rooms": [room.strip() for room in rooms],
        "wifi": {"ssid": args.wifi_ssid, "password": args.wifi_password},
        "broker": broker,
        "led": led,
        "quiet_hours": _hhmm_pair(args.quiet_hours) if args.quiet_hours else None,
    }
    if "client_id" in creds:
        config["client_id"] = creds["client_id"]
    if args.knock_pin is not None:
        config["knock"] = {"pin": args.knock_pin}
    return config


def validate(config: dict) -> None:
    module = _config_module()
    try:
        module.parse_config(config)
    except module.ConfigError as exc:
        raise ProvisionError(f"the resulting config.json would be refused: {exc}") from None


def write_config(config: dict, path: Path) -> None:
    """Write with mode 0600: the file holds the Wi-Fi and broker passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.chmod(path, 0o600)


def stage_app(target: Path) -> Path:
    """Copy only the firmware's .py files (no caches) into target; returns target."""
    package = target / APP_PACKAGE
    package.mkdir(parents=True)
    for source in sorted((HERE / APP_PACKAGE).glob("*.py")):
        shutil.copy2(source, package / source.name)
    shutil.copy2(HERE / "main.py", target / "main.py")
    return target


def commands(args: argparse.Namespace, config_file: str, ca_file: str | None) -> list[list[str]]:
    """The mpremote invocations, in order. main.py goes last, so a half-finished copy
    never starts; the old main.py goes first, so a running app and its watchdog are
    out of the way while files are copied."""
    base = [args.mpremote, "connect", args.port]
    second = list(base)
    if not args.skip_mip:
        second += ["mip", "install", "umqtt.simple", "+"]
    second += ["cp", "-r", APP_PACKAGE, ":", "+", "cp", config_file, ":config.json", "+"]
    if ca_file:
        second += ["cp", ca_file, ":" + Path(ca_file).name, "+"]
    second += ["cp", "main.py", ":main.py", "+", "reset"]
    return [base + ["exec", REMOVE_MAIN, "+", "reset"], second]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="provision.py",
        description="Write config.json for an empfang status light and copy the app.",
    )
    p.add_argument("--port", help="serial port of the board, e.g. /dev/ttyUSB0")
    p.add_argument("--credentials", required=True, help="enrolled device credentials (JSON)")
    p.add_argument("--wifi-ssid", required=True)
    p.add_argument("--wifi-password", default="")
    p.add_argument("--rooms", help="comma-separated room slugs (default: from credentials)")
    p.add_argument("--site", help="site slug (default: from credentials, else 'default')")
    p.add_argument("--led", choices=("ws2812", "rgb"), default="ws2812")
    p.add_argument("--led-pin", type=int, default=5, help="WS2812 data pin")
    p.add_argument("--pixels", type=int, default=12, help="WS2812 pixel count")
    p.add_argument("--led-pins", default="25,26,27", help="RGB LED pins red,green,blue")
    p.add_argument("--invert", action="store_true", help="common-anode RGB LED")
    p.add_argument("--brightness", type=int, default=60, help="0-100")
    p.add_argument("--quiet-hours", help='dim between, e.g. "22:00-06:00"')
    p.add_argument("--knock-pin", type=int, help="GPIO of the knock button (optional)")
    p.add_argument("--ca-file", help="CA certificate of the broker (PEM or DER) to copy")
    p.add_argument("--out", help="only write config.json to this path")
    p.add_argument("--dry-run", action="store_true", help="write the file, print the commands")
    p.add_argument("--skip-mip", action="store_true", help="umqtt.simple is already installed")
    p.add_argument("--mpremote", default="mpremote", help="mpremote executable")
    p.add_argument(
        "--settle-s", type=float, default=2.0, help="wait after the reset without the app"
    )
    return p.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        creds = json.loads(Path(args.credentials).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"cannot read credentials {args.credentials}: {exc}") from None
    if not isinstance(creds, dict):
        raise ProvisionError("credentials: must be a JSON object")
    config = build_config(args, creds)
    validate(config)

    if args.dry_run or args.out:
        out = Path(args.out or "config.json")
        write_config(config, out)
        print(f"wrote {out}")
        if args.dry_run:
            args.port = args.port or "PORT"
            for cmd in commands(args, str(out), args.ca_file):
                print("would run (in firmware/):", shlex.join(cmd))
        return 0

    if not args.port:
        raise ProvisionError("--port is required (or use --dry-run / --out)")
    if shutil.which(args.mpremote) is None and not Path(args.mpremote).exists():
        raise ProvisionError("mpremote not found: pip install mpremote")
    with tempfile.TemporaryDirectory() as tmp:
        stage = stage_app(Path(tmp) / "stage")
        write_config(config, stage / "config.json")
        ca_file = None
        if args.ca_file:
            ca_file = str(stage / Path(args.ca_file).name)
            shutil.copy2(args.ca_file, ca_file)
        first, second = commands(args, "config.json", ca_file and Path(ca_file).name)
        for i, cmd in enumerate((first, second)):
            result = subprocess.run(cmd, cwd=stage, check=False)
            if result.returncode != 0:
                raise ProvisionError(f"mpremote failed (exit {result.returncode}): {cmd[3:]}")
            if i == 0:
                time.sleep(args.settle_s)  # let the board come back up without the app
    print(f"provisioned {config['device_id']} on {args.port}")
    return 0


def main() -> None:
    try:
        sys.exit(run())
    except ProvisionError as exc:
        print(f"provision.py: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
