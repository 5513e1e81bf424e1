"""The `empfang-hub` command: run, demo, db upgrade, create-user."""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import click

from hub.config import ConfigError, Settings, ensure_secret_key, load_settings


def _settings() -> Settings:
    try:
        return ensure_secret_key(load_settings())
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """empfang hub: permanent virtual rooms and the virtual reception."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _upgrade_in_child() -> None:
    """Migrate in a separate process: the serving master then never loads Flask, SQLAlchemy
    or Alembic, and stays small (it only forks the workers)."""
    done = subprocess.run([sys.executable, "-m", "hub.cli", "db", "upgrade"], check=False)
    if done.returncode != 0:
        raise click.ClickException("the database upgrade failed (see above)")


def _factory(settings: Settings) -> Callable[[], Any]:
    def build() -> Any:
        from hub.app import create_app  # in the worker, after the fork

        return create_app(settings)

    return build


def _serve(
    settings: Settings, host: str, port: int, workers: int, threads: int, banner: list[str]
) -> None:
    from hub.server import serve

    with ExitStack() as stack:
        if settings.embedded_broker:
            from hub.embedded_broker import EmbeddedBroker

            broker = EmbeddedBroker("127.0.0.1", settings.embedded_mqtt_port)
            try:
                broker.start()
            except RuntimeError as exc:
                raise click.ClickException(
                    f"{exc} (set EMPFANG_EMBEDDED_MQTT_PORT, or EMPFANG_MQTT_URL for a broker)"
                ) from None
            stack.callback(broker.stop)
            click.echo(f"Embedded MQTT broker on {broker.url}")
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        for line in banner:
            click.echo(line)
        click.echo(f"Open http://{shown}:{port}/ in a browser (Ctrl+C stops the hub).")
        click.echo(
            f"  Citizens: http://{shown}:{port}/empfang/  Staff: http://{shown}:{port}/staff/login"
        )
        sys.stdout.flush()
        serve(_factory(settings), host, port, workers, threads)


def _server_options(func: click.decorators.FC) -> click.decorators.FC:
    func = click.option(
        "--threads",
        default=256,
        show_default=True,
        help="Threads per worker; every open live page (board, queue, waiting citizen) holds one.",
    )(func)
    func = click.option("--workers", default=1, show_default=True, help="Worker processes.")(func)
    func = click.option("--port", default=8080, show_default=True, help="TCP port.")(func)
    return click.option(
        "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
    )(func)


@main.command()
@_server_options
def run(host: str, port: int, workers: int, threads: int) -> None:
    """Upgrade the database, then serve the hub."""
    settings = _settings()
    _upgrade_in_child()
    _serve(settings, host, port, workers, threads, [])


@main.command()
@_server_options
def demo(host: str, port: int, workers: int, threads: int) -> None:
    """Like run, with demo rooms and logins on an empty database."""
    settings = _settings()
    _upgrade_in_child()
    seeded, logins = _seed_in_child()
    banner = ["Demo data created." if seeded else "Demo data exists already (kept)."]
    banner += [
        f"  {'Admin' if is_admin else 'Staff'} login: {username} / {password}"
        for username, password, is_admin in logins
    ]
    _serve(settings, host, port, workers, threads, banner)


def _seed_in_child() -> tuple[bool, list[Any]]:
    """Seed the demo data in a child process (keeps the serving master small)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_seed)


def _seed() -> tuple[bool, list[Any]]:
    from hub.db import session_scope
    from hub.demo import demo_logins, seed
    from hub.runtime import HubRuntime

    runtime = HubRuntime(_settings())  # not started: seeding needs no broker
    try:
        with session_scope(runtime.sessions) as db:
            seeded = seed(runtime, db)
            # Plain tuples: unpickling project classes would load Flask into the master.
            return seeded, [(x.username, x.password, x.is_admin) for x in demo_logins(runtime, db)]
    finally:
        runtime.close()


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    from hub.db import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    click.echo("Database is up to date.")


@main.command("create-user")
@click.argument("username")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--admin", is_flag=True, help="Give admin rights.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_user(username: str, display_name: str, admin: bool, password_stdin: bool) -> None:
    """Create a staff account and print its password (generated unless given)."""
    from hub.db import session_scope, upgrade
    from hub.errors import ServiceError
    from hub.runtime import HubRuntime

    settings = _settings()
    upgrade(settings.database_url)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    runtime = HubRuntime(settings)
    try:
        with session_scope(runtime.sessions) as session:
            created = runtime.users.create(
                session, username, display_name, password, is_admin=admin
            )
    except ServiceError as exc:
        raise click.ClickException(exc.to_dict()["error"]) from None
    finally:
        runtime.close()
    click.echo(f"Created {'admin' if admin else 'staff'} account {created.user.username}.")
    if not password_stdin:
        click.echo(f"Password: {created.password}")


if __name__ == "__main__":
    main()
