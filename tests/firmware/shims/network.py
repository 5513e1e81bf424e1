"""Host stand-in for MicroPython's `network`: a station interface that "connects"."""

from __future__ import annotations

from typing import ClassVar

STA_IF = 0
AP_IF = 1


class WLAN:
    instances: ClassVar[list[WLAN]] = []
    # Test knobs: the first `fail_connects` connect() calls never associate.
    fail_connects = 0

    def __init__(self, interface: int = STA_IF):
        self.interface = interface
        self._active = False
        self._connected = False
        self.connects: list[tuple[str, str]] = []
        self.disconnects = 0
        self.rssi = -58
        WLAN.instances.append(self)

    def active(self, flag: bool | None = None) -> bool | None:
        if flag is None:
            return self._active
        self._active = bool(flag)
        return None

    def connect(self, ssid: str, key: str | None = None) -> None:
        if not self._active:
            raise OSError("Wifi Not Started")
        self.connects.append((ssid, key or ""))
        if WLAN.fail_connects > 0:
            WLAN.fail_connects -= 1
            return
        self._connected = True

    def isconnected(self) -> bool:
        return self._active and self._connected

    def disconnect(self) -> None:
        self.disconnects += 1
        self._connected = False

    def drop(self) -> None:
        """Test helper: the access point went away."""
        self._connected = False

    def status(self, param: str | None = None) -> int:
        if param == "rssi":
            return self.rssi
        return 1010 if self.isconnected() else 1000

    def config(self, key: str) -> bytes | str:
        if key == "mac":
            return b"\x24\x0a\xc4\x00\x00\x01"
        raise ValueError(key)


def reset_shim() -> None:
    WLAN.instances = []
    WLAN.fail_connects = 0
