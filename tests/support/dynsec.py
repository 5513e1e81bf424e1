"""Mosquitto set up as in production: no anonymous access, the dynamic-security plugin,
and an admin login created with ``mosquitto_ctrl dynsec init``."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt

from tests.support.mosquitto import Mosquitto

PLUGIN_CANDIDATES = (
    Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so"),
    Path("/usr/lib/mosquitto_dynamic_security.so"),
)
ADMIN_USER = "empfang-admin"
ADMIN_PASSWORD = "admin-secret-9f3c"


def dynsec_plugin() -> Path:
    """Where Debian's mosquitto package puts the plugin."""
    for path in PLUGIN_CANDIDATES:
        if path.exists():
            return path
    listed = subprocess.run(
        ["dpkg", "-L", "mosquitto"], capture_output=True, text=True, check=False
    ).stdout
    for line in listed.splitlines():
        if line.endswith("mosquitto_dynamic_security.so"):
            return Path(line)
    raise RuntimeError("mosquitto_dynamic_security.so not found; install Debian's mosquitto")


class DynsecMosquitto(Mosquitto):
    """A Mosquitto with ``allow_anonymous false`` and the dynamic-security plugin."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.dynsec_file = workdir / "dynamic-security.json"
        ctrl = shutil.which("mosquitto_ctrl") or "/usr/bin/mosquitto_ctrl"
        subprocess.run(
            [ctrl, "dynsec", "init", str(self.dynsec_file), ADMIN_USER, ADMIN_PASSWORD],
            check=True,
            capture_output=True,
            timeout=30,
        )
        # Started as root, Mosquitto drops to its own user, which cannot read pytest's
        # private temporary folder: keep root then (production keeps the file readable).
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
            f"plugin {dynsec_plugin()}\nplugin_opt_config_file {self.dynsec_file}\n"
            f"log_dest stderr\nlog_type error\n{stay}"
        )

    @property
    def admin_url(self) -> str:
        """mqtt://ADMIN:PASSWORD@127.0.0.1:PORT, the hub's login."""
        return self.url_for(ADMIN_USER, ADMIN_PASSWORD)

    def url_for(self, username: str, password: str) -> str:
        """The broker URL with a login."""
        return f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"


@dataclass
class Session:
    """A logged-in paho client that records messages, disconnects and CONNACK codes."""

    client: mqtt.Client
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    connacks: list[str] = field(default_factory=list)
    disconnects: list[float] = field(default_factory=list)
    suback: list[list[int]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait(self, check: object, timeout: float = 5.0, what: str = "condition") -> None:
        """Wait (bounded) until ``check()`` is true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not check():  # type: ignore[operator]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {what}; messages "
                        f"{self.messages[-5:]}, connacks {self.connacks}"
                    )
                self.cond.wait(left)

    def topics(self) -> set[str]:
        """Every topic seen so far."""
        with self.cond:
            return {topic for topic, _payload in self.messages}

    def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the broker's answer."""
        count = len(self.suback)
        self.client.subscribe(topic, qos=1)
        self.wait(lambda: len(self.suback) > count, what=f"SUBACK for {topic}")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int, username: str, password: str, *, client_id: str | None = None, wait: bool = True
) -> Session:
    """A paho client logged in as ``username`` (with a fresh client id unless `client_id`
    is given: a device's login works only with its own); waits for the first CONNACK."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id or f"test-{username}-{uuid.uuid4().hex[:6]}",
        protocol=mqtt.MQTTv311,
    )
    client.username_pw_set(username, password)
    session = Session(client)

    def on_connect(_c: object, _u: object, _f: object, rc: mqtt.ReasonCode, _p: object) -> None:
        with session.cond:
            session.connacks.append(str(rc))
            session.cond.notify_all()

    def on_disconnect(*_args: object) -> None:
        with session.cond:
            session.disconnects.append(time.monotonic())
            session.cond.notify_all()

    def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with session.cond:
            session.messages.append((msg.topic, bytes(msg.payload)))
            session.cond.notify_all()

    def on_subscribe(_c: object, _u: object, _mid: int, codes: list, _p: object) -> None:
        with session.cond:
            session.suback.append([int(getattr(c, "value", c)) for c in codes])
            session.cond.notify_all()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.reconnect_delay_set(1, 1)
    client.connect_async("127.0.0.1", port, keepalive=10)
    client.loop_start()
    if wait:
        session.wait(lambda: session.connacks, what="CONNACK")
    return session
