"""`empfang-display run` with the HDMI window (pywebview, Qt) under Xvfb, against the real hub."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import create_room
from tests.display.procs import DisplayProcess, display_env
from tests.support.mosquitto import Mosquitto
from tests.support.xvfb import Xvfb

SHOTS = Path(__file__).resolve().parents[2] / "shots"


class WallClock:
    """The real time: the display process runs on it, so the hub must stamp with it too."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def clock() -> WallClock:  # overrides the hub's standing clock for this module
    return WallClock()


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[Xvfb]:
    server = Xvfb(tmp_path / "xvfb.log", 1280, 800)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _share(path: Path, colour: tuple[int, int, int]) -> float:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        counts = rgb.getcolors(maxcolors=1 << 24) or []
        return sum(n for n, c in counts if c == colour) / (rgb.width * rgb.height)


def _screen_shows(
    xvfb: Xvfb, name: str, colour: tuple[int, int, int], share: float, timeout: float
) -> Path:
    """Screenshots until ``colour`` covers at least ``share`` of the screen."""
    deadline = time.monotonic() + timeout
    path = SHOTS / f"display-hdmi-{name}.png"
    while True:
        xvfb.screenshot(path)
        seen = _share(path, colour)
        if seen >= share:
            return path
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{name}: {colour} covers {seen:.0%} of the screen after {timeout}s"
            )
        time.sleep(0.2)


def test_hdmi_window_follows_the_hub_and_stops_cleanly(
    tmp_path: Path,
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: object,
    xvfb: Xvfb,
) -> None:
    client, token = admin_client
    create_room(client, token, "sozialamt-2", name="Sozialamt – Beratung 2")
    config = tmp_path / "display.toml"
    config.write_text(
        f'broker = "{mosquitto.url}"\ndevice = "flur-1"\nrooms = ["sozialamt-2"]\n'
        'outputs = ["hdmi"]\n',
        encoding="utf-8",
    )
    env = display_env(DISPLAY=xvfb.display, QTWEBENGINE_CHROMIUM_FLAGS="--no-sandbox")
    proc = DisplayProcess(["run", "--config", str(config)], env, tmp_path / "display.err")
    try:
        proc.start()
        proc.wait_for_line(r"hdmi shows: sozialamt-2=FREI$", timeout=30)
        _screen_shows(xvfb, "free", (0x0B, 0x6B, 0x2F), 0.5, 10)  # green fills the screen

        mark = proc.mark()
        response = client.post("/api/v1/rooms/sozialamt-2/checkin", headers={"X-CSRFToken": token})
        assert response.status_code == 200
        proc.wait_for_line(r"hdmi shows: sozialamt-2=BESETZT$", timeout=3, after=mark)
        busy = _screen_shows(xvfb, "busy", (0xB3, 0x12, 0x1F), 0.5, 3)
        assert _share(busy, (0x0B, 0x6B, 0x2F)) == 0

        mark = proc.mark()
        runtime.close()  # type: ignore[attr-defined]  # the hub says offline
        proc.wait_for_line(r"hdmi shows: sozialamt-2=STATUS UNBEKANNT$", timeout=3, after=mark)
        unknown = _screen_shows(xvfb, "unknown", (0xFF, 0xD2, 0x3F), 0.03, 3)  # yellow
        assert _share(unknown, (0xB3, 0x12, 0x1F)) == 0  # no stale BESETZT left anywhere

        assert proc.terminate() == 0
    finally:
        proc.cleanup()
