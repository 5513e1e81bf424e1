"""Kiosk media: CPU and memory of the kiosk process during a call, its frame rates, and the
time from the staff member's admission to the first staff frame in the kiosk.

Real parts, all on loopback: a Mosquitto broker (tests/support/mosquitto.py), the hub as
production runs it (``empfang-hub run``, gunicorn, its own process group, SQLite in a temp
dir), an Xvfb X server (tests/support/xvfb.py, 1280x800) and the kiosk as production runs
it, ``empfang-kiosk run --config kiosk.toml`` (`kiosk.cli.main`, here started with the test
routes below): its pywebview/Qt window (QtWebEngine child processes included) under Xvfb,
camera ``synthetic`` at ``--width`` x ``--height`` and ``--fps`` (default 640x480 at 15
fps), the health link to the broker. The staff member is a headless Debian Chromium
(tests/support/browser.py) with the fake camera and microphone.

The kiosk is driven as tests/kiosk/test_kiosk_e2e.py drives it, through
tests/support/kiosk_process.py: the production kiosk started by the test-only launcher
tests/support/kiosk_launcher.py, whose page server then also answers ``/test/click`` (a
real DOM click in the web view, whose handler calls the pywebview bridge) and
``/test/eval``; ``/status`` (always there) reports the screen and
``Engine.media_figures()``. The citizen touches "Deutsch", "Wohngeld", types a name and
takes a ticket; the staff member logs in, opens the live queue and clicks "Einlassen" on
that ticket; the call runs; the staff member then ends the visit through the API and the
kiosk is stopped with SIGTERM (exit 0 expected).

This is the kiosk's first call after it started (a cold call, as after a night's reboot).

Figures
-------
``first_frame``: the clock starts at ``time.monotonic()`` in this process just before the
Playwright click on "Einlassen"; it stops when a ``GET /status`` of the kiosk first
answers ``media.frames_received >= 1``, i.e. once the kiosk's engine has counted the first
staff video frame that aiortc decoded (``Engine._on_remote_frame``). ``/status`` is polled
every 10 ms from a thread of this process, so the figure is an upper bound, at most one
poll period plus one loopback round trip late. The kiosk's own ``admit_to_first_frame``
cannot serve here: its clock starts only once the kiosk has learnt of the admission over
the ticket's live channel and fetched its call credentials; it is printed as
``kiosk_join_to_first_frame`` (the kiosk's clock, credentials in hand -> first decoded
frame), and ``first_frame`` minus it is roughly what the admission took to reach the kiosk.

The call window: when the first frame is in, the staff page plays the kiosk's video and
the kiosk's web view shows the staff's video, the benchmark waits 2 s for the call to
settle, then measures for ``--seconds`` (default 60); ``call_seconds`` is the measured
wall time.

``kiosk_cpu``: utime + stime (+ cutime + cstime, so that a helper that ends and is reaped
inside the tree still counts) of the kiosk's process tree, i.e. the Python process (engine,
aiortc, the Qt GUI thread and QtWebEngine's browser side) and every descendant
(QtWebEngineProcess: zygote, renderer, GPU/viz), over the window, divided by
``call_seconds``: cores used on average. ``kiosk_cpu_main`` / ``kiosk_cpu_webengine`` split
it between the Python process and its descendants. ``xvfb_cpu`` is the X server, which
draws the kiosk's window (not in ``kiosk_cpu``); ``rest_cpu`` is everything else on the
machine (hub, broker, the staff's Chromium, Xvfb, this script) in cores: the two machines
share two cores here, so a high value makes the kiosk figures pessimistic.

``kiosk_rss``: the PEAK over the window of VmRSS summed over the same process tree, sampled
every ``--sample`` seconds (shared pages count once per process, so this overstates);
``kiosk_pss``: the peak of the summed Pss (``/proc/<pid>/smaps_rollup``, shared pages split);
``kiosk_rss_main`` / ``kiosk_rss_webengine`` split the peak RSS sample, ``kiosk_processes``
counts its processes. ``kiosk_rss_start`` is the first sample of the window and
``kiosk_rss_growth`` the change from the first sample to the last in MB a minute: a kiosk
runs calls all day, so memory must not creep. MB means MiB.

``frames_sent_per_s``: the synthetic camera's ``frames_sent`` (``SyntheticVideoTrack``,
frames it produced for the call) over the window; ``frames_received_per_s``: the kiosk's
``frames_received`` (staff frames decoded) over the window; ``staff_frames_decoded_per_s``:
the staff page's WebRTC statistics (``inbound-rtp`` video ``framesDecoded``, all peer
connections) over the window, i.e. the kiosk's video as the staff member sees it.

Targets (the kiosk issue, with this machine standing in for a Raspberry Pi 4): kiosk_cpu
<= 1.0 cores, kiosk_rss <= 350 MB with the web view, first_frame <= 1500 ms.
Exit status 0 when all hold (``result=ok``), 1 when one is missed, 2 when the benchmark could
not run, 130 on Ctrl+C or SIGTERM.

Run: .venv/bin/python bench/kiosk_media.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright
from procfs import (
    CLK_TCK,
    cpu_ticks,
    machine_busy_ticks,
    process_tree,
    pss_kib,
    rss_kib,
    start_time,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import launch_chromium, log_in_page  # noqa: E402
from tests.support.call_pages import (  # noqa: E402
    inbound_total,
    media_report,
    prepare,
    wait_remote_videos,
)
from tests.support.kiosk_process import (  # noqa: E402
    KioskExited,
    KioskProcess,
    until,
)
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import HttpClient, HubProcess  # noqa: E402
from tests.support.seeded_hub import start_seeded_hub  # noqa: E402
from tests.support.xvfb import Xvfb  # noqa: E402

TARGET_CPU_CORES = 1.0
TARGET_RSS_MB = 350.0
TARGET_FIRST_FRAME_MS = 1500.0
DEVICE = "kiosk-bench"
STAFF_USER = "erika"
STAFF_PASSWORD = "bench password 123"
CITIZEN_NAME = "ADA"  # typed on the kiosk's keyboard, one key per letter
STATUS_POLL = 0.01  # seconds between /status polls while waiting for the first frame
SETTLE = 2.0  # seconds between "the call is up" and the start of the window
MIB = 1024 * 1024


class BenchError(Exception):
    """The benchmark could not run (exit status 2)."""


class Interrupted(Exception):
    """SIGTERM arrived (handled like Ctrl+C)."""


@dataclass(frozen=True)
class Options:
    """Command-line knobs."""

    seconds: float
    width: int
    height: int
    fps: float
    sample: float
    keep_logs: Path | None
    pre_encoded: bool = False


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the measured call")
    parser.add_argument("--width", type=int, default=640, help="kiosk camera width")
    parser.add_argument("--height", type=int, default=480, help="kiosk camera height")
    parser.add_argument("--fps", type=float, default=15.0, help="kiosk camera frame rate")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between RSS samples")
    parser.add_argument("--keep-logs", type=Path, help="copy the kiosk's and hub's logs here")
    parser.add_argument(
        "--pre-encoded",
        action="store_true",
        help="send H.264 packets (software stand-in for the Pi's hardware encoder)",
    )
    ns = parser.parse_args(argv)
    if ns.seconds <= 0 or ns.sample <= 0:
        parser.error("--seconds and --sample must be positive")
    return Options(ns.seconds, ns.width, ns.height, ns.fps, ns.sample, ns.keep_logs, ns.pre_encoded)


def log(message: str) -> None:
    """Progress on standard error (the figures go to standard output)."""
    print(f"[kiosk_media {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- /proc: the kiosk's process tree (readings: bench/procfs.py) --------------------------


@dataclass
class CpuReading:
    """Clock ticks of the kiosk tree (its root and the rest), Xvfb and the machine."""

    at: float
    main: int
    helpers: int
    xvfb: int
    machine: int

    @classmethod
    def take(cls, kiosk_pid: int, xvfb_pid: int) -> CpuReading:
        """Read them all now."""
        tree = process_tree(kiosk_pid)
        helpers = sum(cpu_ticks(pid, reaped_children=True) for pid in tree if pid != kiosk_pid)
        return cls(
            time.monotonic(),
            cpu_ticks(kiosk_pid, reaped_children=True),
            helpers,
            cpu_ticks(xvfb_pid, reaped_children=True),
            machine_busy_ticks(),
        )


@dataclass
class MemoryPeak:
    """The largest samples of the kiosk tree's summed RSS and Pss (KiB)."""

    rss: int = 0
    rss_main: int = 0
    pss: int = 0
    processes: int = 0
    first: tuple[float, int] | None = None  # (monotonic time, summed RSS) of the first sample
    last: tuple[float, int] | None = None

    def sample(self, kiosk_pid: int) -> None:
        """Take one sample and keep the peaks."""
        tree = process_tree(kiosk_pid)
        readings = {pid: (rss_kib(pid), pss_kib(pid)) for pid in tree}
        rss = sum(r for r, _ in readings.values())
        pss = sum(p for _, p in readings.values())
        self.last = (time.monotonic(), rss)
        self.first = self.first or self.last
        if rss > self.rss:
            self.rss, self.rss_main = rss, readings.get(kiosk_pid, (0, 0))[0]
            self.processes = len(tree)
        self.pss = max(self.pss, pss)

    def growth(self) -> float:
        """MiB a minute from the first sample to the last."""
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return 0.0
        return (self.last[1] - self.first[1]) / 1024 / ((self.last[0] - self.first[0]) / 60)


# ---- the kiosk ----------------------------------------------------------------------------


def kiosk_config(hub_url: str, broker_url: str, ui_port: int, options: Options) -> str:
    """The kiosk's TOML configuration (the one place to add tables such as [audio])."""
    fps = int(options.fps) if float(options.fps).is_integer() else options.fps
    return (
        f'hub = "{hub_url}"\n'
        f'device = "{DEVICE}"\n'
        f'broker = "{broker_url}"\n'
        'camera = "synthetic"\n'
        f"ui_port = {ui_port}\n"
        "\n[timeouts]\npoll = 2\nretry_min = 0.5\nretry_max = 2\n"
        f"\n[video]\nwidth = {options.width}\nheight = {options.height}\nfps = {fps}\n"
        f"pre_encoded = {'true' if options.pre_encoded else 'false'}\n"
        # A test tone stands in for the speakerphone's microphone; staff's voice is played
        # on ALSA's null device (real ALSA output, no sound card here).
        '\n[audio]\nmicrophone = "tone"\nspeaker = "alsa:null"\n'
    )


class Kiosk(KioskProcess):
    """The kiosk process that remembers its whole tree, to kill helpers that outlive it."""

    def __init__(self, workdir: Path, config_text: str, ui_port: int, xvfb: Xvfb) -> None:
        super().__init__(workdir, config_text, ui_port, xvfb)
        self.seen: dict[int, int] = {}  # pid -> start time of every process of the tree seen
        self.tree()

    def tree(self) -> list[int]:
        """The kiosk's process tree now (and remember it for the clean-up)."""
        pids = process_tree(self.pid) if self.proc.poll() is None else []
        for pid in pids:
            with contextlib.suppress(OSError, IndexError, ValueError):
                self.seen.setdefault(pid, start_time(pid))
        return pids

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.tree()
        return super().stop(timeout)

    def kill(self) -> None:
        """SIGKILL the kiosk's group and what is left of its tree (never a reused pid)."""
        super().kill()
        for pid, started in self.seen.items():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if start_time(pid) == started:
                    os.kill(pid, signal.SIGKILL)


def take_ticket(kiosk: Kiosk) -> None:
    """The citizen's touches, through the page and its bridge (as the e2e test does)."""
    until(
        lambda: kiosk.js("document.getElementById('hub-figures').textContent"),
        15,
        "the hub's figures on the kiosk",
    )
    kiosk.click("#lang-de")
    kiosk.wait_screen("concern")
    until(lambda: kiosk.js("!!document.getElementById('category-wohngeld')"), 10, "the categories")
    kiosk.click("#category-wohngeld")
    kiosk.wait_screen("name")
    for key in CITIZEN_NAME:
        kiosk.click(f"#key-{key}")
    typed = CITIZEN_NAME.title()
    until(
        lambda: kiosk.js("document.getElementById('name-field').textContent") == typed,
        5,
        "the typed name",
    )
    kiosk.click("#take-ticket")
    kiosk.wait_screen("waiting")


class FirstFramePoller:
    """Polls the kiosk's /status every STATUS_POLL s until it reports a staff frame."""

    def __init__(self, kiosk: Kiosk) -> None:
        self.kiosk = kiosk
        self.seen_at: float | None = None  # monotonic time of the first answer with a frame
        self.media: dict[str, Any] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="first-frame", daemon=True)

    def start(self) -> FirstFramePoller:
        """Begin polling (before the click)."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                media = self.kiosk.get("/status", timeout=5)["media"]
            except (OSError, KioskExited, KeyError, ValueError) as exc:
                self.error = repr(exc)
                time.sleep(STATUS_POLL)
                continue
            if media.get("frames_received", 0) >= 1:
                self.seen_at = time.monotonic()
                self.media = media
                return
            time.sleep(STATUS_POLL)

    def wait(self, seconds: float) -> float:
        """The monotonic time of the first frame; BenchError if none within `seconds`."""
        self._thread.join(seconds)
        if self.seen_at is None:
            self._stop.set()
            raise BenchError(f"no staff frame in the kiosk within {seconds:g} s ({self.error})")
        return self.seen_at


# ---- the hub -----------------------------------------------------------------------------


def end_visit(api: HttpClient) -> None:
    """End the kiosk's visit as the staff member, through the queue API."""
    serving = api.get("/api/v1/queue").json()["serving"]
    mine = [t["ticket"] for t in serving if t.get("source") == DEVICE]
    if not mine:
        raise BenchError(f"the kiosk's ticket is not being served: {serving}")
    ended = api.api("POST", f"/api/v1/queue/{mine[0]}/end", {"outcome": "resolved"})
    if ended.status != 200:
        raise BenchError(f"could not end the visit: {ended.status} {ended.text[:300]}")


# ---- the measurement ------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Everything measured."""

    first_frame: float
    kiosk_join_to_first_frame: float | None
    call_seconds: float
    cpu_main: float
    cpu_helpers: float
    cpu_xvfb: float
    cpu_rest: float
    memory: MemoryPeak
    frames_sent: int
    frames_received: int
    staff_frames_decoded: int
    connection: str | None

    @property
    def kiosk_cpu(self) -> float:
        """Cores used on average by the kiosk's process tree."""
        return self.cpu_main + self.cpu_helpers


def staff_frames_decoded(call: Page) -> int:
    """Video frames the staff's call page decoded so far (all peer connections)."""
    return inbound_total(call, "video", "framesDecoded")


def measure_call(
    kiosk: Kiosk, xvfb_pid: int, call: Page, options: Options
) -> tuple[CpuReading, CpuReading, MemoryPeak, dict[str, Any], dict[str, Any], int, int]:
    """The window: CPU readings at both ends, memory samples, media figures at both ends."""
    memory = MemoryPeak()
    kiosk.tree()
    media_before = kiosk.status()["media"]
    decoded_before = staff_frames_decoded(call)
    before = CpuReading.take(kiosk.pid, xvfb_pid)
    end = before.at + options.seconds
    next_sample = before.at
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            memory.sample(kiosk.pid)
            next_sample += options.sample
            if memory.last and int(now - before.at) % 10 == 0 and now - before.at >= 1:
                log(f"kiosk RSS {memory.last[1] / 1024:.1f} MB after {now - before.at:.0f} s")
        if kiosk.proc.poll() is not None:
            raise BenchError(f"the kiosk exited during the call with {kiosk.proc.returncode}")
        time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
    after = CpuReading.take(kiosk.pid, xvfb_pid)
    media_after = kiosk.status()["media"]
    decoded_after = staff_frames_decoded(call)
    memory.sample(kiosk.pid)
    kiosk.tree()
    return before, after, memory, media_before, media_after, decoded_before, decoded_after


def run_call(kiosk: Kiosk, xvfb: Xvfb, base: str, options: Options) -> Figures:
    """Staff admit the kiosk's ticket, the call runs for the window, staff end it."""
    assert xvfb.proc is not None
    api = HttpClient(base)
    api.log_in(STAFF_USER, STAFF_PASSWORD)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            staff = prepare(browser.new_context(locale="de-DE", timezone_id="Europe/Berlin"))
            desk = staff.new_page()
            log_in_page(desk, base, STAFF_USER, STAFF_PASSWORD)
            desk.goto(f"{base}/staff/queue")
            desk.wait_for_selector("#live[data-state=live]")
            card = desk.locator("li.ticket", has_text=CITIZEN_NAME.title())
            card.wait_for()
            log("admitting the kiosk's ticket")
            poller = FirstFramePoller(kiosk).start()
            with staff.expect_page() as call_info:
                clicked = time.monotonic()
                card.get_by_role("button", name="Einlassen").click()
            call = call_info.value
            seen = poller.wait(20)
            first_frame = seen - clicked
            join = poller.media.get("admit_to_first_frame")
            log(f"first staff frame in the kiosk after {first_frame * 1000:.0f} ms")
            call.wait_for_url("**/call/p-*")
            try:
                wait_remote_videos(call)
            except AssertionError as exc:
                raise BenchError(f"the staff page shows no kiosk video: {exc}") from None
            kiosk.wait_screen("call")
            until(
                lambda: kiosk.remote_painted() > 0,
                10,
                "the staff video in the kiosk window",
            )
            time.sleep(SETTLE)
            log(f"the call is up; measuring for {options.seconds:g} s")
            before, after, memory, m0, m1, d0, d1 = measure_call(
                kiosk, xvfb.proc.pid, call, options
            )
            if m1.get("connection") != "connected":
                log(f"warning: the kiosk's connection is {m1.get('connection')!r} at the end")
            log(f"staff page: {media_report(call)}")
            end_visit(api)
            kiosk.wait_screen("goodbye", 15)
        finally:
            browser.close()
    wall = after.at - before.at
    machine = (after.machine - before.machine) / CLK_TCK / wall
    main = (after.main - before.main) / CLK_TCK / wall
    helpers = (after.helpers - before.helpers) / CLK_TCK / wall
    return Figures(
        first_frame=first_frame,
        kiosk_join_to_first_frame=join if isinstance(join, int | float) else None,
        call_seconds=wall,
        cpu_main=main,
        cpu_helpers=helpers,
        cpu_xvfb=(after.xvfb - before.xvfb) / CLK_TCK / wall,
        cpu_rest=max(0.0, machine - main - helpers),
        memory=memory,
        frames_sent=int(m1.get("frames_sent") or 0) - int(m0.get("frames_sent") or 0),
        frames_received=int(m1["frames_received"]) - int(m0["frames_received"]),
        staff_frames_decoded=d1 - d0,
        connection=m1.get("connection"),
    )


def report(f: Figures) -> bool:
    """Print the figures, one per line; True when every target holds."""
    wall = f.call_seconds
    first_ms = f.first_frame * 1000
    rss_mb = f.memory.rss / 1024
    join = f.kiosk_join_to_first_frame
    lines = [
        ("first_frame", f"{first_ms:.0f}", "ms"),
        ("kiosk_join_to_first_frame", "n/a" if join is None else f"{join * 1000:.0f}", "ms"),
        ("call_seconds", f"{wall:.1f}", "s"),
        ("kiosk_cpu", f"{f.kiosk_cpu:.2f}", "cores"),
        ("kiosk_cpu_main", f"{f.cpu_main:.2f}", "cores"),
        ("kiosk_cpu_webengine", f"{f.cpu_helpers:.2f}", "cores"),
        ("xvfb_cpu", f"{f.cpu_xvfb:.2f}", "cores"),
        ("rest_cpu", f"{f.cpu_rest:.2f}", "cores"),
        ("kiosk_rss", f"{rss_mb:.1f}", "MB"),
        ("kiosk_rss_main", f"{f.memory.rss_main / 1024:.1f}", "MB"),
        ("kiosk_rss_webengine", f"{(f.memory.rss - f.memory.rss_main) / 1024:.1f}", "MB"),
        ("kiosk_pss", f"{f.memory.pss / 1024:.1f}", "MB"),
        ("kiosk_rss_start", f"{(f.memory.first or (0, 0))[1] / 1024:.1f}", "MB"),
        ("kiosk_rss_growth", f"{f.memory.growth():.1f}", "MB/min"),
        ("kiosk_processes", f"{f.memory.processes}", "processes"),
        ("frames_sent_per_s", f"{f.frames_sent / wall:.1f}", "frames/s"),
        ("frames_received_per_s", f"{f.frames_received / wall:.1f}", "frames/s"),
        ("staff_frames_decoded_per_s", f"{f.staff_frames_decoded / wall:.1f}", "frames/s"),
        ("target_kiosk_cpu", f"{TARGET_CPU_CORES:.1f}", "cores"),
        ("target_kiosk_rss", f"{TARGET_RSS_MB:.0f}", "MB"),
        ("target_first_frame", f"{TARGET_FIRST_FRAME_MS:.0f}", "ms"),
    ]
    ok = (
        f.kiosk_cpu <= TARGET_CPU_CORES
        and rss_mb <= TARGET_RSS_MB
        and first_ms <= TARGET_FIRST_FRAME_MS
        and f.frames_received > 0
        and f.frames_sent > 0
    )
    lines.append(("result", "ok" if ok else "missed", ""))
    for name, value, unit in lines:
        print(f"{name}={value} {unit}".rstrip(), flush=True)
    return ok


# ---- orchestration --------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises Interrupted in the main thread, so that every `finally` runs."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(options: Options, work: Path) -> bool:
    """Start everything, measure one call, stop everything; True when the targets hold."""
    broker = Mosquitto(work)
    hub: HubProcess | None = None
    xvfb: Xvfb | None = None
    kiosk: Kiosk | None = None
    try:
        broker.start()
        hub, base = start_seeded_hub(
            work, broker.url, STAFF_USER, STAFF_PASSWORD, secret_key="kiosk-bench"
        )
        log(f"hub up at {base}, broker at {broker.url}")
        xvfb = Xvfb(work / "xvfb.log").start()
        ui_port = free_port()
        kiosk = Kiosk(work, kiosk_config(base, broker.url, ui_port, options), ui_port, xvfb)
        kiosk.wait_screen("attract", 60)
        log(f"kiosk up (pid {kiosk.pid}) on display {xvfb.display}; taking a ticket")
        take_ticket(kiosk)
        figures = run_call(kiosk, xvfb, base, options)
        code = kiosk.stop()
        if code != 0:
            log(f"warning: the kiosk ended with {code}:\n{kiosk.log_tail()}")
        return report(figures)
    except (BenchError, PlaywrightError, AssertionError, OSError) as exc:
        if kiosk is not None:
            log(f"kiosk log (tail):\n{kiosk.log_tail()}")
        if hub is not None:
            log(f"hub log (tail):\n{hub.log_tail()}")
        raise BenchError(str(exc)) from exc
    finally:
        if kiosk is not None:
            kiosk.stop(timeout=10)
            kiosk.kill()  # QtWebEngine helpers that outlived the kiosk, if any
        if xvfb is not None:
            xvfb.stop()
        if hub is not None:
            hub.cleanup()
        broker.stop()
        if options.keep_logs is not None:
            options.keep_logs.mkdir(parents=True, exist_ok=True)
            for name in ("kiosk.log", "hub.log", "kiosk.toml", "mosquitto.log", "xvfb.log"):
                with contextlib.suppress(OSError):
                    shutil.copy(work / name, options.keep_logs / name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the targets hold, 1 when missed, 2 on errors, 130 when stopped."""
    options = parse_options(argv)
    started = time.monotonic()
    try:
        with (
            sigterm_interrupts(),
            tempfile.TemporaryDirectory(prefix="empfang-kiosk-bench-") as tmp,
        ):
            ok = run(options, Path(tmp))
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    except (KeyboardInterrupt, Interrupted):
        log("interrupted")
        return 130
    finally:
        log(f"done in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
