"""Push latency of room status changes: HTTP state change -> 1,000 MQTT subscribers.

Run as ``.venv/bin/python bench/status_latency.py`` (``--help`` for the knobs; about one
minute). It starts a real Mosquitto on a free loopback port and the hub exactly as
production does (``empfang-hub run --port P``: gunicorn, one gthread worker), logs in as an
admin over HTTP (stdlib urllib + cookie jar), creates rooms, connects the subscribers, then
makes one state change at a time through the JSON API (check-in / check-out, rotating over
the rooms, every change a real state change) and waits until every subscriber has that
change's status (room + seq from the HTTP response) before making the next one.

What is measured, and why it is honest
--------------------------------------
Per change, ``t0`` is ``time.time_ns()`` taken just before the HTTP request starts, so the
figure includes the HTTP round trip to the hub, the SQLite commits, the hub's paho
publish, the broker's fan-out and loopback TCP.

The 1,000 subscribers are real paho-mqtt 2.x clients (MQTT 3.1.1, QoS 1 subscription to
``empfang/v1/default/rooms/+/status``), spread over ``--workers`` processes (default 4 x
250 clients), each driving its clients from one ``selectors`` loop with paho's
``loop_read``/``loop_write``/``loop_misc``: no thread per client. Timestamps cross
processes, so all of them are CLOCK_REALTIME (``time.time_ns`` and kernel stamps): one
clock on one machine (``time.monotonic_ns`` would not be comparable across processes).

On a 2-core box, 1,000 Python MQTT clients cannot parse 1,000 copies of a message as fast
as Mosquitto sends them: the moment the 1,000th paho ``on_message`` runs measures mostly
this apparatus (in production every display has its own CPU). So each subscriber socket
has ``SO_TIMESTAMPNS`` on, and a small paho subclass reads the first byte of every MQTT
packet with ``recvmsg`` to get the kernel's receive time of the segment carrying it. That
is the moment the subscriber *had* the message (it sat in its socket), however long this
process then took to get round to parsing it. The headline figures are therefore

    latency(change) = max over all subscribers of kernel receive time - t0

(the LAST subscriber); ``p50``/``p99``/``max``/``mean`` over the changes, percentiles by
nearest rank (p99 of 200 is the 198th smallest, i.e. the 3rd largest). Extra lines:
``*_handled`` is the same taken at paho's ``on_message`` (an upper bound that includes the
apparatus parsing on the shared CPUs), ``*_first`` the FIRST subscriber's receive time
(hub + broker path without the fan-out spread), ``*_http`` the HTTP round trip. The
subscriber processes run at nice 19 so that the load generator yields the CPU to the hub
and the broker. ``--subscribers 10 --workers 1`` shows the path without fan-out.

Changes are paced by a random pause of 0.5-1.5 x ``--interval`` (default 0.15 s, seeded)
after the previous change reached everybody, so the 200 changes span about 45 s: more
than one period (ttl/3 = 30 s) of the hub's republish of every room, at random phases.
Back to back they would span ~15 s and p99 would depend on whether that burst happened to
fall into the window. A change only counts at a subscriber the first time that subscriber
sees its (room, seq); republishes (same seq) do not count again, but one subscriber
reports them, so ``republish_bursts``, ``changes_near_republish`` (in flight from 0.1 s
before to 0.3 s after a burst as that subscriber saw it) and ``p99_quiet`` (p99 without
those) show how much of the tail the republish bursts cause. A change not seen by every
subscriber within ``--change-timeout`` counts as missing (``result=missed``).

Other figures
-------------
``hub_rss``: VmRSS from ``/proc/<pid>/status`` summed over the hub's process tree
(gunicorn master + worker), measured at the end; MB means MiB. Summing RSS counts the
copy-on-write pages that master and worker share twice, so ``hub_pss`` (Pss from
``smaps_rollup``, shared pages split) is printed too; the target applies to ``hub_rss``.

``poll_staleness_mean``: what a display polling every 10 s would show instead. Computed
by simulation, not analytically: 10,000 simulated displays get random poll phases in
[0, 10 s) (seeded); for every change, the staleness at a display is the wait from the
moment the change became visible over HTTP (the HTTP response) to that display's next
poll tick; the figure is the mean over all displays and changes (analytically 5,000 ms;
the HTTP time of the poll itself is left out, which flatters polling).

``foreign_cpu``: percent of the machine's CPU time (all cores) that processes outside this
benchmark's process tree used while the changes ran (from ``/proc/stat`` minus our
processes' utime + stime). On a shared box, anything well above 0 % makes the tail
figures (p99, max) pessimistic: rerun when it is quiet.

``staleness_ratio = poll_staleness_mean / p50`` (p50 of the last-subscriber push latency).

Targets (from the issue): p99 <= 50 ms and hub RSS <= 150 MB; ``result=ok`` when both
hold and no change went missing. Exit status 0 ok, 1 missed, 2 could not run, 130 Ctrl+C.

``--hub-env KEY=VALUE`` is for diagnosis only (e.g. ``EMPFANG_STATUS_TTL=86400`` takes the
republish out of the run); the figures of such a run are not the production setup.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import json
import math
import multiprocessing
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from procfs import machine_busy_ticks, process_tree, pss_mb, rss_mb, tree_ticks

SITE = "default"
STATUS_FILTER = f"empfang/v1/{SITE}/rooms/+/status"
ADMIN_USER = "bench"
ADMIN_PASSWORD = "bench-password-1234"
POLL_PERIOD_MS = 10_000.0
POLL_DISPLAYS = 10_000  # simulated polling displays (random phases)
TARGET_P99_MS = 50.0
TARGET_RSS_MB = 150.0
# Linux: SO_TIMESTAMPNS (== SCM_TIMESTAMPNS) for 64-bit time_t; the socket module lacks it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY_SPACE = socket.CMSG_SPACE(16)
NS_PER_MS = 1_000_000


class BenchError(RuntimeError):
    """The benchmark could not run (not a missed target)."""


@dataclass(frozen=True)
class Options:
    """Command-line knobs."""

    subscribers: int
    changes: int
    rooms: int
    workers: int
    change_timeout: float
    max_seconds: float
    seed: int
    interval: float
    csv: Path | None
    hub_env: dict[str, str]


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="subscriber processes")
    parser.add_argument("--change-timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="whole run budget")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--interval", type=float, default=0.15, help="mean pause between changes (s)"
    )
    parser.add_argument("--csv", type=Path, help="write per-change timings (ms) here")
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="diagnostics only: extra hub setting, e.g. EMPFANG_TICK_SECONDS=3600",
    )
    ns = parser.parse_args(argv)
    if ns.subscribers < 1 or ns.changes < 1 or ns.rooms < 1 or ns.workers < 1:
        parser.error("counts must be positive")
    if not all("=" in item for item in ns.hub_env):
        parser.error("--hub-env takes KEY=VALUE")
    return Options(
        subscribers=ns.subscribers,
        changes=ns.changes,
        rooms=ns.rooms,
        workers=min(ns.workers, ns.subscribers),
        change_timeout=ns.change_timeout,
        max_seconds=ns.max_seconds,
        seed=ns.seed,
        interval=max(0.0, ns.interval),
        csv=ns.csv,
        hub_env=dict(item.split("=", 1) for item in ns.hub_env),
    )


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the figures."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---- processes: ports, limits, broker, hub ----------------------------------------------


def raise_nofile_limit() -> int:
    """Raise the soft fd limit to the hard one (children inherit it); returns the new limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = int(Path("/proc/sys/fs/nr_open").read_text())
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until true; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    """Whether 127.0.0.1:port accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def start_mosquitto(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """A real Mosquitto with its own config on `port`."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise BenchError("mosquitto is not installed")
    config = workdir / "mosquitto.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_connections -1\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    )
    with (workdir / "mosquitto.log").open("ab") as log_file:
        proc = subprocess.Popen(
            [binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
        )
    wait_until(lambda: port_open(port) or proc.poll() is not None, 10, "mosquitto")
    if proc.poll() is not None:
        raise BenchError(f"mosquitto exited: {(workdir / 'mosquitto.log').read_text()[-500:]}")
    return proc


def hub_command() -> str:
    """The venv's `empfang-hub` console script, next to this interpreter."""
    script = Path(sys.executable).with_name("empfang-hub")
    if not script.exists():
        raise BenchError(f"{script} not found; install the package into the venv")
    return str(script)


def hub_env(workdir: Path, mqtt_port: int, extra: dict[str, str]) -> dict[str, str]:
    """Environment of every hub command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPFANG_")}
    env.update(
        EMPFANG_MQTT_URL=f"mqtt://127.0.0.1:{mqtt_port}",
        EMPFANG_DATABASE_URL=f"sqlite:///{workdir / 'bench.db'}",
        EMPFANG_INSTANCE_PATH=str(workdir / "instance"),
        EMPFANG_SECRET_KEY="bench",
    )
    env.update(extra)
    return env


def create_admin(env: dict[str, str]) -> None:
    """`empfang-hub create-user bench --admin --password-stdin`."""
    done = subprocess.run(
        [hub_command(), "create-user", ADMIN_USER, "--admin", "--password-stdin"],
        input=f"{ADMIN_PASSWORD}\n".encode(),
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"create-user failed: {done.stderr.decode()[-800:]}")


def start_hub(workdir: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """`empfang-hub run --port P` in its own process group."""
    with (workdir / "hub.log").open("ab") as log_file:
        return subprocess.Popen(
            [hub_command(), "run", "--port", str(port)],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def hub_healthy(base: str, proc: subprocess.Popen[bytes]) -> bool:
    """GET /healthz answers 200 (or the hub died: stop waiting)."""
    if proc.poll() is not None:
        return True
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_hub(workdir: Path, base: str, proc: subprocess.Popen[bytes]) -> None:
    """Block until the hub is healthy; BenchError with its log if it died."""
    wait_until(lambda: hub_healthy(base, proc), 60, "the hub's /healthz")
    if proc.poll() is not None:
        raise BenchError(f"the hub exited: {(workdir / 'hub.log').read_text()[-1500:]}")


def stop_group(proc: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """SIGTERM the process group of `proc`, SIGKILL after `grace` seconds (or leftovers)."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group's stragglers, if any
    proc.wait(timeout=10)


@dataclass
class CpuMeter:
    """Share of the machine's CPU used by processes outside this benchmark meanwhile."""

    busy: int = 0
    ours: int = 0
    started: float = 0.0

    def start(self) -> None:
        """Take the first reading."""
        self.busy, self.ours = machine_busy_ticks(), tree_ticks(process_tree(os.getpid()))
        self.started = time.monotonic()

    def foreign_percent(self) -> float:
        """Percent of all CPUs' time, since start(), busy outside our process tree."""
        busy = machine_busy_ticks() - self.busy
        ours = tree_ticks(process_tree(os.getpid())) - self.ours
        capacity = (time.monotonic() - self.started) * os.sysconf("SC_CLK_TCK")
        capacity *= os.cpu_count() or 1
        return max(0.0, 100.0 * (busy - ours) / capacity) if capacity else math.nan


# ---- HTTP -----------------------------------------------------------------------------


class HubClient:
    """A staff browser session over stdlib urllib with a cookie jar."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.csrf = ""

    def _open(self, request: urllib.request.Request) -> bytes:
        try:
            with self.opener.open(request, timeout=30) as resp:
                return cast(bytes, resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300]
            what = f"{request.get_method()} {request.full_url}"
            raise BenchError(f"{what}: HTTP {exc.code} {body!r}") from None

    def get(self, path: str) -> bytes:
        """GET a page."""
        return self._open(urllib.request.Request(self.base + path))

    def login(self, username: str, password: str) -> None:
        """Log in through the staff form, then fetch the API's CSRF token."""
        page = self.get("/staff/login").decode()
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if match is None:
            raise BenchError("no csrf_token in the login form")
        form = urllib.parse.urlencode(
            {"csrf_token": match.group(1), "username": username, "password": password}
        ).encode()
        self._open(urllib.request.Request(self.base + "/staff/login", data=form, method="POST"))
        session = json.loads(self.get("/api/v1/session"))
        if not session.get("user"):
            raise BenchError("login failed")
        self.csrf = session["csrf_token"]

    def post_json(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST JSON with the CSRF header; the decoded JSON answer."""
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body or {}).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf},
        )
        return cast(dict[str, Any], json.loads(self._open(request)))


# ---- subscriber worker processes ------------------------------------------------------


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The SCM_TIMESTAMPNS receive time in ns (CLOCK_REALTIME), or 0 if absent."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return int(sec * 1_000_000_000 + nsec)
    return 0


class TimedClient(mqtt.Client):
    """A paho client that keeps the kernel receive time of each packet's first byte."""

    rx_ns: int = 0
    rx_kernel = False

    def _sock_recv(self, bufsize: int) -> bytes:
        sock = self._sock
        if sock is None or self._in_packet["command"] != 0:
            return super()._sock_recv(bufsize)
        data, ancillary, _flags, _addr = cast(socket.socket, sock).recvmsg(bufsize, ANCILLARY_SPACE)
        stamp = kernel_stamp(ancillary)
        self.rx_kernel = stamp != 0
        self.rx_ns = stamp or time.time_ns()
        return data


@dataclass
class Tally:
    """How many of a worker's clients have one (room, seq), and when."""

    count: int = 0
    first_rx: int = 0
    last_rx: int = 0
    first_cb: int = 0
    last_cb: int = 0

    def add(self, rx: int, cb: int) -> None:
        """Count one client's first receipt."""
        self.first_rx = min(self.first_rx, rx) if self.count else rx
        self.first_cb = min(self.first_cb, cb) if self.count else cb
        self.last_rx = max(self.last_rx, rx)
        self.last_cb = max(self.last_cb, cb)
        self.count += 1


class SubscriberGroup:
    """`count` paho clients driven by one selector loop, reporting over `conn`."""

    def __init__(self, index: int, count: int, port: int, conn: Connection) -> None:
        self.index = index
        self.count = count
        self.port = port
        self.conn = conn
        self.selector = selectors.DefaultSelector()
        self.clients: list[TimedClient] = []
        self.seen: list[dict[str, int]] = [{} for _ in range(count)]
        self.tallies: dict[tuple[str, int], Tally] = {}
        self.subscribed = 0
        self.disconnects = 0
        self.unstamped = 0  # counted receipts timed by time_ns, not by the kernel
        self.running = True

    def connect_all(self) -> None:
        """Open every client's connection (CONNECT is sent; CONNACK comes in the loop)."""
        for number in range(self.count):
            client = TimedClient(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=f"bench-{self.index}-{number}-{os.getpid()}",
                protocol=mqtt.MQTTv311,
                userdata=number,
            )
            client.on_socket_open = self._on_socket_open
            client.on_socket_close = self._on_socket_close
            client.on_connect = self._on_connect
            client.on_subscribe = self._on_subscribe
            client.on_message = self._on_message
            client.on_disconnect = self._on_disconnect
            client.connect("127.0.0.1", self.port, keepalive=60)
            self.clients.append(client)

    def _on_socket_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            client.subscribe(STATUS_FILTER, qos=1)

    def _on_subscribe(self, _client: mqtt.Client, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        self.subscribed += 1
        if self.subscribed == self.count:
            self.conn.send(("ready", self.index))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        self.disconnects += 1

    def _on_message(self, client: mqtt.Client, number: int, msg: mqtt.MQTTMessage) -> None:
        received = time.time_ns()
        if not msg.payload:
            return
        status = json.loads(msg.payload)
        room, seq = status["room"], status["seq"]
        last_seq = self.seen[number].get(room, -1)
        if last_seq >= seq:
            if last_seq == seq and number == 0 and self.index == 0:
                self.conn.send(("republish", cast(TimedClient, client).rx_ns))
            return  # a republish (same seq) or an older status
        self.seen[number][room] = seq
        key = (room, seq)
        tally = self.tallies.setdefault(key, Tally())
        timed = cast(TimedClient, client)
        self.unstamped += not timed.rx_kernel
        tally.add(timed.rx_ns, received)
        if tally.count == self.count:
            del self.tallies[key]
            times = (tally.first_rx, tally.last_rx, tally.first_cb, tally.last_cb)
            self.conn.send(("got", room, seq, *times))

    def _misc(self) -> None:
        for client in self.clients:
            client.loop_misc()
            if client.want_write():
                client.loop_write()

    def _command(self) -> None:
        if self.conn.recv() == "stop":
            self.running = False

    def run(self) -> None:
        """Serve reads until the parent says stop; then disconnect and report counters."""
        self.selector.register(self.conn, selectors.EVENT_READ, None)
        self.connect_all()
        next_misc = time.monotonic() + 1.0
        while self.running:
            for key, _mask in self.selector.select(timeout=0.25):
                client = key.data
                if client is None:
                    self._command()
                    continue
                client.loop_read()
                if client.want_write():
                    client.loop_write()
            if time.monotonic() >= next_misc:
                self._misc()
                next_misc = time.monotonic() + 1.0
        self.finish()

    def finish(self) -> None:
        """Disconnect every client and send the counters."""
        disconnects = self.disconnects
        for client in self.clients:
            client.disconnect()
        self.conn.send(("stats", self.index, self.unstamped, disconnects))


def worker_main(index: int, count: int, port: int, conn: Connection) -> None:
    """Entry point of a subscriber process (nice 19: the load generator yields the CPU)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl+C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.nice(19)
    SubscriberGroup(index, count, port, conn).run()


@dataclass
class Workers:
    """The subscriber processes and their pipes."""

    procs: list[multiprocessing.process.BaseProcess] = field(default_factory=list)
    conns: list[Connection] = field(default_factory=list)
    reports: dict[tuple[str, int], list[tuple[int, ...]]] = field(default_factory=dict)
    stats: list[tuple[int, int]] = field(default_factory=list)
    republishes: list[int] = field(default_factory=list)  # rx ns at one subscriber
    ready: int = 0
    exited: int = 0

    def start(self, subscribers: int, workers: int, port: int) -> None:
        """Fork `workers` processes sharing `subscribers` clients."""
        ctx = multiprocessing.get_context("fork")
        share, extra = divmod(subscribers, workers)
        for index in range(workers):
            parent, child = ctx.Pipe()
            count = share + (1 if index < extra else 0)
            proc = ctx.Process(target=worker_main, args=(index, count, port, child), daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)

    def pump(self, timeout: float) -> None:
        """Take in whatever the workers sent within `timeout` seconds."""
        for conn in wait(self.conns, timeout):
            try:
                message = cast(Connection, conn).recv()
            except EOFError:  # the worker is gone (its traceback is on stderr)
                self.conns.remove(cast(Connection, conn))
                self.exited += 1
                continue
            kind = message[0]
            if kind == "got":
                self.reports.setdefault((message[1], message[2]), []).append(message[3:])
            elif kind == "ready":
                self.ready += 1
            elif kind == "republish":
                self.republishes.append(message[1])
            elif kind == "stats":
                self.stats.append((message[2], message[3]))

    def wait_ready(self, timeout: float) -> None:
        """Block until every worker's clients are subscribed."""
        deadline = time.monotonic() + timeout
        while self.ready < len(self.procs):
            if time.monotonic() > deadline or self.exited:
                raise BenchError(f"only {self.ready}/{len(self.procs)} workers subscribed")
            self.pump(0.2)

    def wait_change(self, key: tuple[str, int], timeout: float) -> list[tuple[int, ...]] | None:
        """Every worker's (first_rx, last_rx, first_cb, last_cb) for `key`, or None."""
        deadline = time.monotonic() + timeout
        while len(self.reports.get(key, [])) < len(self.procs):
            left = deadline - time.monotonic()
            if self.exited:
                raise BenchError("a subscriber process exited")
            if left <= 0:
                return None
            self.pump(left)
        return self.reports.pop(key)

    def stop(self) -> None:
        """Ask every worker to disconnect, collect counters, then make sure they are gone."""
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send("stop")
        deadline = time.monotonic() + 5
        while self.conns and len(self.stats) < len(self.procs) and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                self.pump(0.2)
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


# ---- the measurement ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """Timings of one state change, all in ns since the request started."""

    http: int
    first_rx: int
    last_rx: int
    last_cb: int
    started_at: int  # absolute CLOCK_REALTIME ns when the request started
    visible_at: int  # absolute CLOCK_REALTIME ns of the HTTP response


def change_plan(slugs: list[str], changes: int) -> Iterator[tuple[str, str]]:
    """Rotate over the rooms: a round of check-ins, then a round of check-outs, ..."""
    for number in range(changes):
        action = "checkin" if (number // len(slugs)) % 2 == 0 else "checkout"
        yield slugs[number % len(slugs)], action


def one_change(
    hub: HubClient, workers: Workers, slug: str, action: str, timeout: float
) -> Change | None:
    """Make one change and wait for every subscriber to have it."""
    t0 = time.time_ns()
    status = hub.post_json(f"/api/v1/rooms/{slug}/{action}")
    t_resp = time.time_ns()
    reports = workers.wait_change((status["room"], status["seq"]), timeout)
    if reports is None:
        return None
    return Change(
        http=t_resp - t0,
        first_rx=min(r[0] for r in reports) - t0,
        last_rx=max(r[1] for r in reports) - t0,
        last_cb=max(r[3] for r in reports) - t0,
        started_at=t0,
        visible_at=t_resp,
    )


def run_changes(
    hub: HubClient, workers: Workers, slugs: list[str], options: Options, deadline: float
) -> tuple[list[Change], int]:
    """All changes, one at a time; returns the completed ones and how many went missing."""
    done: list[Change] = []
    missing = 0
    rng = random.Random(options.seed)
    for number, (slug, action) in enumerate(change_plan(slugs, options.changes)):
        time.sleep(rng.uniform(0.5, 1.5) * options.interval)
        if time.monotonic() > deadline:
            log(f"run budget used up after {number} changes")
            missing += options.changes - number
            break
        change = one_change(hub, workers, slug, action, options.change_timeout)
        if change is None:
            missing += 1
            log(f"change {number} ({action} {slug}) not seen by every subscriber")
        else:
            done.append(change)
    return done, missing


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def poll_staleness_ms(changes: list[Change], displays: int, seed: int) -> float:
    """Mean wait from each change to each display's next 10-s poll (random seeded phases)."""
    rng = random.Random(seed)
    period_ns = int(POLL_PERIOD_MS * NS_PER_MS)
    phases = [rng.randrange(period_ns) for _ in range(displays)]
    total = 0
    for change in changes:
        total += sum((phase - change.visible_at) % period_ns for phase in phases)
    return total / (len(changes) * displays) / NS_PER_MS if changes else math.nan


def write_csv(path: Path, changes: list[Change]) -> None:
    """One row per change: start offset (s) and the timings (ms)."""
    start = changes[0].started_at if changes else 0
    rows = ["start_s,http_ms,first_ms,last_ms,handled_ms"]
    for c in changes:
        rows.append(
            f"{(c.started_at - start) / 1e9:.3f},{c.http / NS_PER_MS:.2f},"
            f"{c.first_rx / NS_PER_MS:.2f},{c.last_rx / NS_PER_MS:.2f},{c.last_cb / NS_PER_MS:.2f}"
        )
    path.write_text("\n".join(rows) + "\n")


def ms(values_ns: list[int]) -> list[float]:
    """ns -> ms."""
    return [v / NS_PER_MS for v in values_ns]


def republish_bursts(stamps: list[int]) -> list[tuple[int, int]]:
    """Group one subscriber's republish receipts into bursts (a gap over 1 s splits)."""
    bursts: list[tuple[int, int]] = []
    for stamp in sorted(stamps):
        if bursts and stamp - bursts[-1][1] <= 1_000_000_000:
            bursts[-1] = (bursts[-1][0], stamp)
        else:
            bursts.append((stamp, stamp))
    return bursts


def near_burst(change: Change, bursts: list[tuple[int, int]]) -> bool:
    """Whether the change was in flight from 0.1 s before to 0.3 s after a republish burst."""
    start, end = change.started_at, change.started_at + change.last_rx
    return any(
        start <= last + 300 * NS_PER_MS and end >= first - 100 * NS_PER_MS for first, last in bursts
    )


@dataclass(frozen=True)
class Outcome:
    """Everything measured."""

    changes: list[Change]
    missing: int
    rss: float
    pss: float
    republishes: list[int]
    foreign_cpu: float


def latency_lines(outcome: Outcome) -> list[tuple[str, str, str]]:
    """Last-subscriber percentiles, then the diagnostic variants."""
    last = ms([c.last_rx for c in outcome.changes])
    lines = [
        ("p50", f"{percentile(last, 50):.1f}", "ms"),
        ("p99", f"{percentile(last, 99):.1f}", "ms"),
        ("max", f"{max(last, default=math.nan):.1f}", "ms"),
        ("mean", f"{sum(last) / len(last) if last else math.nan:.1f}", "ms"),
    ]
    for name, attr in (("first", "first_rx"), ("handled", "last_cb"), ("http", "http")):
        values = ms([getattr(c, attr) for c in outcome.changes])
        for pct in (50, 99):
            lines.append((f"p{pct}_{name}", f"{percentile(values, pct):.1f}", "ms"))
    bursts = republish_bursts(outcome.republishes)
    quiet = ms([c.last_rx for c in outcome.changes if not near_burst(c, bursts)])
    lines += [
        ("republish_bursts", f"{len(bursts)}", "bursts"),
        ("changes_near_republish", f"{len(last) - len(quiet)}", "changes"),
        ("p99_quiet", f"{percentile(quiet, 99):.1f}", "ms"),
    ]
    return lines


def report(outcome: Outcome, options: Options) -> bool:
    """Print the figures; True when every target holds."""
    p50 = percentile(ms([c.last_rx for c in outcome.changes]), 50)
    p99 = percentile(ms([c.last_rx for c in outcome.changes]), 99)
    poll = poll_staleness_ms(outcome.changes, POLL_DISPLAYS, options.seed)
    lines = [
        ("subscribers", f"{options.subscribers}", "clients"),
        ("changes", f"{len(outcome.changes)}", "changes"),
        ("missing", f"{outcome.missing}", "changes"),
        *latency_lines(outcome),
        ("hub_rss", f"{outcome.rss:.1f}", "MB"),
        ("hub_pss", f"{outcome.pss:.1f}", "MB"),
        ("foreign_cpu", f"{outcome.foreign_cpu:.0f}", "%"),
        ("poll_staleness_mean", f"{poll:.0f}", "ms"),
        ("staleness_ratio", f"{poll / p50:.0f}", "x"),
        ("target_p99", f"{TARGET_P99_MS:.0f}", "ms"),
        ("target_rss", f"{TARGET_RSS_MB:.0f}", "MB"),
    ]
    ok = outcome.missing == 0 and p99 <= TARGET_P99_MS and outcome.rss <= TARGET_RSS_MB
    lines.append(("result", "ok" if ok else "missed", ""))
    for name, value, unit in lines:
        print(f"{name}={value} {unit}".rstrip(), flush=True)
    return ok


# ---- orchestration --------------------------------------------------------------------


@dataclass
class Rig:
    """Everything started, so that `close` can stop it."""

    workdir: Path
    mosquitto: subprocess.Popen[bytes] | None = None
    hub: subprocess.Popen[bytes] | None = None
    workers: Workers = field(default_factory=Workers)
    stamp_guard: socket.socket | None = None

    def enable_rx_stamps(self) -> None:
        """Switch kernel receive stamping on now: Linux enables it lazily, so a first socket
        asking for it would get its first packets unstamped."""
        self.stamp_guard = socket.socket()
        self.stamp_guard.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def close(self) -> None:
        """Stop clients, hub, broker; delete the temp dir. Ctrl+C is ignored meanwhile."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.workers.stop()
            stop_group(self.hub)
            stop_group(self.mosquitto)
            if self.stamp_guard is not None:
                self.stamp_guard.close()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def bring_up(rig: Rig, options: Options) -> tuple[HubClient, list[str]]:
    """Broker, admin, hub, login, rooms, subscribers."""
    limit = raise_nofile_limit()
    if limit < options.subscribers * 3 + 100:
        raise BenchError(f"RLIMIT_NOFILE hard limit {limit} is too low")
    rig.enable_rx_stamps()
    mqtt_port, http_port = free_port(), free_port()
    rig.mosquitto = start_mosquitto(rig.workdir, mqtt_port)
    env = hub_env(rig.workdir, mqtt_port, options.hub_env)
    create_admin(env)
    rig.hub = start_hub(rig.workdir, env, http_port)
    base = f"http://127.0.0.1:{http_port}"
    wait_hub(rig.workdir, base, rig.hub)
    hub = HubClient(base)
    hub.login(ADMIN_USER, ADMIN_PASSWORD)
    slugs = [f"bench-{n:02d}" for n in range(options.rooms)]
    for slug in slugs:
        hub.post_json("/api/v1/rooms", {"slug": slug, "name": f"Bench {slug}"})
    log(f"hub up at {base}, broker on {mqtt_port}, {len(slugs)} rooms")
    rig.workers.start(options.subscribers, options.workers, mqtt_port)
    rig.workers.wait_ready(60)
    time.sleep(1.0)  # let the retained statuses settle
    rig.workers.pump(0)
    rig.workers.reports.clear()
    rig.workers.republishes.clear()
    log(f"{options.subscribers} subscribers in {options.workers} processes")
    return hub, slugs


def interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM cleans up like Ctrl+C."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when the targets hold, 1 when missed, 2 on errors."""
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    deadline = time.monotonic() + options.max_seconds
    rig = Rig(Path(tempfile.mkdtemp(prefix="empfang-bench-")))
    try:
        hub, slugs = bring_up(rig, options)
        meter = CpuMeter()
        meter.start()
        changes, missing = run_changes(hub, rig.workers, slugs, options, deadline)
        foreign = meter.foreign_percent()
        assert rig.hub is not None
        tree = process_tree(rig.hub.pid)
        rig.workers.pump(0)
        outcome = Outcome(
            changes, missing, rss_mb(tree), pss_mb(tree), list(rig.workers.republishes), foreign
        )
        ok = report(outcome, options)
        if options.csv:
            write_csv(options.csv, changes)
        return 0 if ok else 1
    except BenchError as exc:
        log(f"error: {exc}")
        hub_log = rig.workdir / "hub.log"
        if hub_log.exists():
            log("hub log (tail):\n" + hub_log.read_text(errors="replace")[-3000:])
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        rig.close()
        unstamped = sum(s[0] for s in rig.workers.stats)
        lost = sum(s[1] for s in rig.workers.stats)
        log(f"clean; {unstamped} receipts timed without a kernel stamp, {lost} disconnects")


if __name__ == "__main__":
    sys.exit(main())
