"""`empfang-display` as a command: light imports, exit codes, clean stops, preview."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocol import topics
from protocol.payloads import DeviceState, HubState, RoomState, RoomStatus
from tests.display.conftest import count_red
from tests.display.procs import DisplayProcess, display_env, display_executable
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_never_imports_flask_or_the_hub() -> None:
    result = _python(
        "import sys, display.cli, display.service, display.leds, display.epaper, "
        "display.panels, display.hdmi, display.mqtt_client\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('flask', 'hub', 'werkzeug', 'sqlalchemy', 'webview', 'PyQt6'))\n"
        "assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def test_led_mode_imports_neither_pillow_nor_qt() -> None:
    result = _python(
        "import sys, display.cli, display.service, display.leds\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PIL', 'webview', 'PyQt6'))\n"
        "assert not bad, bad"
    )
    assert result.returncode == 0, result.stderr


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(display_executable()), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or display_env(),
        check=False,
    )


def test_configuration_errors_exit_2(tmp_path: Path) -> None:
    missing = _run(["run", "--config", str(tmp_path / "nope.toml")])
    assert missing.returncode == 2
    assert "configuration error: config:" in missing.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('broker = "mqtt://h"\ndevice = "d"\nrooms = ["Raum 1"]\n', encoding="utf-8")
    result = _run(["run", "--config", str(bad)])
    assert result.returncode == 2
    assert "rooms[0]: must be a slug" in result.stderr
    # The environment variable names the file when --config is not given.
    result = _run(["run"], env=display_env(EMPFANG_DISPLAY_CONFIG=str(bad)))
    assert result.returncode == 2 and "rooms[0]" in result.stderr


def _publish_retained(url: str, topic: str, payload: bytes) -> None:
    with Watcher(url, topic) as client:
        client.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)


def _busy_now(room: str = "raum-1", seq: int = 4) -> bytes:
    now = datetime.now(UTC)
    return RoomStatus(room, "Raum 1", RoomState.BUSY, 1, 0, now, seq, now, 90).to_json()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_led_mode_runs_in_the_foreground_and_stops_cleanly(
    tmp_path: Path, mosquitto: Mosquitto, stop: signal.Signals
) -> None:
    _publish_retained(mosquitto.url, topics.hub_state("default"), HubState("online").to_json())
    config = tmp_path / "display.toml"
    config.write_text(
        f'broker = "{mosquitto.url}"\ndevice = "tuer-7"\nrooms = ["raum-1"]\n'
        'outputs = ["leds"]\n[leds]\nred = 17\ngreen = 27\nblue = 22\n',
        encoding="utf-8",
    )
    env = display_env(GPIOZERO_PIN_FACTORY="mock", GPIOZERO_MOCK_PIN_CLASS="mockpwmpin")
    proc = DisplayProcess(["run", "--timings", "--config", str(config)], env, tmp_path / "err")
    with Watcher(mosquitto.url, topics.device_state("default", "tuer-7")) as device:
        try:
            proc.start()
            proc.wait_for_line(r"connected to broker", timeout=15)
            online = DeviceState.parse(device.wait(lambda m: bool(m.payload), 10).payload)
            assert (online.state, online.kind) == ("online", "display")
            _publish_retained(mosquitto.url, topics.room_status("default", "raum-1"), _busy_now())
            proc.wait_for_line(r"latency leds [0-9.]+ ms", timeout=5)
            device.clear()
            proc.proc.send_signal(stop)  # type: ignore[union-attr]
            assert proc.proc.wait(timeout=15) == 0  # type: ignore[union-attr]
            proc.wait_for_line(f"stopping on {stop.name}", timeout=1)
            offline = DeviceState.parse(device.wait(lambda m: bool(m.payload), 5).payload)
            assert offline.state == "offline"
        finally:
            proc.cleanup()


def test_preview_writes_the_epaper_image(tmp_path: Path, mosquitto: Mosquitto) -> None:
    _publish_retained(mosquitto.url, topics.hub_state("default"), HubState("online").to_json())
    _publish_retained(mosquitto.url, topics.room_status("default", "raum-1"), _busy_now())
    config = tmp_path / "display.toml"
    config.write_text(
        f'broker = "{mosquitto.url}"\ndevice = "tuer-8"\nrooms = ["raum-1"]\n'
        'outputs = ["epaper"]\n[epaper]\npanel = "png:/nonexistent/unused.png"\n',
        encoding="utf-8",
    )
    out = tmp_path / "preview.png"
    result = _run(["preview", "--config", str(config), "--out", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "raum-1 busy" in result.stdout
    assert count_red(out) > 800 * 480 * 0.2
