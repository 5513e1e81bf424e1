"""The ``empfang-display`` command: ``run`` for systemd, ``preview`` for an e-paper image,
``enroll`` to join a hub with a one-time code.

Exit codes: 0 after a clean stop (SIGTERM or SIGINT), 2 for a configuration error, 1 for
anything unexpected. Logs go to standard output.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from display.config import ConfigError, DisplayConfig, EpaperConfig, config_path, load_config

log = logging.getLogger("display")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empfang-display", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="show the configured rooms until stopped")
    run.add_argument("--config", help="TOML file (default $EMPFANG_DISPLAY_CONFIG or /etc/...)")
    run.add_argument(
        "--timings", action="store_true", help="log the time from MQTT receipt to each output"
    )
    preview = sub.add_parser(
        "preview",
        help="render the e-paper image once from the broker (as this display: stop its "
        "service first, the broker allows one session per display)",
    )
    preview.add_argument("--config", help="TOML file (as for run)")
    preview.add_argument("--out", required=True, type=Path, help="PNG file to write")
    preview.add_argument("--wait", type=float, default=5.0, help="seconds to wait for statuses")
    enroll = sub.add_parser("enroll", help="join a hub with the one-time code an admin created")
    enroll.add_argument(
        "--hub", required=True, help="the hub's address, e.g. https://empfang.example"
    )
    enroll.add_argument("--code", required=True, help="the code, e.g. K7QM-2XPA-9RTW-HC4E")
    enroll.add_argument("--config", help="TOML file to write (default as for run)")
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _report_latency(output: str, seconds: float) -> None:
    logging.getLogger("display.timing").info("latency %s %.3f ms", output, seconds * 1000)


def run(config: DisplayConfig, timings: bool) -> int:
    """Run the display in the foreground until SIGTERM/SIGINT."""
    from display.service import Display
    from display.stopping import StopSignals

    report = _report_latency if timings else None
    with StopSignals() as stop:  # before any thread starts, so every thread inherits it
        if "hdmi" in config.outputs:
            from display.hdmi import HdmiPage, run_window

            holder: list[Display] = []

            def start(page: HdmiPage) -> Display:
                display = Display(config, extra=[page], clock=_now, report=report)
                holder.append(display)
                display.start()
                return display

            def wait_stop() -> int:
                return stop.wait(holder[0].failed if holder else threading.Event())

            return run_window(config, _now, start, wait_stop)
        display = Display(config, clock=_now, report=report)
        try:
            display.start()
            log.info(
                "display %s shows %s on %s",
                config.device,
                ", ".join(config.rooms) or "the rooms the hub assigns",
                ", ".join(config.outputs),
            )
            return stop.wait(display.failed)
        finally:
            display.close()


def preview(config: DisplayConfig, out: Path, wait: float) -> int:
    """Connect, collect the retained statuses, write the e-paper image once."""
    from display.core import DisplayCore
    from display.epaper import EpaperOutput
    from display.model import RoomBoard
    from display.mqtt_client import DisplayLink
    from display.panels import PngSink
    from protocol.errors import PayloadError
    from protocol.payloads import DeviceConfig
    from protocol.topics import device_config

    base = config.epaper or EpaperConfig(panel="png:-", width=800, height=480, colours="bwr")
    board = RoomBoard(config.site, config.rooms, _now, label=config.device)
    core = DisplayCore(board, [], config.zone)
    config_topic = device_config(config.site, config.device)
    links: list[DisplayLink] = []

    def on_message(topic: str, payload: bytes, received: float) -> None:
        if topic != config_topic:
            core.on_message(topic, payload, received)
            return
        try:  # the rooms the hub assigns
            rooms = DeviceConfig.parse(payload).rooms if payload else None
        except PayloadError as exc:
            log.warning("ignored a malformed configuration from the hub: %s", exc)
            return
        if rooms is not None and core.set_rooms(rooms):
            links[0].set_subscriptions([*board.subscriptions(), config_topic])

    link = DisplayLink(
        config.broker, config.site, config.device, [*board.subscriptions(), config_topic],
        on_message, core.on_connection, timing=config.mqtt, announce=False,
        ca_file=config.ca_file, on_refused=core.set_refused,
    )  # fmt: skip
    links.append(link)
    link.start()
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if all(room.reason is None for room in core.view().rooms):
                break
            time.sleep(0.05)
        view = core.view()
        EpaperOutput(PngSink(out), base, config.language, config.zone, _now).render(view)
    finally:
        link.close()
    print(f"wrote {out}: " + ", ".join(f"{r.room} {r.shown.value}" for r in view.rooms))
    return EXIT_OK


def enroll(hub: str, code: str, path: Path) -> int:
    """Enroll this display; its id and broker login go into ``path`` (mode 0600)."""
    from display.enroll import EnrollError
    from display.enroll import enroll as do_enroll

    try:
        data = do_enroll(hub, code, path)
    except EnrollError as exc:
        print(f"empfang-display: enrollment failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"enrolled as {data['device']} (site {data['site']}); configuration written to {path}")
    try:
        load_config(path)
    except ConfigError as exc:
        print(f"empfang-display: the login is saved, but fix the file: {exc}", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    _logging(args.log_level)
    if args.command == "enroll":
        return enroll(args.hub, args.code, config_path(args.config))
    try:
        config = load_config(config_path(args.config))
        if args.command == "preview":
            return preview(config, args.out, args.wait)
        return run(config, args.timings)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        print(f"empfang-display: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        log.exception("the display stopped unexpectedly")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
