"""`empfang-kiosk enroll` against a tiny local HTTP server standing in for the hub."""

from __future__ import annotations

import json
import stat
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kiosk.cli import main
from kiosk.config import load_config

ANSWER = {
    "device": "kiosk-rathaus",
    "kind": "kiosk",
    "site": "default",
    "broker": {
        "host": "127.0.0.1",
        "port": 1883,
        "tls": False,
        "username": "default.kiosk-rathaus",
        "password": "s3cr/t",
    },
    "ca_cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


@pytest.fixture
def hub() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"path": self.path, **body})
            ok = body.get("code") == "K7QM-2XPA"
            data = json.dumps(ANSWER if ok else {"error": "unknown code"}).encode()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_enroll_stores_the_login_privately_and_keeps_other_settings(
    hub: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = hub
    path = tmp_path / "kiosk.toml"
    path.write_text('camera = "v4l2:/dev/video0"\n[gpio]\ncall_button = 5\n')
    assert main(["enroll", "--hub", url + "/", "--code", "K7QM-2XPA", "--config", str(path)]) == 0
    assert received == [{"path": "/api/v1/devices/enroll", "code": "K7QM-2XPA", "kind": "kiosk"}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ca = tmp_path / "kiosk-ca.pem"
    assert stat.S_IMODE(ca.stat().st_mode) == 0o600
    assert ca.read_text() == ANSWER["ca_cert"]
    data = tomllib.loads(path.read_text())
    assert data["camera"] == "v4l2:/dev/video0" and data["gpio"] == {"call_button": 5}
    config = load_config(path)
    assert (config.hub, config.device, config.site) == (url, "kiosk-rathaus", "default")
    assert config.broker is not None and config.broker.password == "s3cr/t"
    assert config.ca_file == str(ca)


def test_a_refused_code_writes_nothing(
    hub: tuple[str, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = hub
    path = tmp_path / "kiosk.toml"
    assert main(["enroll", "--hub", url, "--code", "WRONG", "--config", str(path)]) == 3
    assert "unknown code" in capsys.readouterr().err
    assert not path.exists()


def test_run_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('hub = "nope"\ndevice = "k"\n')
    assert main(["run", "--config", str(path)]) == 2
