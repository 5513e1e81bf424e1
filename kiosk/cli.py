"""``empfang-kiosk``: run the kiosk in the foreground, or enroll it with a hub.

Exit codes: 0 stopped by SIGTERM/SIGINT, 1 failure at run time, 2 bad configuration or
arguments, 3 enrollment refused or impossible.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from kiosk.config import ConfigError, KioskConfig, config_path, load_config

if TYPE_CHECKING:
    from kiosk.window import WindowHook

log = logging.getLogger("kiosk")

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_ENROLL = 0, 1, 2, 3


def version() -> str:
    """The installed empfang version ("0" when running from a source tree)."""
    try:
        return metadata.version("empfang")
    except metadata.PackageNotFoundError:
        return "0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="empfang-kiosk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the kiosk in the foreground")
    run.add_argument("--config", help="TOML file (default /etc/empfang/kiosk.toml)")
    run.add_argument("--verbose", action="store_true", help="debug logging")
    enroll = commands.add_parser("enroll", help="enroll this kiosk with a hub")
    enroll.add_argument("--hub", required=True, help="the hub's address, https://…")
    enroll.add_argument("--code", required=True, help="the one-time enrollment code")
    enroll.add_argument("--config", help="where to write (default /etc/empfang/kiosk.toml)")
    return parser


def _wait_stop(failed: threading.Event) -> int:
    """Block until a stop signal (0) or a failure (1); the signals are blocked everywhere."""
    while True:
        info = signal.sigtimedwait(STOP_SIGNALS, 0.5)
        if info is not None:
            log.info("stopping on %s", signal.Signals(info.si_signo).name)
            return EXIT_OK
        if failed.is_set():
            log.error("stopping: the kiosk failed")
            return EXIT_FAILED


def run(config: KioskConfig, on_window: WindowHook | None = None) -> int:
    """The windowed kiosk with its health link, until a stop signal (see `run_window`)."""
    from kiosk.footprint import tune_allocator, web_view_environment

    tune_allocator()  # before any worker thread exists
    web_view_environment(os.environ)  # before Qt starts
    from kiosk.engine import Engine
    from kiosk.health import Health
    from kiosk.window import run_window

    engine = Engine(config, version=version())
    health = None
    if config.broker is not None:
        health = Health(
            config.broker,
            config.site,
            config.device,
            version=version(),
            telemetry=engine.telemetry,
            on_command=lambda command: engine.command(command.cmd),
            ca_file=config.ca_file,
        )
        health.start()
    try:
        return run_window(engine, _wait_stop, on_window)
    finally:
        if health is not None:
            health.close()


def main(argv: Sequence[str] | None = None, on_window: WindowHook | None = None) -> int:
    """Entry point of ``empfang-kiosk`` (which passes no `on_window`, see `run_window`)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    path = config_path(args.config)
    if args.command == "enroll":
        from kiosk.enroll import EnrollError, enroll

        try:
            data = enroll(args.hub, args.code, path)
        except EnrollError as exc:
            print(f"empfang-kiosk enroll: {exc}", file=sys.stderr)
            return EXIT_ENROLL
        print(f"enrolled as {data['device']}; configuration written to {path}")
        return EXIT_OK
    try:
        config = load_config(Path(path))
    except ConfigError as exc:
        print(f"empfang-kiosk: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return run(config, on_window)
    except Exception:
        log.exception("the kiosk failed")
        return EXIT_FAILED
    finally:
        while signal.sigtimedwait(STOP_SIGNALS, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


if __name__ == "__main__":
    sys.exit(main())
