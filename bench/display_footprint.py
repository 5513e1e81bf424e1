"""Footprint of the door display: RSS, CPU and receipt-to-output latency.

Run as ``.venv/bin/python bench/display_footprint.py`` (``--seconds 60`` for a short run).
It starts a real Mosquitto on a free loopback port and two real ``empfang-display run``
processes at the same time, one in LED mode (gpiozero's mock pins through
``GPIOZERO_PIN_FACTORY=mock``, PWM mock pins for the RGB LED) and one in e-paper mode (the
PNG sink, 800x480 three-colour). A publisher in this process changes one room's retained
status every ``--interval`` seconds, cycling free -> busy -> waiting -> dnd -> closed, so
every change is a visible change on both outputs.

What is measured
----------------
``rss_*``: the display process's peak resident set (VmHWM from /proc, MiB) at the end of
the run; the processes have no children in these modes.

``cpu_*``: user + system CPU seconds the process used between "connected to the broker"
and the end of the run (start-up imports excluded; they are printed as ``cpu_*_startup``).

``*_latency_*``: each display runs with ``--timings`` and logs, per change, the time from
the MQTT message reaching paho's ``on_message`` (``time.perf_counter()``) to the output
having shown it: for the LED, the RGBLED's pins written; for the e-paper, the PNG file
renamed into place (drawing, PNG encoding and the hand-over to the output thread
included). Nearest-rank percentiles over all changes.

Targets (from the issue): RSS <= 40 MB in LED and e-paper mode; receipt to LED <= 20 ms
p99; receipt to image <= 200 ms p99. ``result=ok`` when all hold, every change was
shown, and both processes stopped with exit code 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

from protocol import topics
from protocol.payloads import HubState, RoomState, RoomStatus

SITE = "default"
ROOM = "bench-1"
CYCLE = (RoomState.FREE, RoomState.BUSY, RoomState.WAITING, RoomState.DND, RoomState.CLOSED)
TARGET_RSS_MB = 40.0
TARGET_LED_P99_MS = 20.0
TARGET_IMAGE_P99_MS = 200.0
LATENCY = re.compile(r"latency (\w+) ([0-9.]+) ms")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress on stderr (stdout carries only the figures)."""
    print(f"# {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll ``check()`` until true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    """Whether 127.0.0.1:port accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_mosquitto(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """A real Mosquitto on ``port``."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n", encoding="utf-8"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until(lambda: port_open(port), 10, "mosquitto")
    return proc


def proc_status(pid: int, key: str) -> float:
    """A kB field of /proc/<pid>/status, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class DisplayRun:
    """One ``empfang-display run`` child and what it reported."""

    name: str
    output: str
    proc: subprocess.Popen[str]
    latencies: list[float] = field(default_factory=list)
    connected_cpu: float = math.nan
    connected: threading.Event = field(default_factory=threading.Event)
    lines: list[str] = field(default_factory=list)

    def read(self) -> None:
        """Collect stdout: the connect moment and the latency lines."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "connected to broker" in line and not self.connected.is_set():
                self.connected_cpu = cpu_seconds(self.proc.pid)
                self.connected.set()
            match = LATENCY.search(line)
            if match and match.group(1) == self.output:
                self.latencies.append(float(match.group(2)))


def start_display(name: str, output: str, config: Path, env: dict[str, str]) -> DisplayRun:
    """Start one display process and its stdout reader."""
    script = Path(sys.executable).parent / "empfang-display"
    proc = subprocess.Popen(
        [str(script), "run", "--timings", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env=env,
    )
    run = DisplayRun(name, output, proc)
    threading.Thread(target=run.read, daemon=True).start()
    return run


def write_configs(workdir: Path, port: int) -> tuple[Path, Path]:
    """LED-mode and e-paper-mode configuration files."""
    common = f'broker = "mqtt://127.0.0.1:{port}"\nsite = "{SITE}"\nrooms = ["{ROOM}"]\n'
    led = workdir / "led.toml"
    led.write_text(
        common + 'device = "bench-led"\noutputs = ["leds"]\n'
        "[leds]\nred = 17\ngreen = 27\nblue = 22\n",
        encoding="utf-8",
    )
    epaper = workdir / "epaper.toml"
    epaper.write_text(
        common + 'device = "bench-epaper"\noutputs = ["epaper"]\n'
        f'[epaper]\npanel = "png:{workdir / "door.png"}"\nwidth = 800\nheight = 480\n'
        'colours = "bwr"\n',
        encoding="utf-8",
    )
    return led, epaper


class Publisher:
    """Publishes the hub state and one room's changing status, retained, QoS 1."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = 0
        self.since = datetime.now(UTC)

    def hub_online(self) -> None:
        """Say the hub is online."""
        topic = topics.hub_state(SITE)
        self.client.publish(topic, HubState("online", "bench").to_json(), 1, True).wait_for_publish(
            5
        )

    def change(self) -> None:
        """The next state of the cycle."""
        self.seq += 1
        now = datetime.now(UTC)
        status = RoomStatus(
            ROOM, "Bench – Raum 1", CYCLE[self.seq % len(CYCLE)], 1, self.seq % 3, now,
            self.seq, now, 90,
        )  # fmt: skip
        info = self.client.publish(topics.room_status(SITE, ROOM), status.to_json(), 1, True)
        info.wait_for_publish(5)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def stop(run: DisplayRun) -> int:
    """SIGTERM and the exit code."""
    if run.proc.poll() is None:
        run.proc.send_signal(signal.SIGTERM)
    try:
        return run.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        run.proc.kill()
        return run.proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print ``name=value unit`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="duration (default 300)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between changes")
    options = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="display-bench-"))
    port = free_port()
    broker = start_mosquitto(workdir, port)
    runs: list[DisplayRun] = []
    publisher: Publisher | None = None
    try:
        led_config, epaper_config = write_configs(workdir, port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMPFANG_")}
        env.update(
            PYTHONUNBUFFERED="1", GPIOZERO_PIN_FACTORY="mock", GPIOZERO_MOCK_PIN_CLASS="mockpwmpin"
        )
        publisher = Publisher(port)
        publisher.hub_online()
        runs = [
            start_display("led", "leds", led_config, env),
            start_display("epaper", "epaper", epaper_config, env),
        ]
        for run in runs:
            if not run.connected.wait(30):
                raise RuntimeError(f"{run.name} display did not connect: {run.lines[-10:]}")
        time.sleep(1)  # let both settle on the first (unknown) view
        log(f"changing {ROOM} every {options.interval}s for {options.seconds:.0f}s")
        changes = 0
        started = time.monotonic()
        while time.monotonic() - started < options.seconds:
            publisher.change()
            changes += 1
            next_at = started + changes * options.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(1)  # the last change reaches both outputs
        figures = {
            run.name: (
                proc_status(run.proc.pid, "VmHWM"),
                cpu_seconds(run.proc.pid) - run.connected_cpu,
                run.connected_cpu,
            )
            for run in runs
        }
        codes = {run.name: stop(run) for run in runs}
    finally:
        if publisher is not None:
            publisher.close()
        for run in runs:
            stop(run)
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)

    led, epaper = runs
    lines = [
        ("rss_led", f"{figures['led'][0]:.1f}", "MB"),
        ("rss_epaper", f"{figures['epaper'][0]:.1f}", "MB"),
        ("cpu_led", f"{figures['led'][1]:.2f}", "s"),
        ("cpu_epaper", f"{figures['epaper'][1]:.2f}", "s"),
        ("cpu_led_startup", f"{figures['led'][2]:.2f}", "s"),
        ("cpu_epaper_startup", f"{figures['epaper'][2]:.2f}", "s"),
        ("led_latency_p50", f"{percentile(led.latencies, 50):.3f}", "ms"),
        ("led_latency_p99", f"{percentile(led.latencies, 99):.3f}", "ms"),
        ("led_latency_max", f"{max(led.latencies, default=math.nan):.3f}", "ms"),
        ("image_latency_p50", f"{percentile(epaper.latencies, 50):.3f}", "ms"),
        ("image_latency_p99", f"{percentile(epaper.latencies, 99):.3f}", "ms"),
        ("image_latency_max", f"{max(epaper.latencies, default=math.nan):.3f}", "ms"),
        ("changes", str(changes), "count"),
        ("led_changes_shown", str(len(led.latencies)), "count"),
        ("image_changes_written", str(len(epaper.latencies)), "count"),
        ("seconds", f"{options.seconds:.0f}", "s"),
        ("exit_led", str(codes["led"]), "code"),
        ("exit_epaper", str(codes["epaper"]), "code"),
        ("target_rss", f"{TARGET_RSS_MB:.0f}", "MB"),
        ("target_led_latency_p99", f"{TARGET_LED_P99_MS:.0f}", "ms"),
        ("target_image_latency_p99", f"{TARGET_IMAGE_P99_MS:.0f}", "ms"),
    ]
    ok = (
        max(figures["led"][0], figures["epaper"][0]) <= TARGET_RSS_MB
        and percentile(led.latencies, 99) <= TARGET_LED_P99_MS
        and percentile(epaper.latencies, 99) <= TARGET_IMAGE_P99_MS
        and len(led.latencies) >= changes
        and len(epaper.latencies) >= changes
        and codes == {"led": 0, "epaper": 0}
    )
    for name, value, unit in lines:
        print(f"{name}={value} {unit}")
    print(f"result={'ok' if ok else 'missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
