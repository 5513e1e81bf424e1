"""Hub settings from EMPFANG_* environment variables and an optional TOML file."""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol.topics import check_discovery_prefix, check_slug

ENV_PREFIX = "EMPFANG_"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything the hub needs to start; immutable once loaded."""

    instance_path: Path
    database_url: str = ""
    mqtt_url: str = ""
    embedded_mqtt_port: int = 1883
    site: str = "default"
    secret_key: str = ""
    timezone: str = "Europe/Berlin"
    status_ttl: int = 90
    tick_seconds: float = 1.0
    # Seconds the broker may leave the hub's probe unanswered before /healthz calls it down.
    broker_timeout: float = 5.0
    public_url: str = ""
    trusted_proxies: int = 0
    retention_hours: float = 24.0
    ticket_rate: int = 5
    privacy_notice_de: str = ""
    privacy_notice_en: str = ""
    stun_urls: str = ""
    turn_urls: str = ""
    turn_secret: str = ""
    # Documents shared in calls: how many and how many MB per call, the MB the disk keeps free.
    documents_per_call: int = 20
    documents_mb_per_call: int = 100
    documents_min_free_mb: int = 500
    image_max_megapixels: float = 40.0  # larger pictures are refused (image bombs)
    # Devices (enrollment and per-device broker access).
    broker_admin: str = "auto"
    device_broker_url: str = ""
    device_ca_file: str = ""
    enroll_rate: int = 10
    # Home Assistant discovery of every room's occupancy under this prefix ("" for none).
    home_assistant_prefix: str = "homeassistant"
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        """The site's time zone for opening hours."""
        return ZoneInfo(self.timezone)

    @property
    def embedded_broker(self) -> bool:
        """True when no broker URL is configured and the hub brings its own."""
        return not self.mqtt_url

    @property
    def effective_mqtt_url(self) -> str:
        """The broker the hub connects to (the embedded one when none is configured)."""
        return self.mqtt_url or f"mqtt://127.0.0.1:{self.embedded_mqtt_port}"

    @property
    def broker_admin_backend(self) -> str:
        """Where device credentials go: "dynsec" (Mosquitto) or "none" (no broker ACLs).

        "auto" means dynsec when the hub logs in to an external broker (production has
        anonymous access off), none for the embedded broker or an anonymous one.
        """
        if self.broker_admin != "auto":
            return self.broker_admin
        if self.embedded_broker or not urlsplit(self.mqtt_url).username:
            return "none"
        return "dynsec"


_INT_FIELDS = {
    "embedded_mqtt_port",
    "status_ttl",
    "trusted_proxies",
    "ticket_rate",
    "enroll_rate",
    "documents_per_call",
    "documents_mb_per_call",
    "documents_min_free_mb",
}
_FLOAT_FIELDS = {"tick_seconds", "retention_hours", "broker_timeout", "image_max_megapixels"}


def _coerce(name: str, value: Any) -> Any:
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be a whole number") from None
    if name in _FLOAT_FIELDS:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be a number") from None
    if not isinstance(value, str):
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}: must be text")
    return value


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"EMPFANG_CONFIG: {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"EMPFANG_CONFIG: {path} is not valid TOML: {exc}") from None
    hub = data.get("hub", data)
    if not isinstance(hub, dict):
        raise ConfigError("EMPFANG_CONFIG: [hub] must be a table")
    return hub


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    instance_path: Path | None = None,
) -> Settings:
    """Read settings: defaults < TOML file (EMPFANG_CONFIG) < environment < overrides."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Settings)} - {"instance_path", "extra"}
    values: dict[str, Any] = {}
    config_file = env.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        for key, value in _from_toml(Path(config_file)).items():
            if key in known:
                values[key] = _coerce(key, value)
    for key in known:
        raw = env.get(f"{ENV_PREFIX}{key.upper()}")
        if raw is not None and raw != "":
            values[key] = _coerce(key, raw)
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(key, value)
    inst = instance_path or Path(env.get(f"{ENV_PREFIX}INSTANCE_PATH") or Path.cwd() / "instance")
    settings = Settings(instance_path=Path(inst), **values)
    return validate(settings)


def validate(settings: Settings) -> Settings:
    """Check every setting, filling in the derived defaults."""
    try:
        check_slug(settings.site, "EMPFANG_SITE")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        settings.zone  # noqa: B018 - resolving it is the check
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"EMPFANG_TIMEZONE: unknown time zone {settings.timezone!r}") from None
    if not 1 <= settings.embedded_mqtt_port <= 65535:
        raise ConfigError("EMPFANG_EMBEDDED_MQTT_PORT: must be 1..65535")
    if not 3 <= settings.status_ttl <= 86400:
        raise ConfigError("EMPFANG_STATUS_TTL: must be 3..86400 seconds")
    if not 1 <= settings.broker_timeout <= 300:
        raise ConfigError("EMPFANG_BROKER_TIMEOUT: must be 1..300 seconds")
    if not 0 < settings.retention_hours <= 24 * 365:
        raise ConfigError("EMPFANG_RETENTION_HOURS: must be more than 0 and at most a year")
    if not 1 <= settings.ticket_rate <= 100000:
        raise ConfigError("EMPFANG_TICKET_RATE: must be 1..100000 tickets per address per 10 min")
    if not 0 <= settings.trusted_proxies <= 5:
        raise ConfigError("EMPFANG_TRUSTED_PROXIES: must be 0..5")
    if settings.mqtt_url and not settings.mqtt_url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError("EMPFANG_MQTT_URL: must start with mqtt:// or mqtts://")
    if settings.broker_admin not in ("auto", "dynsec", "none"):
        raise ConfigError("EMPFANG_BROKER_ADMIN: must be auto, dynsec or none")
    if settings.broker_admin == "dynsec" and not urlsplit(settings.mqtt_url).username:
        raise ConfigError(
            "EMPFANG_BROKER_ADMIN: dynsec needs EMPFANG_MQTT_URL with the login of the "
            "dynamic-security plugin's admin (mqtt://user:password@host:port)"
        )
    if settings.device_broker_url and not settings.device_broker_url.startswith(
        ("mqtt://", "mqtts://")
    ):
        raise ConfigError("EMPFANG_DEVICE_BROKER_URL: must start with mqtt:// or mqtts://")
    if settings.home_assistant_prefix:
        try:
            check_discovery_prefix(settings.home_assistant_prefix, "EMPFANG_HOME_ASSISTANT_PREFIX")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if not 1 <= settings.enroll_rate <= 10000:
        raise ConfigError("EMPFANG_ENROLL_RATE: must be 1..10000 attempts per address per 10 min")
    if not 1 <= settings.documents_per_call <= 1000:
        raise ConfigError("EMPFANG_DOCUMENTS_PER_CALL: must be 1..1000")
    if not 1 <= settings.documents_mb_per_call <= 100000:
        raise ConfigError("EMPFANG_DOCUMENTS_MB_PER_CALL: must be 1..100000 MB")
    if settings.documents_min_free_mb < 0:
        raise ConfigError("EMPFANG_DOCUMENTS_MIN_FREE_MB: must be 0 MB or more")
    if not 0.1 <= settings.image_max_megapixels <= 1000:
        raise ConfigError("EMPFANG_IMAGE_MAX_MEGAPIXELS: must be 0.1..1000 megapixels")
    if not settings.database_url:
        db_file = settings.instance_path / "empfang.db"
        settings = replace(settings, database_url=f"sqlite:///{db_file}")
    return settings


def ensure_secret_key(settings: Settings) -> Settings:
    """Return settings with a secret key, generating one in the instance folder once."""
    if settings.secret_key:
        return settings
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    key_file = settings.instance_path / "secret_key"
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # another hub process wrote it first
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return replace(settings, secret_key=key_file.read_text().strip())
