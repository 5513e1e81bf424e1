"""A throwaway PostgreSQL server (initdb + pg_ctl) on a free loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_for, wait_port

SYSTEM_USER = "postgres"


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres; fails the test when missing."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    pytest.fail(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) are not installed; "
        "install them with the project's test command (apt-get install postgresql)",
        pytrace=False,
    )


class PostgresServer:
    """initdb into a fresh temp directory, then `pg_ctl start` with trust auth.

    PostgreSQL refuses to run as root, so under root the data directory is handed to the
    `postgres` system user and the tools run through `runuser`. The directory lives outside
    pytest's tmp_path because that one is private to root (mode 0700).
    """

    def __init__(self, port: int) -> None:
        self.bindir = find_bindir()
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="empfang-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0
        self._started = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `postgres` database as the `postgres` superuser."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", SYSTEM_USER, "--", *cmd]
        # Output goes to a file, never a pipe: the postmaster would inherit the pipe.
        with (self.root / "tools.log").open("ab") as out:
            result = subprocess.run(
                cmd,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=timeout,
                check=False,
            )
        if result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} failed ({result.returncode}):\n{self.diagnostics()}"
            )

    def diagnostics(self) -> str:
        """The tools' and the server's output, for failure messages."""
        parts = []
        for name in ("tools.log", "server.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def start(self) -> None:
        """Create the cluster and start the server; returns once it accepts queries."""
        self.sockets.mkdir()
        if self._as_root:
            shutil.chown(self.root, SYSTEM_USER, SYSTEM_USER)
            shutil.chown(self.sockets, SYSTEM_USER, SYSTEM_USER)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        self._started = True
        wait_port(self.port, timeout=30)
        wait_for(
            self._accepts_queries,
            timeout=30,
            interval=0.1,
            message=f"PostgreSQL on port {self.port}",
        )

    def _accepts_queries(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user="postgres",
                dbname="postgres",
                connect_timeout=2,
            ) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Stop the server at once (-m immediate) and delete its directory; safe to repeat."""
        try:
            if self._started:
                self._started = False
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test module, stopped at its end."""
    server = PostgresServer(free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
