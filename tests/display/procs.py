"""`empfang-display` as a real child process whose stdout lines tests can wait for."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path


def display_executable() -> Path:
    """The venv's `empfang-display` console script."""
    script = Path(sys.executable).parent / "empfang-display"
    if not script.exists():
        raise AssertionError(f"{script} is missing; install the package (pip install -e .[dev])")
    return script


def display_env(**extra: str) -> dict[str, str]:
    """This environment without EMPFANG_* variables, unbuffered, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPFANG_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class DisplayProcess:
    """`empfang-display ARGS` in its own session; stdout is collected line by line."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_file: Path) -> None:
        self.args = args
        self.env = dict(env)
        self.log_file = log_file
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> DisplayProcess:
        """Start the child."""
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(display_executable()), *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def running(self) -> bool:
        """Whether the child still runs."""
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, chars: int = 3000) -> str:
        """The end of the child's standard error."""
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def wait_for_line(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        """The first stdout line (from index ``after`` on) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    raise AssertionError(
                        f"no stdout line matching {pattern!r} within {timeout}s "
                        f"(running={self.running()}); stdout: {self.lines[-15:]}\n"
                        f"stderr: {self.stderr_tail()}"
                    )
                self._cond.wait(min(left, 0.2))

    def mark(self) -> int:
        """The number of lines so far (for wait_for_line(after=...))."""
        with self._cond:
            return len(self.lines)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        """Kill whatever is left of the session; safe to repeat."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
