"""Lobby under load: 1,000 waiting citizens on live connections, staff admit 100 of them.

Run as ``.venv/bin/python bench/lobby_load.py`` (``--help`` for the knobs; two to three
minutes, at most about five). Like ``bench/status_latency.py`` (whose helpers it imports)
it raises the soft RLIMIT_NOFILE to the hard one first, then starts a real Mosquitto on a
free loopback port and the hub as production does, here
``empfang-hub run --port P --threads 1100 --workers 2`` (gunicorn gthread workers; every
live connection holds a thread; one worker per core of this machine, where the Ansible
role deploys four; the hub processes share the work through MQTT and the database), with
SQLite in a temp dir, ``EMPFANG_TICKET_RATE=100000`` (the per-address flood limit would
otherwise stop the benchmark's single address after 5) and a fixed ``EMPFANG_SECRET_KEY``.
It seeds over HTTP as an admin (``create-user --admin --password-stdin``, then the staff
login form): two departments and three categories through the admin forms, the reception
room and one consultation room per admission (a room holds one conversation) through
``POST /api/v1/rooms``.

Phases and figures
------------------
1. Tickets: ``--creators`` threads (default 4), each with its own keep-alive
   ``http.client`` connection, create ``--citizens`` tickets through the kiosk JSON API
   (``POST /api/v1/reception/tickets``) as fast as the hub answers. ``ticket_create_rate``
   = tickets / wall time from the first request to the last answer; ``hub_cpu_create`` and
   ``create_wall`` are the hub's CPU seconds and the wall seconds of that phase. All tickets
   go into one department's queue (two categories of the same department), so that every
   admission moves every waiting citizen up by one. ``ticket_keepalive_refused`` counts
   answers with ``Connection: close`` (the hub refusing keep-alive).
2. Live connections: one asyncio event loop opens one ``websockets`` client per ticket
   (``Origin`` = the hub's URL, as a browser sends it; permessage-deflate offered, as
   browsers do), half on the waiting page's channel ``/empfang/t/<token>/live``, half on the
   kiosk channel ``/api/v1/reception/tickets/<token>/live``, and waits until each has its
   first ``ticket`` message. The initial positions must be exactly 1..N. Then 3 quiet
   seconds: ``hub_cpu_idle`` is what the open connections cost when nothing happens.
3. Admissions: the staff member admits the waiting citizen at position 1 (the oldest), one
   at a time (``POST /api/v1/queue/<ticket>/admit`` with a free room). ``t0`` is
   ``time.monotonic_ns()`` just before the HTTP request; the admission moves each of the
   remaining waiting citizens from position p to p - 1, and

       admit_fanout(admission) = (moment the LAST remaining connection received a ``ticket``
                                  message with its new position) - t0

   The next admission starts only when all have it (50 ms later), or after
   ``--admit-timeout`` (counted as missing, ``result=missed``; who did not follow is logged
   and left out from then on). ``p50``/``p99`` are nearest-rank percentiles (p99 of 100 is
   the 99th smallest). ``admit_fanout_first_p50`` is the first connection's receipt,
   ``admit_http_*`` the HTTP round trip of the admission, ``hub_cpu_admits`` and
   ``admits_wall`` the hub's CPU and the wall seconds of the phase.
4. Late tickets: ``--late-tickets`` (default 100) more tickets created the same way while
   the citizens listen: ``ticket_create_rate_connected`` shows what every queue event costs
   when 1,000 live connections must hear of it.

``hub_rss``: VmRSS summed over the hub's process tree (gunicorn master + worker) at the end,
with every live connection still open; MB means MiB (``hub_pss`` splits shared pages).
``hub_cpu``: utime + stime of that tree over the whole run (``/proc/<pid>/stat``, read at
the end). ``hub_threads``: threads of the tree at the end.

Is the measuring side the bottleneck?
-------------------------------------
The receipt times are taken when this process's event loop hands a message over, so a
loop that lags behind its sockets would inflate the figures. ``bench_cpu_admits`` is this
process's CPU during phase 3 in percent of one core (far below 100 %: the loop mostly sat
idle waiting for data). ``loop_lag_p99``/``loop_lag_max``: how late a 5 ms timer in the
same loop fired during the fan-outs, i.e. how long arrived data could have waited unread
(the loop busy with other messages, or not scheduled on the shared CPUs).
``admit_fanout_p99_minus_lag`` subtracts each fan-out's worst lag from it: a lower bound
for the hub's share. ``foreign_cpu`` is the share of the machine (all cores) used outside
this benchmark's process tree during phase 3; well above 0 % makes every figure
pessimistic (rerun when the machine is quiet).

Targets (issue 3): admit_fanout_p99 <= 1000 ms with 1,000 waiting, ticket creation
>= 200 tickets/s, hub RSS <= 300 MB; ``result=ok`` when all hold and no admission went
missing. Exit status 0 ok, 1 missed, 2 could not run, 130 Ctrl+C or SIGTERM.
``--workers 1`` shows what a single process manages (about 190 tickets/s here: one
Python process creates a ticket in about 5 ms of CPU). ``--hub-env KEY=VALUE`` and
``--no-compression`` are for diagnosis only;
figures taken with them are not the production setup.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from procfs import CLK_TCK, machine_busy_ticks, process_tree, pss_mb, rss_mb, tree_ticks
from status_latency import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    BenchError,
    HubClient,
    create_admin,
    free_port,
    hub_command,
    hub_env,
    log,
    percentile,
    raise_nofile_limit,
    start_mosquitto,
    stop_group,
    wait_hub,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

TARGET_P99_MS = 1000.0
TARGET_RATE = 200.0
TARGET_RSS_MB = 300.0
DEPARTMENTS = (("sozialamt", "Sozialamt"), ("buergerbuero", "Bürgerbüro"))
# (slug, German, English, department): the first two share one queue, the bench uses them.
CATEGORIES = (
    ("wohngeld", "Wohngeld", "Housing benefit", "sozialamt"),
    ("grundsicherung", "Grundsicherung", "Basic income support", "sozialamt"),
    ("ausweis", "Ausweis", "ID card", "buergerbuero"),
)
QUEUE_CATEGORIES = ("wohngeld", "grundsicherung")
NS_PER_MS = 1_000_000


@dataclass(frozen=True)
class Options:
    """Command-line knobs."""

    citizens: int
    admits: int
    creators: int
    threads: int
    workers: int
    connect_concurrency: int
    late_tickets: int
    admit_timeout: float
    max_seconds: float
    compression: bool
    csv: Path | None
    keep_logs: Path | None
    hub_env: dict[str, str]


def parse_options(argv: list[str] | None = None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1000, help="tickets = live connections")
    parser.add_argument("--admits", type=int, default=100)
    parser.add_argument("--creators", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--threads", type=int, default=1100, help="hub: run --threads")
    parser.add_argument(
        "--workers", type=int, default=2, help="hub run --workers (default 2, one per core)"
    )
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument(
        "--late-tickets",
        type=int,
        default=100,
        help="tickets created after the admissions, while the citizens listen (0: none)",
    )
    parser.add_argument("--admit-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="budget before the clean-up"
    )
    parser.add_argument(
        "--no-compression", action="store_true", help="diagnostics: no permessage-deflate"
    )
    parser.add_argument("--csv", type=Path, help="write per-admission timings (ms) here")
    parser.add_argument("--keep-logs", type=Path, help="copy the hub's and broker's logs here")
    parser.add_argument(
        "--hub-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="diagnostics only: extra hub setting",
    )
    ns = parser.parse_args(argv)
    if ns.citizens < 2 or ns.admits < 1 or ns.creators < 1 or ns.connect_concurrency < 1:
        parser.error("counts must be positive (at least 2 citizens)")
    if ns.admits >= ns.citizens:
        parser.error("--admits must be smaller than --citizens")
    if not all("=" in item for item in ns.hub_env):
        parser.error("--hub-env takes KEY=VALUE")
    return Options(
        citizens=ns.citizens,
        admits=ns.admits,
        creators=ns.creators,
        threads=ns.threads,
        workers=max(1, ns.workers),
        connect_concurrency=ns.connect_concurrency,
        late_tickets=max(0, ns.late_tickets),
        admit_timeout=ns.admit_timeout,
        max_seconds=ns.max_seconds,
        compression=not ns.no_compression,
        csv=ns.csv,
        keep_logs=ns.keep_logs,
        hub_env=dict(item.split("=", 1) for item in ns.hub_env),
    )


# ---- processes and /proc ----------------------------------------------------------------


def start_hub(
    workdir: Path, env: dict[str, str], port: int, threads: int, workers: int
) -> subprocess.Popen[bytes]:
    """`empfang-hub run --port P --threads N` in its own process group."""
    command = [hub_command(), "run", "--port", str(port), "--threads", str(threads)]
    if workers != 1:
        command += ["--workers", str(workers)]
    with (workdir / "hub.log").open("ab") as log_file:
        return subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def thread_count(pids: list[int]) -> int:
    """Threads of `pids`."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/task"))
    return total


@dataclass
class CpuWindow:
    """CPU used by the hub, by this process and by everybody else over a stretch of time."""

    hub_pid: int
    wall: float = 0.0
    hub: int = 0
    bench: float = 0.0
    mine: int = 0
    busy: int = 0

    def start(self) -> None:
        """First reading."""
        self.wall = time.monotonic()
        self.hub = tree_ticks(process_tree(self.hub_pid))
        self.bench = time.process_time()
        self.mine = tree_ticks(process_tree(os.getpid()))
        self.busy = machine_busy_ticks()

    def stop(self) -> dict[str, float]:
        """Seconds of wall and hub CPU, bench CPU share (one core) and foreign share (all)."""
        wall = time.monotonic() - self.wall
        hub = (tree_ticks(process_tree(self.hub_pid)) - self.hub) / CLK_TCK
        bench = time.process_time() - self.bench
        mine = tree_ticks(process_tree(os.getpid())) - self.mine  # includes the hub's tree
        foreign = machine_busy_ticks() - self.busy - mine
        capacity = wall * CLK_TCK * (os.cpu_count() or 1)
        return {
            "wall": wall,
            "hub": hub,
            "bench_pct": 100.0 * bench / wall if wall else math.nan,
            "foreign_pct": max(0.0, 100.0 * foreign / capacity) if capacity else math.nan,
        }


# ---- HTTP: seeding, tickets, staff ---------------------------------------------------------


def post_form(hub: HubClient, path: str, fields: dict[str, str]) -> None:
    """POST an admin form with the session's CSRF token (the redirect is followed)."""
    data = urllib.parse.urlencode({"csrf_token": hub.csrf, **fields}).encode()
    request = urllib.request.Request(hub.base + path, data=data, method="POST")
    try:
        with hub.opener.open(request, timeout=30) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        raise BenchError(f"POST {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None


def seed(hub: HubClient, rooms: int) -> list[str]:
    """Departments, the reception room, `rooms` consultation rooms, categories."""
    for slug, name in DEPARTMENTS:
        post_form(hub, "/admin/departments", {"slug": slug, "name": name})
    hub.post_json("/api/v1/rooms", {"slug": "empfang", "name": "Empfang", "kind": "reception"})
    slugs = [f"beratung-{n:03d}" for n in range(rooms)]
    for slug in slugs:
        hub.post_json(
            "/api/v1/rooms",
            {
                "slug": slug,
                "name": f"Beratung {slug[-3:]}",
                "kind": "consultation",
                "department": "sozialamt",
            },
        )
    for slug, name_de, name_en, department in CATEGORIES:
        post_form(
            hub,
            "/admin/categories",
            {"slug": slug, "name_de": name_de, "name_en": name_en, "department": department},
        )
    info = json.loads(hub.get("/api/v1/reception"))
    if not info.get("open"):
        raise BenchError(f"the reception is not open after seeding: {info}")
    return slugs


@dataclass(frozen=True)
class Ticket:
    """A created ticket: its secret token and public id."""

    token: str
    public_id: str


@dataclass
class Creation:
    """What the ticket creators produced."""

    tickets: list[Ticket] = field(default_factory=list)
    refused_keepalive: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def create_worker(host: str, port: int, numbers: list[int], out: Creation) -> None:
    """Create tickets for `numbers` over one keep-alive connection (it reconnects if closed)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        for number in numbers:
            body = json.dumps(
                {
                    "name": f"Bürger {number}",
                    "category": QUEUE_CATEGORIES[number % len(QUEUE_CATEGORIES)],
                    "description": f"Anliegen Nummer {number}: bitte um Rückruf.",
                    "consent": True,
                    "language": "de",
                }
            )
            for attempt in (1, 2):
                try:
                    conn.request("POST", "/api/v1/reception/tickets", body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    conn.close()  # an idle keep-alive connection closed under us: once more
                    if attempt == 2:
                        raise
            closed = (resp.getheader("Connection") or "").lower() == "close"
            with out.lock:
                out.refused_keepalive += closed
                if resp.status != 201:
                    out.errors.append(f"HTTP {resp.status} {data[:200]!r}")
                    return
                answer = json.loads(data)
                out.tickets.append(Ticket(answer["token"], answer["ticket"]))
    except Exception as exc:  # reported by the caller
        with out.lock:
            out.errors.append(repr(exc))
    finally:
        conn.close()


def create_tickets(base: str, count: int, creators: int, first: int = 0) -> tuple[Creation, float]:
    """Create `count` tickets with `creators` threads; returns them and the wall seconds."""
    parts = urllib.parse.urlsplit(base)
    out = Creation()
    threads = [
        threading.Thread(
            target=create_worker,
            args=(parts.hostname, parts.port, list(range(first + i, first + count, creators)), out),
        )
        for i in range(creators)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if out.errors:
        raise BenchError(f"ticket creation failed: {out.errors[0]}")
    if len(out.tickets) != count:
        raise BenchError(f"only {len(out.tickets)} of {count} tickets created")
    return out, elapsed


# ---- the citizens' live connections --------------------------------------------------------


@dataclass
class Citizen:
    """One live connection and what it saw."""

    ticket: Ticket
    ws: ClientConnection | None = None
    position: int | None = None
    status: str = ""
    messages: int = 0
    first: asyncio.Event = field(default_factory=asyncio.Event)
    admitted: bool = False  # the staff member admitted this one
    lost: bool = False  # missed an update or closed early: no longer expected to follow
    closed: str = ""  # why the hub closed the connection, if it did before the end

    def follows(self) -> bool:
        """Whether this citizen waits and must see every position change."""
        return not self.admitted and not self.lost and self.status == "waiting"


@dataclass
class Round:
    """One admission's expectations: who must see which position, and when they did."""

    expected: dict[int, int]  # citizen index -> the position it must see
    done: asyncio.Event = field(default_factory=asyncio.Event)
    first_ns: int = 0
    last_ns: int = 0
    seen: int = 0


class Lobby:
    """Every citizen's connection, read by one task each in this event loop."""

    def __init__(self, base: str, tickets: list[Ticket], options: Options) -> None:
        self.base = base
        self.ws_base = "ws" + base[len("http") :]
        self.citizens = [Citizen(t) for t in tickets]
        self.options = options
        self.round: Round | None = None
        self.readers: list[asyncio.Task[None]] = []
        self.closed_early = 0
        self.closing = False
        self.stalled = False  # the hub stopped answering HTTP while the citizens listen
        self.lags: list[tuple[int, int]] = []  # (monotonic ns, lag ns) of the loop probe
        self.probe: asyncio.Task[None] | None = None

    def _url(self, index: int) -> str:
        token = self.citizens[index].ticket.token
        if index % 2 == 0:
            return f"{self.ws_base}/empfang/t/{token}/live"
        return f"{self.ws_base}/api/v1/reception/tickets/{token}/live"

    async def open_all(self, timeout: float) -> None:
        """Connect everybody (a few at a time) and wait for every first ticket message."""
        gate = asyncio.Semaphore(self.options.connect_concurrency)

        async def open_one(index: int) -> None:
            async with gate:
                try:
                    ws = await connect(
                        self._url(index),
                        origin=cast(Any, self.base),
                        compression="deflate" if self.options.compression else None,
                        ping_interval=None,  # the hub pings; a busy hub must not get us closed
                        open_timeout=60,
                        max_queue=None,
                    )
                except (OSError, WebSocketException) as exc:
                    raise BenchError(f"live connection {index}: {exc!r}") from None
                self.citizens[index].ws = ws
                self.readers.append(asyncio.create_task(self._read(index)))
                await self.citizens[index].first.wait()

        try:
            await asyncio.wait_for(
                asyncio.gather(*(open_one(i) for i in range(len(self.citizens)))), timeout
            )
        except TimeoutError:
            ready = sum(c.first.is_set() for c in self.citizens)
            raise BenchError(f"only {ready}/{len(self.citizens)} live connections ready") from None
        positions = sorted(c.position or 0 for c in self.citizens)
        if positions != list(range(1, len(self.citizens) + 1)):
            raise BenchError(f"initial positions are not 1..N: {positions[:5]}...")
        self.probe = asyncio.create_task(self._probe())

    async def _read(self, index: int) -> None:
        citizen = self.citizens[index]
        ws = citizen.ws
        assert ws is not None
        try:
            async for raw in ws:
                now = time.monotonic_ns()
                message = json.loads(raw)
                if message.get("type") != "ticket":
                    continue
                citizen.messages += 1
                citizen.position = message.get("position")
                citizen.status = message.get("status", "")
                citizen.first.set()
                current = self.round
                if current is not None and current.expected.get(index) == citizen.position:
                    del current.expected[index]
                    current.first_ns = current.first_ns or now
                    current.last_ns = now
                    current.seen += 1
                    if not current.expected:
                        current.done.set()
        except ConnectionClosed:
            pass
        if not self.closing:
            self.closed_early += 1
            citizen.lost = True
            citizen.closed = f"{ws.close_code} {ws.close_reason!r}"
            if self.closed_early <= 5:
                log(f"citizen {index} (position {citizen.position}): closed {citizen.closed}")

    async def _probe(self) -> None:
        """A 5 ms timer: how late it fires is how long the loop was busy elsewhere."""
        period = 5 * NS_PER_MS
        while True:
            planned = time.monotonic_ns() + period
            await asyncio.sleep(period / 1e9)
            now = time.monotonic_ns()
            self.lags.append((now, max(0, now - planned)))

    def oldest(self) -> int:
        """The waiting citizen with the lowest position (normally 1)."""
        waiting = [i for i, c in enumerate(self.citizens) if c.follows()]
        if not waiting:
            raise BenchError("no waiting citizen left to admit")
        return min(waiting, key=lambda i: self.citizens[i].position or 0)

    def start_round(self, admitted: int) -> Round:
        """Expect every waiting citizen behind the admitted one to move up by one."""
        self.citizens[admitted].admitted = True
        behind = self.citizens[admitted].position or 0
        expected = {
            i: c.position - 1
            for i, c in enumerate(self.citizens)
            if c.follows() and c.position is not None and c.position > behind
        }
        self.round = Round(expected)
        if not expected:  # nobody behind the admitted citizen
            self.round.done.set()
        return self.round

    def give_up(self, current: Round, number: int) -> None:
        """After a timeout: who did not follow, and why; they are left out from now on."""
        stragglers = sorted(current.expected)
        for i in stragglers:
            self.citizens[i].lost = True
        detail = ", ".join(
            f"{i} (position {self.citizens[i].position}, {self.citizens[i].messages} messages"
            f"{', closed ' + self.citizens[i].closed if self.citizens[i].closed else ''})"
            for i in stragglers[:5]
        )
        log(
            f"admission {number}: {len(stragglers)} of {current.seen + len(stragglers)} "
            f"citizens did not get their new position: {detail}"
        )
        self.round = None

    def lag_between(self, start_ns: int, end_ns: int) -> list[int]:
        """Probe lags (ns) observed in [start_ns, end_ns]."""
        return [lag for at, lag in self.lags if start_ns <= at <= end_ns]

    async def close(self) -> None:
        """Close every connection (hub threads then end) and stop the readers."""
        self.closing = True
        if self.probe is not None:
            self.probe.cancel()
        sockets = [c.ws for c in self.citizens if c.ws is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True), 15
            )
        for ws in sockets:
            ws.transport.abort()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


# ---- the measurement ---------------------------------------------------------------------


class AdmitFailed(BenchError):
    """The hub did not answer an admission (the rest of the run is reported as missing)."""


@dataclass(frozen=True)
class Admission:
    """Timings of one admission, ns since t0."""

    waiting: int
    http: int
    first: int
    last: int
    lag_max: int


def admit(hub: HubClient, public_id: str, room: str) -> tuple[int, int]:
    """The staff member admits one citizen; returns t0 and the response time (monotonic ns)."""
    t0 = time.monotonic_ns()
    try:
        answer = hub.post_json(f"/api/v1/queue/{public_id}/admit", {"room": room})
    except (OSError, urllib.error.URLError) as exc:  # no answer within 30 s
        raise AdmitFailed(f"admit {public_id}: {exc!r}") from None
    t1 = time.monotonic_ns()
    if answer.get("status") != "serving":
        raise BenchError(f"admit {public_id}: {answer}")
    return t0, t1


async def run_admissions(
    lobby: Lobby, hub: HubClient, rooms: list[str], options: Options, deadline: float
) -> tuple[list[Admission], int, list[int]]:
    """Admit the oldest waiting citizen `options.admits` times, one at a time; returns the
    admissions, how many went missing and the loop probe's lags during the fan-outs."""
    done: list[Admission] = []
    missing = 0
    fanout_lags: list[int] = []
    for number in range(options.admits):
        if time.monotonic() > deadline:
            log(f"run budget used up after {number} admissions")
            return done, missing + options.admits - number, fanout_lags
        oldest = lobby.oldest()
        current = lobby.start_round(oldest)
        following = len(current.expected)
        public_id = lobby.citizens[oldest].ticket.public_id
        try:
            t0, t1 = await asyncio.to_thread(admit, hub, public_id, rooms[number])
        except AdmitFailed as exc:
            log(
                f"{exc}; with {len(lobby.citizens)} live connections open the hub took no "
                "new HTTP connection (gunicorn's worker_connections counts them): stopping"
            )
            lobby.stalled = True
            lobby.round = None
            return done, missing + options.admits - number, fanout_lags
        try:
            await asyncio.wait_for(current.done.wait(), options.admit_timeout)
        except TimeoutError:
            missing += 1
            lobby.give_up(current, number)
            continue
        lobby.round = None
        if not following:
            continue  # nobody behind the admitted citizen: no fan-out to time
        lags = lobby.lag_between(t0, current.last_ns)
        fanout_lags += lags
        done.append(
            Admission(
                waiting=following,
                http=t1 - t0,
                first=current.first_ns - t0,
                last=current.last_ns - t0,
                lag_max=max(lags, default=0),
            )
        )
        if (number + 1) % 10 == 0:
            log(f"{number + 1} admissions, last fan-out {done[-1].last / NS_PER_MS:.0f} ms")
        await asyncio.sleep(0.05)  # a short gap, like a staff member's next click
    return done, missing, fanout_lags


@dataclass(frozen=True)
class Outcome:
    """Everything measured."""

    citizens: int
    rate: float
    refused_keepalive: int
    late_rate: float
    admissions: list[Admission]
    missing: int
    rss: float
    pss: float
    hub_cpu: float
    hub_threads: int
    admit_window: dict[str, float]
    create_window: dict[str, float]
    idle_pct: float
    lags: list[int]
    closed_early: int


def report(outcome: Outcome) -> bool:
    """Print the figures; True when every target holds."""

    def ms(values: list[int]) -> list[float]:
        return [v / NS_PER_MS for v in values]

    adm = outcome.admissions
    last = ms([a.last for a in adm])
    first = ms([a.first for a in adm])
    minus_lag = ms([max(0, a.last - a.lag_max) for a in adm])
    http_ms = ms([a.http for a in adm])
    lags = ms(outcome.lags)
    window = outcome.admit_window
    p99 = percentile(last, 99)
    lines = [
        ("waiting", f"{outcome.citizens}", "citizens"),
        ("ticket_create_rate", f"{outcome.rate:.0f}", "tickets/s"),
        ("ticket_keepalive_refused", f"{outcome.refused_keepalive}", "answers"),
        ("ticket_create_rate_connected", f"{outcome.late_rate:.0f}", "tickets/s"),
        ("hub_cpu_create", f"{outcome.create_window['hub']:.1f}", "s"),
        ("create_wall", f"{outcome.create_window['wall']:.1f}", "s"),
        ("admits", f"{len(adm)}", "admits"),
        ("missing", f"{outcome.missing}", "admits"),
        ("admit_fanout_p50", f"{percentile(last, 50):.0f}", "ms"),
        ("admit_fanout_p99", f"{p99:.0f}", "ms"),
        ("admit_fanout_max", f"{max(last, default=math.nan):.0f}", "ms"),
        ("admit_fanout_first_p50", f"{percentile(first, 50):.0f}", "ms"),
        ("admit_fanout_p99_minus_lag", f"{percentile(minus_lag, 99):.0f}", "ms"),
        ("admit_http_p50", f"{percentile(http_ms, 50):.0f}", "ms"),
        ("admit_http_p99", f"{percentile(http_ms, 99):.0f}", "ms"),
        ("hub_rss", f"{outcome.rss:.1f}", "MB"),
        ("hub_pss", f"{outcome.pss:.1f}", "MB"),
        ("hub_cpu", f"{outcome.hub_cpu:.1f}", "s"),
        ("hub_cpu_admits", f"{window['hub']:.1f}", "s"),
        ("admits_wall", f"{window['wall']:.1f}", "s"),
        ("hub_threads", f"{outcome.hub_threads}", "threads"),
        ("hub_cpu_idle", f"{outcome.idle_pct:.0f}", "% of a core"),
        ("bench_cpu_admits", f"{window['bench_pct']:.0f}", "%"),
        ("loop_lag_p99", f"{percentile(lags, 99):.1f}", "ms"),
        ("loop_lag_max", f"{max(lags, default=math.nan):.1f}", "ms"),
        ("foreign_cpu", f"{window['foreign_pct']:.0f}", "%"),
        ("connections_closed_early", f"{outcome.closed_early}", "connections"),
        ("target_admit_fanout_p99", f"{TARGET_P99_MS:.0f}", "ms"),
        ("target_ticket_create_rate", f"{TARGET_RATE:.0f}", "tickets/s"),
        ("target_hub_rss", f"{TARGET_RSS_MB:.0f}", "MB"),
    ]
    ok = (
        outcome.missing == 0
        and bool(adm)
        and p99 <= TARGET_P99_MS
        and outcome.rate >= TARGET_RATE
        and outcome.rss <= TARGET_RSS_MB
    )
    lines.append(("result", "ok" if ok else "missed", ""))
    for name, value, unit in lines:
        print(f"{name}={value} {unit}".rstrip(), flush=True)
    return ok


def write_csv(path: Path, admissions: list[Admission]) -> None:
    """One row per admission (ms)."""
    rows = ["waiting,http_ms,first_ms,last_ms,loop_lag_max_ms"]
    rows += [
        f"{a.waiting},{a.http / NS_PER_MS:.2f},{a.first / NS_PER_MS:.2f},"
        f"{a.last / NS_PER_MS:.2f},{a.lag_max / NS_PER_MS:.2f}"
        for a in admissions
    ]
    path.write_text("\n".join(rows) + "\n")


# ---- orchestration -----------------------------------------------------------------------


@dataclass
class Rig:
    """Everything started, so that `close` can stop it."""

    workdir: Path
    keep_logs: Path | None = None
    mosquitto: subprocess.Popen[bytes] | None = None
    hub: subprocess.Popen[bytes] | None = None
    lobby: Lobby | None = None

    async def close(self) -> None:
        """Close the citizens, stop hub and broker, delete the temp dir."""
        try:
            if self.lobby is not None:
                await self.lobby.close()
        finally:
            await asyncio.to_thread(stop_group, self.hub)
            await asyncio.to_thread(stop_group, self.mosquitto)
            if self.keep_logs is not None:
                self.keep_logs.mkdir(parents=True, exist_ok=True)
                for name in ("hub.log", "mosquitto.log"):
                    with contextlib.suppress(OSError):
                        shutil.copy(self.workdir / name, self.keep_logs / name)
            shutil.rmtree(self.workdir, ignore_errors=True)


async def bring_up(rig: Rig, options: Options) -> tuple[HubClient, list[str]]:
    """Broker, admin, hub, login, seed."""
    mqtt_port, http_port = free_port(), free_port()
    rig.mosquitto = start_mosquitto(rig.workdir, mqtt_port)
    extra = {"EMPFANG_TICKET_RATE": "100000", "EMPFANG_SECRET_KEY": "lobby-bench"}
    env = hub_env(rig.workdir, mqtt_port, {**extra, **options.hub_env})
    await asyncio.to_thread(create_admin, env)
    rig.hub = start_hub(rig.workdir, env, http_port, options.threads, options.workers)
    base = f"http://127.0.0.1:{http_port}"
    await asyncio.to_thread(wait_hub, rig.workdir, base, rig.hub)
    hub = HubClient(base)
    await asyncio.to_thread(hub.login, ADMIN_USER, ADMIN_PASSWORD)
    rooms = await asyncio.to_thread(seed, hub, options.admits)
    log(f"hub up at {base} (--threads {options.threads}), broker on {mqtt_port}, seeded")
    return hub, rooms


async def run(rig: Rig, options: Options) -> bool:
    """All three phases; True when every target holds."""
    deadline = time.monotonic() + options.max_seconds
    hub, rooms = await bring_up(rig, options)
    assert rig.hub is not None
    create_window = CpuWindow(rig.hub.pid)
    create_window.start()
    creation, elapsed = await asyncio.to_thread(
        create_tickets, hub.base, options.citizens, options.creators
    )
    create_cpu = create_window.stop()
    rate = options.citizens / elapsed
    log(f"{options.citizens} tickets in {elapsed:.1f} s ({rate:.0f}/s)")
    rig.lobby = Lobby(hub.base, creation.tickets, options)
    started = time.monotonic()
    await rig.lobby.open_all(timeout=max(10.0, deadline - time.monotonic() - 60))
    log(f"{options.citizens} live connections in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(1.0)  # let the hub's threads settle
    idle_window = CpuWindow(rig.hub.pid)
    idle_window.start()
    await asyncio.sleep(3.0)  # nothing happens: what do 1,000 open connections cost?
    idle = idle_window.stop()
    window = CpuWindow(rig.hub.pid)
    window.start()
    admissions, missing, lags = await run_admissions(rig.lobby, hub, rooms, options, deadline)
    measured = window.stop()
    late_rate = math.nan
    if rig.lobby.stalled or time.monotonic() > deadline:
        log("no late tickets: the hub stalled or the run budget is used up")
    elif options.late_tickets:  # newcomers while the others listen
        try:
            _late, late_elapsed = await asyncio.to_thread(
                create_tickets, hub.base, options.late_tickets, options.creators, options.citizens
            )
            late_rate = options.late_tickets / late_elapsed
        except BenchError as exc:
            log(f"late tickets: {exc}")
    tree = process_tree(rig.hub.pid)  # the end: every live connection is still open
    outcome = Outcome(
        citizens=options.citizens,
        rate=rate,
        refused_keepalive=creation.refused_keepalive,
        admissions=admissions,
        missing=missing,
        late_rate=late_rate,
        rss=rss_mb(tree),
        pss=pss_mb(tree),
        hub_cpu=tree_ticks(tree) / CLK_TCK,
        hub_threads=thread_count(tree),
        admit_window=measured,
        create_window=create_cpu,
        idle_pct=100.0 * idle["hub"] / idle["wall"],
        lags=lags,
        closed_early=rig.lobby.closed_early,
    )
    ok = report(outcome)
    if options.csv:
        write_csv(options.csv, admissions)
    return ok


async def amain(options: Options) -> int:
    """Run under one event loop; always clean up (SIGTERM cancels like Ctrl+C)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rig = Rig(Path(tempfile.mkdtemp(prefix="empfang-lobby-")), options.keep_logs)
    try:
        return 0 if await run(rig, options) else 1
    except (BenchError, OSError) as exc:  # OSError: e.g. the hub did not answer in time
        log(f"error: {exc!r}")
        hub_log = rig.workdir / "hub.log"
        if hub_log.exists():
            log("hub log (tail):\n" + hub_log.read_text(errors="replace")[-3000:])
        return 2
    finally:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, lambda: None)  # cleanup is not interrupted
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
        await asyncio.shield(rig.close())
        log("clean")


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when the targets hold, 1 when missed, 2 on errors, 130 on Ctrl+C."""
    options = parse_options(argv)
    limit = raise_nofile_limit()  # soft = hard before anything starts: children inherit it
    if limit < options.citizens * 3 + 200:
        log(f"RLIMIT_NOFILE hard limit {limit} is too low")
        return 2
    try:
        return asyncio.run(amain(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
