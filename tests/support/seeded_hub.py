"""A hub as production runs it (`empfang-hub run`, its own process group, SQLite in a work
folder) with a reception and one staff member serving a queue: the benchmarks' hub."""

from __future__ import annotations

from pathlib import Path

from hub.config import load_settings
from hub.db import upgrade
from hub.runtime import HubRuntime
from tests.support.net import free_port
from tests.support.processes import HubProcess, hub_env, run_cli, wait_healthy
from tests.support.reception import join_queues, setup_reception


def start_seeded_hub(
    work: Path,
    broker_url: str,
    staff_user: str,
    staff_password: str,
    department: str = "sozialamt",
    **settings: str | Path | float | int,
) -> tuple[HubProcess, str]:
    """Seed a reception and a staff member of `department`, start the hub; (hub, base URL)."""
    db_url = f"sqlite:///{work / 'hub.db'}"
    env = hub_env(mqtt_url=broker_url, database_url=db_url, instance_path=work / "inst", **settings)
    upgrade(db_url)
    hub_settings = load_settings(environ=env, instance_path=work / "inst")
    seeding = HubRuntime(hub_settings)
    try:
        setup_reception(seeding)
    finally:
        seeding.close()
    made = run_cli(
        ["create-user", staff_user, "--password-stdin"], env, stdin=staff_password + "\n"
    )
    if made.returncode != 0:
        raise AssertionError(f"create-user failed: {made.stderr[-1000:]}")
    seeding = HubRuntime(hub_settings)
    try:
        join_queues(seeding, staff_user, department)
    finally:
        seeding.close()
    port = free_port()
    hub = HubProcess(["run", "--port", str(port)], env, work / "hub.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(hub, base)
    except BaseException:
        hub.cleanup()
        raise
    return hub, base
