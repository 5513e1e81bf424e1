"""A real X server without a screen (Xvfb) on a free display number, and screenshots of it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.net import wait_for

SOCKET_DIR = Path("/tmp/.X11-unix")


def _free_display(start: int = 90, stop: int = 400) -> int:
    for number in range(start, stop):
        if not (SOCKET_DIR / f"X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


class Xvfb:
    """`Xvfb :N -screen 0 WxHx24`; start() waits for its socket, stop() ends it."""

    def __init__(self, log_file: Path, width: int = 1280, height: int = 800) -> None:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise RuntimeError("Xvfb is not installed; run the README's test command")
        self.binary = binary
        self.size = (width, height)
        self.log_file = log_file
        self.number = -1
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def display(self) -> str:
        """The DISPLAY value, e.g. ':93'."""
        return f":{self.number}"

    def start(self) -> Xvfb:
        """Start on a free display number (retrying if another process took it first)."""
        for _attempt in range(5):
            self.number = _free_display()
            with self.log_file.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        self.binary,
                        self.display,
                        "-screen",
                        "0",
                        f"{self.size[0]}x{self.size[1]}x24",
                        "-nolisten",
                        "tcp",
                    ],
                    stdout=log,
                    stderr=log,
                )
            try:
                wait_for(self._ready_or_gone, timeout=10, message=f"Xvfb {self.display}")
            except AssertionError:
                self.stop()
                raise
            if self.proc is not None and self.proc.poll() is None:
                return self
        raise RuntimeError(f"Xvfb would not start: {self.log_file.read_text(errors='replace')}")

    def _ready_or_gone(self) -> bool:
        gone = self.proc is None or self.proc.poll() is not None
        return gone or (SOCKET_DIR / f"X{self.number}").exists()

    def env(self) -> dict[str, str]:
        """This process's environment pointed at the X server."""
        return {**os.environ, "DISPLAY": self.display}

    def screenshot(self, path: Path) -> Path:
        """Capture the whole screen with ImageMagick's `import -window root`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["import", "-window", "root", str(path)],
            env=self.env(),
            check=True,
            timeout=30,
            capture_output=True,
        )
        return path

    def stop(self) -> None:
        """Stop the server; safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
