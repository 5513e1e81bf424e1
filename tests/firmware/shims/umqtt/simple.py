"""Host stand-in for micropython-lib's `umqtt.simple`, on paho-mqtt and a real broker.

micropython-lib is not published as a CPython package, so on the host this adapter is
the device library. It offers the same `MQTTClient` API (`connect(clean_session,
timeout)`, `set_last_will`, `set_callback`, `subscribe`, `publish(retain, qos)`,
`check_msg`, `wait_msg`, `ping`, `disconnect`; the callback gets `topic: bytes, msg:
bytes`) and keeps the library's blocking behaviour, which is what the firmware has to
survive:

- `client.sock` is a socket-like stream with `read`, `write`, `setblocking`,
  `settimeout` and `close`. Every incoming packet shows up as one `read(1)` of its type
  byte, exactly like the first byte umqtt.simple reads; `read` returns None when a
  non-blocking read finds nothing, b"" once the connection is gone, and raises
  OSError(ETIMEDOUT) when a read with a timeout runs out.
- `wait_msg()` reads one packet, then calls `sock.setblocking(True)`, as umqtt.simple
  does; a PINGRESP returns None, a PUBLISH calls the callback.
- `publish(qos=1)` and `subscribe()` loop over `wait_msg()` until their PUBACK/SUBACK.
- closing the socket without `disconnect()` drops the TCP connection, so the broker
  publishes the last will.

A read in blocking mode without any timeout would hang the device until its watchdog
resets it; here it fails the test after BLOCKING_LIMIT_S instead.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

BLOCKING_LIMIT_S = 30.0

PUBLISH = b"\x30"
PUBACK = b"\x40"
SUBACK = b"\x90"
PINGRESP = b"\xd0"


class MQTTException(Exception):
    pass


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _payload(value: str | bytes) -> bytes:
    if isinstance(value, str):
        # umqtt.simple sizes the packet with len(msg): a str with non-ASCII characters
        # would be sent with a wrong length on the device.
        if not value.isascii():
            raise AssertionError("umqtt.simple would mis-size a non-ASCII str payload")
        return value.encode()
    return bytes(value)


class _Stream:
    """The adapter's `sock`: the packet stream, one type byte per packet."""

    def __init__(self, owner: MQTTClient) -> None:
        self._owner = owner
        self.timeout: float | None = None  # None blocks without limit, 0 never blocks
        self.closed = False

    def setblocking(self, flag: bool) -> None:
        self.timeout = None if flag else 0

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def read(self, n: int = 1) -> bytes | None:
        return self._owner._read_packet(self.timeout)

    def write(self, data: bytes, n: int | None = None) -> int:
        # The device's umqtt.simple writes packets itself; here paho does, so only the
        # two fixed packets the library writes directly are understood.
        chunk = bytes(data[:n] if n is not None else data)
        if chunk == b"\xc0\x00":
            self._owner.ping()
        elif chunk == b"\xe0\x00":
            self._owner.disconnect()
        else:
            raise NotImplementedError("raw writes are not supported by the host adapter")
        return len(chunk)

    def close(self) -> None:
        self.closed = True
        self._owner._drop()


class MQTTClient:
    def __init__(
        self,
        client_id: str | bytes,
        server: str,
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        keepalive: int = 0,
        ssl: Any = None,
    ) -> None:
        if port == 0:
            port = 8883 if ssl else 1883
        self.client_id = client_id
        self.server = server
        self.port = port
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.sock: Any = None
        self.cb: Callable[[bytes, bytes], None] | None = None
        self.lw_topic: str | bytes | None = None
        self.lw_msg: str | bytes | None = None
        self.lw_qos = 0
        self.lw_retain = False
        self._paho: mqtt.Client | None = None
        self._packets: deque[tuple[bytes, Any]] = deque()
        self._current: Any = None
        self._connack: tuple[Any, int] | None = None
        self._gone = False
        self._qos1: set[int] = set()

    # --- umqtt.simple API ------------------------------------------------------------

    def set_callback(self, f: Callable[[bytes, bytes], None]) -> None:
        self.cb = f

    def set_last_will(
        self, topic: str | bytes, msg: str | bytes, retain: bool = False, qos: int = 0
    ) -> None:
        assert 0 <= qos <= 2
        assert topic
        self.lw_topic = topic
        self.lw_msg = msg
        self.lw_qos = qos
        self.lw_retain = retain

    def connect(self, clean_session: bool = True, timeout: float | None = None) -> int:
        if self.ssl:
            raise NotImplementedError("TLS is not exercised by the host adapter")
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=_text(self.client_id),
            clean_session=clean_session,
            protocol=mqtt.MQTTv311,
        )
        if self.user:
            client.username_pw_set(_text(self.user), _text(self.pswd or ""))
        if self.lw_topic:
            client.will_set(
                _text(self.lw_topic), _payload(self.lw_msg or b""), self.lw_qos, self.lw_retain
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_log = self._on_log
        client.connect_timeout = timeout if timeout else BLOCKING_LIMIT_S
        self._paho = client
        self._gone = False
        self.sock = _Stream(self)
        self.sock.settimeout(timeout)
        try:
            client.connect(self.server, self.port, keepalive=self.keepalive)
        except OSError:
            self._drop()
            raise
        deadline = time.monotonic() + (timeout if timeout else BLOCKING_LIMIT_S)
        while self._connack is None:
            if self._gone:
                raise OSError(errno.ECONNRESET, "connection closed before CONNACK")
            if time.monotonic() >= deadline:
                self._drop()
                if timeout:
                    raise OSError(errno.ETIMEDOUT, "no CONNACK")
                raise AssertionError("connect() without timeout would hang the device")
            self._pump(0.01)
        reason, session_present = self._connack
        if reason.is_failure:
            self._drop()
            raise MQTTException(reason.value)
        return session_present

    def disconnect(self) -> None:
        client = self._paho
        if client is None or self._gone:
            raise OSError(errno.EPIPE, "not connected")
        client.disconnect()
        deadline = time.monotonic() + 1
        while not self._gone and time.monotonic() < deadline:
            self._pump(0.01)
        self._drop()

    def ping(self) -> None:
        client = self._paho
        sock = client.socket() if client is not None and not self._gone else None
        if sock is None:
            raise OSError(errno.EPIPE, "not connected")
        sock.send(b"\xc0\x00")  # PINGREQ, written to the socket as umqtt.simple does

    def publish(
        self, topic: str | bytes, msg: str | bytes, retain: bool = False, qos: int = 0
    ) -> None:
        client = self._paho
        if client is None or self._gone:
            raise OSError(errno.EPIPE, "not connected")
        if qos == 2:
            raise AssertionError("umqtt.simple does not support QoS 2")
        info = client.publish(_text(topic), _payload(msg), qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(errno.EPIPE, f"publish failed: {info.rc}")
        if qos == 1:
            self._qos1.add(info.mid)
        self._pump(0)
        if qos == 1:
            while True:
                op = self.wait_msg()
                if op == 0x40 and self._current == info.mid:
                    return

    def subscribe(self, topic: str | bytes, qos: int = 0) -> None:
        assert self.cb is not None, "Subscribe callback is not set"
        client = self._paho
        if client is None or self._gone:
            raise OSError(errno.EPIPE, "not connected")
        rc, mid = client.subscribe(_text(topic), qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(errno.EPIPE, f"subscribe failed: {rc}")
        while True:
            op = self.wait_msg()
            if op == 0x90:
                got, failed = self._current
                if got == mid:
                    if failed:
                        raise MQTTException(0x80)
                    return

    def wait_msg(self) -> int | None:
        res = self.sock.read(1)
        self.sock.setblocking(True)
        if res is None:
            return None
        if res == b"":
            raise OSError(-1)
        if res == PINGRESP:
            return None
        op = res[0]
        if res != PUBLISH:
            return op
        topic, msg, qos = self._current
        assert self.cb is not None
        self.cb(topic, msg)
        return op | (qos << 1)

    def check_msg(self) -> int | None:
        self.sock.setblocking(False)
        return self.wait_msg()

    # --- test helper -----------------------------------------------------------------

    def is_open(self) -> bool:
        """Whether the TCP connection is still up (a test helper, not umqtt API)."""
        return self._paho is not None and not self._gone

    # --- paho plumbing -----------------------------------------------------------------

    def _read_packet(self, timeout: float | None) -> bytes | None:
        deadline = None if not timeout else time.monotonic() + timeout
        limit = time.monotonic() + BLOCKING_LIMIT_S
        while True:
            if self._packets:
                kind, self._current = self._packets.popleft()
                return kind
            if self._gone:
                return b""
            self._pump(0 if timeout == 0 else 0.01)
            if self._packets or self._gone:
                continue
            if timeout == 0:
                return None
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise OSError(errno.ETIMEDOUT, "timed out")
            if timeout is None and now >= limit:
                raise AssertionError(
                    "a blocking read without timeout: on the device it would hang until "
                    "the watchdog resets the board"
                )

    def _pump(self, timeout: float) -> None:
        client = self._paho
        if client is None or self._gone:
            return
        rc = client.loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            self._gone = True

    def _drop(self) -> None:
        """Close the TCP connection without DISCONNECT (the broker sends the last will)."""
        self._gone = True
        client = self._paho
        if client is not None:
            client._reset_sockets()  # paho has no public "close now"

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self._connack = (reason, int(bool(flags.session_present)))

    def _on_disconnect(self, *_args: Any) -> None:
        self._gone = True

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._packets.append((PUBLISH, (msg.topic.encode(), bytes(msg.payload), msg.qos)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        if mid in self._qos1:
            self._qos1.discard(mid)
            self._packets.append((PUBACK, mid))

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        failed = any(getattr(r, "is_failure", False) for r in reasons)
        self._packets.append((SUBACK, (mid, failed)))

    def _on_log(self, _c: Any, _u: Any, _level: int, buf: str) -> None:
        if buf == "Received PINGRESP":
            self._packets.append((PINGRESP, None))
