"""The kiosk in its own process group under Xvfb, driven through its page server.

By default it is the production kiosk with test routes added: ``python -m
tests.support.kiosk_launcher run --config FILE`` (`kiosk.cli.main` with a hook that adds
``/test/click``, a real DOM click in the web view whose handler calls the pywebview bridge,
``/test/eval``, ``/test/storage`` and ``/test/video``); with ``hooks=False`` it is
``empfang-kiosk run --config FILE`` itself, as on a kiosk. ``/status`` (always there)
reports the screen and the engine's media figures. Used by tests/kiosk/test_kiosk_e2e.py,
tests/kiosk/test_production_kiosk.py and bench/kiosk_media.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.support import kiosk_launcher
from tests.support.xvfb import Xvfb

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class KioskExited(AssertionError):
    """The kiosk process ended while it was being driven."""


def until(check: Callable[[], T | None], seconds: float, what: str) -> T:
    """Poll `check` every 0.1 s until it returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
        except OSError:  # the page server is not answering (yet)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.1)


def kiosk_executable() -> Path:
    """The venv's `empfang-kiosk` console script (next to the running interpreter)."""
    script = Path(sys.executable).parent / "empfang-kiosk"
    if not script.exists():
        raise AssertionError(f"{script} is missing; install the package (pip install -e .[dev])")
    return script


class KioskProcess:
    """The kiosk (`kiosk_launcher`, or with ``hooks=False`` `empfang-kiosk`) under Xvfb."""

    def __init__(
        self,
        workdir: Path,
        config_text: str,
        ui_port: int,
        xvfb: Xvfb,
        *,
        hooks: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = ui_port
        self.config = workdir / "kiosk.toml"
        self.config.write_text(config_text)
        self.log_file = workdir / "kiosk.log"
        environment = {
            **xvfb.env(),
            "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox",
            "PYTHONUNBUFFERED": "1",
            "no_proxy": "127.0.0.1,localhost",
            **(env or {}),
        }
        if hooks:
            command = [sys.executable, "-m", kiosk_launcher.__name__]
        else:
            command = [str(kiosk_executable())]
        with self.log_file.open("wb") as out:
            self.proc = subprocess.Popen(
                [*command, "run", "--config", str(self.config)],
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The kiosk's Python process (also its process group id)."""
        return self.proc.pid

    def request(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        """GET `path` of the kiosk's page server: the status and the body, errors included."""
        if self.proc.poll() is not None:
            raise KioskExited(f"the kiosk exited with {self.proc.returncode}")
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def get(self, path: str, timeout: float = 10) -> Any:
        """GET a JSON route of the kiosk's page server; KioskExited once the kiosk has ended
        (an HTTPError, an OSError that `until` waits out, while the route is not there)."""
        if self.proc.poll() is not None:
            raise KioskExited(f"the kiosk exited with {self.proc.returncode}")
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.load(answer)

    def status(self) -> dict[str, Any]:
        """Screen and media figures."""
        return self.get("/status")

    def video(self) -> dict[str, Any]:
        """The window's video widgets: {"remote"|"preview": {shown, box, screen_box, painted}}."""
        return self.get(kiosk_launcher.VIDEO)

    def remote_painted(self) -> int:
        """Pictures of the staff's video the kiosk's window has painted so far."""
        return int(self.video().get("remote", {}).get("painted", 0))

    def js(self, script: str) -> Any:
        """Evaluate `script` in the web view (test hook)."""
        query = urllib.parse.urlencode({"js": script})
        return self.get(f"{kiosk_launcher.EVAL}?{query}")["value"]

    def click(self, selector: str) -> None:
        """A real DOM click in the web view (test hook)."""
        query = urllib.parse.urlencode({"selector": selector})
        if self.get(f"{kiosk_launcher.CLICK}?{query}")["clicked"] is not True:
            raise AssertionError(f"could not click {selector} in the kiosk")

    def storage(self) -> dict[str, Any]:
        """What the web view holds (test hook): storage lengths, cookies, resets done."""
        return self.get(kiosk_launcher.STORAGE)

    def page_screen(self) -> str | None:
        """The screen the web view's page shows."""
        return self.js("document.body.dataset.screen || null")

    def text(self) -> str:
        """The page's text as shown."""
        return str(self.js("document.body.innerText"))

    def wait_screen(self, screen: str, seconds: float = 15) -> None:
        """Until both the page and the engine show `screen`."""
        until(
            lambda: self.page_screen() == screen and self.status()["screen"] == screen,
            seconds,
            f"the kiosk's {screen} screen",
        )

    def log_text(self) -> str:
        """The kiosk's log so far ('' when there is none)."""
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the kiosk's log."""
        return self.log_text()[-chars:]

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the kiosk's process group (while the kiosk is not reaped) and reap it."""
        if self.proc.poll() is None:  # not reaped yet: the group id is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
