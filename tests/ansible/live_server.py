"""Start the converged hub machine's broker, hub and nginx and talk to them.

Run by tests/ansible/test_ansible.py as
``unshare --net --pid --mount --fork --mount-proc python live_server.py ROOT``: a network
namespace of its own (only a loopback device, so nothing reaches the host's ports or the
outside), a PID namespace (every process started here ends when this script ends) and a
mount namespace (``empfang.test`` resolves to 127.0.0.1 here only). Prints one JSON line
with what it saw.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shlex
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt

NAME = "empfang.test"
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags))


def resolve_name_here() -> None:
    hosts = Path(tempfile.mkdtemp()) / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {NAME}\n")
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)


def env_value(raw: str) -> str:
    """A double-quoted EnvironmentFile value, unquoted as systemd does."""
    return re.sub(r'\\([\\"`$])', r"\1", raw[1:-1])


def wait_port(port: int, seconds: float = 40) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def mqtt_connect(port: int, username: str | None, password: str | None, ca: str | None) -> dict:
    """Connect once; the CONNACK's reason and, for the admin, the dynsec client list."""
    seen: dict = {}
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{port}-{username}")
    if username:
        client.username_pw_set(username, password)
    if ca:
        client.tls_set(ca_certs=ca)

    def on_connect(c, _u, _f, reason, _p):
        seen["connack"] = str(reason)
        seen["ok"] = not reason.is_failure
        if reason.is_failure or not username:
            done.set()
            return
        c.subscribe("$CONTROL/dynamic-security/v1/response")
        c.publish(
            "$CONTROL/dynamic-security/v1",
            json.dumps({"commands": [{"command": "listClients"}]}),
        )

    def on_message(_c, _u, message):
        answer = json.loads(message.payload)["responses"][0]
        seen["clients"] = answer.get("data", {}).get("clients")
        done.set()

    def on_connect_fail(_c, _u):
        seen["ok"] = False
        done.set()

    client.on_connect, client.on_message = on_connect, on_message
    client.on_connect_fail = on_connect_fail
    try:
        client.connect(NAME, port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return {"ok": False, "error": repr(exc)}
    client.loop_start()
    done.wait(10)
    client.disconnect()
    client.loop_stop()
    return seen


def main(root: Path) -> dict:
    loopback_up()
    resolve_name_here()
    result: dict = {}
    procs: list[subprocess.Popen] = []
    try:
        subprocess.run(
            ["chroot", str(root), "install", "-d", "-o", "mosquitto", "-m", "0740",
             "/run/mosquitto"],
            check=True,
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                ["chroot", str(root), "mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]
            )
        )
        result["mosquitto_listening"] = wait_port(1883) and wait_port(8883)

        environment = {}
        for line in (root / "etc/empfang/hub.env").read_text().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                environment[name] = env_value(value)
        unit = (root / "etc/systemd/system/empfang-hub.service").read_text()
        exec_start = next(x for x in unit.splitlines() if x.startswith("ExecStart="))
        gunicorn = shlex.split(exec_start.removeprefix("ExecStart="))
        hub_log = open(root / "tmp/gunicorn.log", "w")  # noqa: SIM115 - closed with the process
        procs.append(
            subprocess.Popen(
                ["chroot", str(root), "runuser", "-u", "empfang", "--", "env",
                 "-C", "/var/lib/empfang", *[f"{k}={v}" for k, v in environment.items()],
                 *gunicorn],
                stdout=hub_log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        procs.append(subprocess.Popen(["chroot", str(root), "nginx", "-g", "daemon off;"]))
        result["hub_listening"] = wait_port(8080) and wait_port(443)

        result["mqtt_anonymous"] = mqtt_connect(1883, None, None, None)
        result["mqtt_admin"] = mqtt_connect(1883, "empfang-hub", sys.argv[2], None)
        result["mqtt_tls_admin"] = mqtt_connect(
            8883, "empfang-hub", sys.argv[2], str(root / "etc/mosquitto/certs/broker.crt")
        )

        context = ssl.create_default_context(cafile=str(root / "etc/nginx/tls/empfang.crt"))
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://{NAME}/healthz", context=context, timeout=10
                ) as answer:
                    result["healthz"] = [answer.status, json.loads(answer.read())]
                break
            except Exception as exc:  # retried until the deadline
                result["healthz"] = repr(exc)
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)

        key = base64.b64encode(os.urandom(16)).decode()
        with (
            socket.create_connection((NAME, 443), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=NAME) as tls,
        ):
            tls.sendall(
                (
                    "GET /api/v1/reception/tickets/no-such-ticket/live HTTP/1.1\r\n"
                    f"Host: {NAME}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            result["websocket"] = tls.recv(4096).split(b"\r\n")[0].decode()
        with socket.create_connection((NAME, 80), timeout=10) as plain:
            plain.sendall(f"GET /empfang/ HTTP/1.1\r\nHost: {NAME}\r\n\r\n".encode())
            result["http"] = plain.recv(4096).decode().split("\r\n")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    if not result.get("healthz") or not isinstance(result["healthz"], list):
        result["gunicorn_log"] = (root / "tmp/gunicorn.log").read_text()[-4000:]
        result["mosquitto_log"] = (root / "var/log/mosquitto/mosquitto.log").read_text()[-2000:]
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
