"""Where and how to reach the MQTT broker: one parser of mqtt:// and mqtts:// URLs for the
hub and every device."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

EXAMPLE = "mqtt://user:pass@host:1883"


class BrokerUrlError(ValueError):
    """A broker URL that cannot be used; the message starts with the setting's name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class BrokerAddress:
    """Where and how to reach the broker, from an mqtt:// or mqtts:// URL."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: object, field: str = "broker") -> BrokerAddress:
        """Parse mqtt[s]://[user:pass@]host[:port], or raise BrokerUrlError naming `field`."""
        if not isinstance(url, str):
            raise BrokerUrlError(field, f"must be a URL like {EXAMPLE}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise BrokerUrlError(field, "is not a valid URL (check the port)") from None
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise BrokerUrlError(field, f"must be a URL like {EXAMPLE} (or mqtts://)")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )
