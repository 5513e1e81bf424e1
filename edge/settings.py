"""Checks for the devices' TOML settings: each names the field it refuses.

Shared by the door displays and the kiosks, with reading the file itself. Standard library
only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from protocol.topics import is_slug

Pin = int | str  # a GPIO number, or a name such as "GPIO17" or "BOARD11"


class ConfigError(ValueError):
    """The configuration is missing or malformed; the message starts with the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def fail(field: str, message: str) -> NoReturn:
    """Raise ConfigError for `field`."""
    raise ConfigError(field, message)


def settings_path(
    cli_path: str | None,
    env_var: str,
    default: str | Path,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """The file to read: ``--config``, else the environment variable, else the default."""
    env = os.environ if environ is None else environ
    return Path(cli_path or env.get(env_var) or default)


def read_toml(path: Path, env_var: str) -> dict[str, Any]:
    """The parsed TOML file, or ConfigError saying why it cannot be read."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        fail("config", f"{path} does not exist (pass --config or set {env_var})")
    except PermissionError:
        fail("config", f"{path} is not readable")
    except tomllib.TOMLDecodeError as exc:
        fail("config", f"{path} is not valid TOML: {exc}")


def ca_file_exists(ca_file: str | None) -> None:
    """ConfigError when a configured CA file is missing (enrollment writes it)."""
    if ca_file is not None and not Path(ca_file).is_file():
        fail("ca_file", f"{ca_file} does not exist (enroll again, or fix the path)")


def table(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """The table `key` of `data` (None when absent), or ConfigError."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        fail(key, "must be a table")
    return value


def no_unknown(data: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
    """ConfigError for the first key of `data` that is not `allowed`."""
    for key in data:
        if key not in allowed:
            fail(f"{prefix}{key}", "unknown setting (check the spelling)")


def slug(value: object, field: str) -> str:
    """`value` if it is a slug, else ConfigError naming `field`."""
    if not isinstance(value, str) or not is_slug(value):
        fail(field, "must be a slug of 1-64 characters a-z, 0-9 and '-'")
    return value


def boolean(value: object, field: str) -> bool:
    """`value` if it is true or false, else ConfigError naming `field`."""
    if not isinstance(value, bool):
        fail(field, "must be true or false")
    return value


def number(value: object, field: str, low: float, high: float) -> float:
    """`value` as a float within [low, high], else ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        fail(field, "must be a number")
    if not low <= value <= high:
        fail(field, f"must be between {low:g} and {high:g}")
    return float(value)


def whole(value: object, field: str, low: int, high: int) -> int:
    """`value` if it is a whole number within [low, high], else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, "must be a whole number")
    if not low <= value <= high:
        fail(field, f"must be between {low} and {high}")
    return value


def choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else ConfigError naming `field`."""
    if not isinstance(value, str) or value not in choices:
        fail(field, f"must be one of {', '.join(choices)}")
    return value


def pin(value: object, field: str) -> Pin:
    """`value` as a gpiozero pin (number or name), else ConfigError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        fail(field, "must be a GPIO number like 17 or a name like 'GPIO17' or 'BOARD11'")
    if isinstance(value, int) and not 0 <= value <= 53:
        fail(field, "must be a GPIO number between 0 and 53")
    if isinstance(value, str) and not value.strip():
        fail(field, "must not be empty")
    return value
