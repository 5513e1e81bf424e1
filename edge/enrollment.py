"""Device enrollment, the device's side: trade a one-time code for an id and a broker login.

``POST /api/v1/devices/enroll {"code", "kind"}`` answers ``{"device", "site", "broker":
{"host", "port", "tls", "username", "password", "client_id"}, "ca_cert"}``. The answer goes
into the device's TOML configuration file, written atomically with mode 0600 (it holds the
broker password), with the CA certificate next to it (also 0600); the device's other
settings already in the file are kept. The login works only with the client id the hub
bound to it; the device derives the same one from its id (``protocol/clientid.py``), so the
file does not hold it, and an answer naming another one is refused.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import tomli_w

from protocol.clientid import device_client_id
from protocol.topics import is_slug

ENROLL_PATH = "/api/v1/devices/enroll"
# Keys the enrollment owns; they come first in the file.
OWNED = ("hub", "device", "site", "broker", "ca_file")


class EnrollError(Exception):
    """The enrollment failed; nothing was written. The message says why."""


def hub_address(value: str) -> str:
    """The hub's base URL (http or https), without a trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnrollError(f"--hub: {value!r} is not an address like https://empfang.example")
    return value.rstrip("/")


def read_existing(path: Path, kind: str = "device") -> dict[str, Any]:
    """The configuration already in ``path`` (empty when there is none)."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except PermissionError:
        raise EnrollError(f"{path} is not readable (run as the {kind}'s user or root)") from None
    except tomllib.TOMLDecodeError as exc:
        raise EnrollError(f"{path} is not valid TOML, fix it first: {exc}") from None


def request_enrollment(hub: str, code: str, kind: str, *, timeout: float = 15.0) -> dict[str, Any]:
    """POST the code to the hub; its answer, checked field by field."""
    body = json.dumps({"code": code, "kind": kind}).encode()
    request = urllib.request.Request(
        hub + ENROLL_PATH,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        raise EnrollError(f"the hub refused the enrollment: {message} (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollError(f"cannot reach the hub at {hub}: {reason}") from None
    except ValueError:
        raise EnrollError("the hub's answer is not JSON") from None
    return _checked(answer)


def _checked(answer: object) -> dict[str, Any]:
    def fail(field: str) -> EnrollError:
        return EnrollError(f"the hub's answer has no valid {field!r}")

    if not isinstance(answer, dict):
        raise fail("body")
    for field in ("device", "site"):
        if not isinstance(answer.get(field), str) or not is_slug(answer[field]):
            raise fail(field)
    broker = answer.get("broker")
    if not isinstance(broker, dict):
        raise fail("broker")
    for field in ("host", "username", "password"):
        if not isinstance(broker.get(field), str) or not broker[field]:
            raise fail(f"broker.{field}")
    port = broker.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise fail("broker.port")
    if not isinstance(broker.get("tls"), bool):
        raise fail("broker.tls")
    # A hub before client ids were bound leaves it out; any other id would be refused later.
    expected = device_client_id(answer["site"], answer["device"])
    if broker.get("client_id", expected) != expected:
        raise EnrollError(
            f"the hub binds the client id {broker['client_id']!r}, this device connects as "
            f"{expected!r}: update the hub and the device to the same release"
        )
    if not isinstance(answer.get("ca_cert") or "", str):
        raise fail("ca_cert")
    return answer


def broker_url(broker: Mapping[str, Any]) -> str:
    """mqtt[s]://user:password@host:port with the login percent-encoded."""
    scheme = "mqtts" if broker["tls"] else "mqtt"
    host = str(broker["host"])
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    user, password = quote(broker["username"], safe=""), quote(broker["password"], safe="")
    return f"{scheme}://{user}:{password}@{host}:{broker['port']}"


def enrolled_config(
    existing: Mapping[str, Any],
    hub: str,
    answer: Mapping[str, Any],
    ca_file: Path | None,
    dropped: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The new configuration: the enrollment's keys first, the device's settings kept
    (except the `dropped` keys, which the hub takes over)."""
    data: dict[str, Any] = {
        "hub": hub,
        "device": answer["device"],
        "site": answer["site"],
        "broker": broker_url(answer["broker"]),
    }
    if ca_file is not None:
        data["ca_file"] = str(ca_file)
    for key, value in existing.items():
        if key not in OWNED and key not in dropped:
            data[key] = value
    return data


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; the file is readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def enroll(
    hub: str, code: str, path: Path, kind: str, dropped: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Enroll this device of `kind` and write its configuration to ``path``; the new
    settings."""
    hub = hub_address(hub)
    # Before the code is spent: a file we could not rewrite faithfully stops us here.
    existing = read_existing(path, kind)
    sample = {"device": "d", "site": "s", "broker": {"host": "h", "port": 1, "tls": False,
              "username": "u", "password": "p"}}  # fmt: skip
    _faithful(enrolled_config(existing, hub, sample, None, dropped))
    answer = request_enrollment(hub, code, kind)
    ca_cert = str(answer.get("ca_cert") or "")
    ca_file = path.with_name(f"{path.stem}-ca.pem") if ca_cert.strip() else None
    data = enrolled_config(existing, hub, answer, ca_file, dropped)
    text = _faithful(data)
    if ca_file is not None:
        write_private(ca_file, ca_cert)
    write_private(path, text)
    return data


def _faithful(data: Mapping[str, Any]) -> str:
    """The TOML text of ``data``, checked to read back as the same document."""
    text = dump_toml(data)
    try:
        same = tomllib.loads(text) == data
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise EnrollError("the configuration cannot be rewritten faithfully (unusual values?)")
    return text


def dump_toml(data: Mapping[str, Any]) -> str:
    """The TOML text of a device's configuration; EnrollError for a value TOML cannot hold."""
    try:
        return tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:
        raise EnrollError(f"the configuration cannot be written as TOML: {exc}") from None
