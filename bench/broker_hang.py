"""How soon /healthz reports a hung broker, and how soon it is healthy again.

Real parts: a Mosquitto on a free loopback port and the hub as ``empfang-hub run``
(gunicorn, one worker). Each round freezes the broker with SIGSTOP (it hangs, it does not
die: its connections stay open), polls ``/healthz`` every 50 ms until it answers 503,
then thaws it with SIGCONT and polls until 200. A random pause (seeded) between rounds
puts the freeze at a random phase of the hub's probe.

Prints ``broker_hang_detected`` (median and max over the rounds, seconds from SIGSTOP to
the first 503) and ``broker_recovered`` (SIGCONT to the first 200). Target (from the
issue): every detection within 10 s; ``result=ok`` (exit status 0) when it holds,
``result=missed`` (1) when not.

Run: .venv/bin/python bench/broker_hang.py [--rounds 5] [--broker-timeout 5]
"""

from __future__ import annotations

import argparse
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import HttpClient, HubProcess, hub_env, wait_healthy  # noqa: E402

TARGET = 10.0  # seconds from the freeze to the first 503, in every round
POLL = 0.05  # seconds between two /healthz requests
LIMIT = 60.0  # give up on a round after this long


def until_status(web: HttpClient, status: int) -> float:
    """Poll /healthz until it answers `status`; seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < LIMIT:
        if web.get("/healthz", timeout=2).status == status:
            return time.monotonic() - start
        time.sleep(POLL)
    raise SystemExit(f"/healthz did not answer {status} within {LIMIT} s")


def main() -> None:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--broker-timeout", type=float, default=None, help="seconds (hub default)")
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    pause = random.Random(options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir)
        broker.start()
        extra = {} if options.broker_timeout is None else {"broker_timeout": options.broker_timeout}
        env = hub_env(
            mqtt_url=broker.url,
            database_url=f"sqlite:///{workdir / 'hub.db'}",
            instance_path=workdir / "instance",
            secret_key="bench-secret",
            **extra,
        )
        port = free_port()
        hub = HubProcess(["run", "--port", str(port), "--threads", "4"], env, workdir / "hub.log")
        detected: list[float] = []
        recovered: list[float] = []
        try:
            hub.start()
            base = f"http://127.0.0.1:{port}"
            wait_healthy(hub, base, 60)
            web = HttpClient(base)
            assert broker.proc is not None
            for _ in range(options.rounds):
                time.sleep(pause.uniform(1.0, 3.0))
                broker.proc.send_signal(signal.SIGSTOP)
                try:
                    detected.append(until_status(web, 503))
                finally:
                    broker.proc.send_signal(signal.SIGCONT)
                recovered.append(until_status(web, 200))
        finally:
            hub.cleanup()
            broker.stop()
    print(f"rounds={len(detected)}")
    print(f"broker_hang_detected={statistics.median(detected):.2f} s (max {max(detected):.2f} s)")
    print(f"broker_recovered={statistics.median(recovered):.2f} s (max {max(recovered):.2f} s)")
    print(f"target_detected<={TARGET:.0f} s")
    ok = max(detected) <= TARGET
    print(f"result={'ok' if ok else 'missed'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
