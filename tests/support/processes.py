"""Run `empfang-hub` as a real child process and talk to it over real HTTP."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.net import wait_for


def hub_executable() -> Path:
    """The venv's `empfang-hub` console script (next to the running interpreter)."""
    script = Path(sys.executable).parent / "empfang-hub"
    if not script.exists():
        raise AssertionError(f"{script} is missing; install the package (pip install -e .[dev])")
    return script


def hub_env(**settings: str | Path | float | int) -> dict[str, str]:
    """This process's environment without any EMPFANG_* variable, plus the given ones.

    Keyword names become EMPFANG_<NAME> (upper-cased).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMPFANG_")}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in settings.items():
        env[f"EMPFANG_{key.upper()}"] = str(value)
    return env


def run_cli(
    args: list[str],
    env: Mapping[str, str],
    stdin: str = "",
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run `empfang-hub ARGS` to completion and return its result (text output)."""
    return subprocess.run(
        [str(hub_executable()), *args],
        input=stdin,
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class HubProcess:
    """`empfang-hub ARGS` in its own process group (gunicorn master and workers).

    Standard output is read line by line on a thread (see `lines`, `wait_for_line`);
    standard error goes to `log_file`. `cleanup()` kills whatever is left of the group.
    """

    def __init__(
        self, args: list[str], env: Mapping[str, str], log_file: Path, cwd: Path | None = None
    ) -> None:
        self.args = args
        self.env = dict(env)
        self.log_file = log_file
        self.cwd = cwd
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        """The gunicorn master's pid, which is also the process group id."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> HubProcess:
        """Start the child in a new session (so its group can be killed as a whole)."""
        with self.log_file.open("ab") as log:
            log.write(f"\n--- start {' '.join(self.args)}\n".encode())
        log = self.log_file.open("ab")
        try:
            self.proc = subprocess.Popen(
                [str(hub_executable()), *self.args],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        finally:
            log.close()  # the child holds its own descriptor
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
        """Whether the master process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the child's standard error, for failure messages."""
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first stdout line matching the regex `pattern`; fail after `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or not self.running():
                    raise AssertionError(
                        f"no stdout line matching {pattern!r} within {timeout}s "
                        f"(running={self.running()}); stdout: {self.lines[-20:]}\n"
                        f"stderr: {self.log_tail()}"
                    )
                self._cond.wait(min(left, 0.2))

    def kill_group(self) -> None:
        """SIGKILL the whole process group (a crash: no clean shutdown, no offline message)."""
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.pid, signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(timeout=10)

    def terminate(self) -> None:
        """Send SIGTERM to the master (gunicorn's graceful stop)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for the master to exit and return its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        """Kill anything left of the process group and reap the master; safe to repeat."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):  # the kernel reaps SIGKILL
            self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Response:
    """Status, headers and body of one HTTP answer."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class HttpClient:
    """A tiny browser over stdlib urllib: a cookie jar, redirects followed, no exceptions
    for 4xx/5xx answers (they come back as a Response)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf_token = ""

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """Send one request and return the (final, after redirects) answer."""
        data = None
        all_headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(
            self.base_url + path, data=data, headers=all_headers, method=method
        )
        try:
            with self.opener.open(req, timeout=timeout) as answer:
                return Response(answer.status, answer.read(), dict(answer.headers))
        except urllib.error.HTTPError as exc:
            with exc:
                return Response(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, **kwargs: Any) -> Response:
        """GET `path`."""
        return self.request("GET", path, **kwargs)

    def api(self, method: str, path: str, body: Any = None) -> Response:
        """A state-changing API call carrying the session's CSRF token."""
        return self.request(
            method,
            path,
            json_body=body,
            headers={"X-CSRFToken": self.csrf_token, "Accept": "application/json"},
        )

    def log_in(self, username: str, password: str) -> str:
        """Log in through the staff form; returns (and keeps) the API CSRF token."""
        page = self.get("/staff/login")
        assert page.status == 200, page.text[:500]
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match, "login page has no CSRF token"
        answer = self.request(
            "POST",
            "/staff/login",
            form={"username": username, "password": password, "csrf_token": match.group(1)},
        )
        assert answer.status == 200, f"login failed: {answer.status} {answer.text[:500]}"
        info = self.get("/api/v1/session").json()
        assert info["user"] is not None, f"not logged in after the form: {info}"
        assert info["user"]["username"] == username
        self.csrf_token = info["csrf_token"]
        return self.csrf_token


def wait_healthy(hub: HubProcess, base_url: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll GET /healthz until it answers 200; returns its JSON body."""
    client = HttpClient(base_url)

    def healthy() -> dict[str, Any] | None:
        if not hub.running():
            raise AssertionError(
                f"hub exited with {hub.proc and hub.proc.poll()}:\n{hub.log_tail()}"
            )
        try:
            answer = client.get("/healthz", timeout=2)
        except OSError:
            return None  # not listening yet
        return answer.json() if answer.status == 200 else None

    try:
        return wait_for(healthy, timeout, 0.1, f"{base_url}/healthz to answer 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nhub stderr:\n{hub.log_tail()}") from None
