"""Devices: creation with a one-time enrollment code, enrollment, rooms, commands,
revocation, and the fleet's state as the devices report it over MQTT."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import validation
from hub.broker_admin import BrokerAdmin, BrokerAdminError, DeviceAccess, device_username
from hub.clock import Clock
from hub.errors import Conflict, NotFound, RuleBroken, ServiceError, ValidationError
from hub.models import DEVICE_KINDS, Device, RateEvent, Room
from protocol.broker import BrokerAddress
from protocol.payloads import DeviceCommand, DeviceConfig, DeviceState, format_time

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a screen
CODE_GROUPS, CODE_GROUP_LEN = 4, 4  # 16 characters of 5 bits: 80 bits
CODE_LIFETIME = timedelta(hours=24)
RATE_WINDOW = timedelta(minutes=10)
# A state seen this recently was recorded by another hub process hearing the same message.
SEEN_BY_ANOTHER = timedelta(seconds=2)
COMMANDS = ("reload", "identify")
MAX_NAME = 200
MAX_LOCATION = 200
MAX_ROOMS = 100


class RateLimited(ServiceError):
    """Too many enrollment attempts from one address."""

    status = 429


class EnrollmentRefused(ServiceError):
    """The code is unknown, expired, used, or its device revoked (one answer for all)."""

    status = 403


class BrokerUnavailable(ServiceError):
    """The broker did not take a change; nothing was changed, try again."""

    status = 503


class DevicePublisher(Protocol):
    """Where device configurations and commands go (the MQTT bridge)."""

    def publish_device_config(self, device: str, config: DeviceConfig) -> None:
        """Publish a device's retained configuration."""

    def publish_device_command(self, device: str, command: DeviceCommand) -> None:
        """Send a one-off command."""

    def clear_device(self, device: str) -> None:
        """Remove a device's retained topics."""


def new_code() -> str:
    """A fresh enrollment code like 'K7QM-2XPA-9RTW-HC4E'."""
    chars = [secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LEN)]
    groups = ["".join(chars[i : i + CODE_GROUP_LEN]) for i in range(0, len(chars), CODE_GROUP_LEN)]
    return "-".join(groups)


def normalize_code(code: object) -> str | None:
    """The code without separators in upper case, or None when it cannot be one."""
    if not isinstance(code, str) or len(code) > 64:
        return None
    plain = "".join(code.split()).replace("-", "").upper()
    if len(plain) != CODE_GROUPS * CODE_GROUP_LEN or any(c not in CODE_ALPHABET for c in plain):
        return None
    return plain


def hash_code(normalized: str) -> str:
    """The stored form of an enrollment code."""
    return hashlib.sha256(f"empfang-enroll:{normalized}".encode()).hexdigest()


def device_rooms(device: Device) -> list[str]:
    """The device's assigned room slugs."""
    rooms = json.loads(device.rooms_json or "[]")
    return [r for r in rooms if isinstance(r, str)]


def enrollment_state(device: Device, now: datetime) -> str:
    """revoked, enrolled, pending (a valid code is out) or expired."""
    if device.revoked:
        return "revoked"
    if device.enrolled_at is not None and device.code_spent:
        return "enrolled"
    if not device.code_spent and device.code_expires is not None and device.code_expires > now:
        return "pending"
    return "expired" if device.enrolled_at is None else "enrolled"


def device_view(device: Device, now: datetime) -> dict[str, Any]:
    """A device as the fleet view and the JSON API show it (never its code or password)."""
    return {
        "id": device.public_id,
        "kind": device.kind,
        "name": device.name,
        "location": device.location,
        "rooms": device_rooms(device),
        "enrollment": enrollment_state(device, now),
        "code_expires": format_time(device.code_expires)
        if enrollment_state(device, now) == "pending" and device.code_expires
        else None,
        "enrolled_at": format_time(device.enrolled_at) if device.enrolled_at else None,
        "revoked": device.revoked,
        "online": device.online and not device.revoked,
        "last_seen": format_time(device.last_seen) if device.last_seen else None,
        "version": device.version,
        "telemetry": json.loads(device.telemetry_json or "{}"),
    }


@dataclass(frozen=True)
class NewCode:
    """A device and its enrollment code, shown once (only its hash is stored)."""

    device: Device
    code: str
    expires: datetime


@dataclass(frozen=True)
class Enrollment:
    """What an enrolling device receives: who it is and how to reach the broker."""

    device: Device
    site: str
    broker: BrokerAddress
    username: str
    password: str
    client_id: str  # the only one the broker accepts with this login
    ca_cert: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer of the enroll endpoint."""
        scheme = "mqtts" if self.broker.tls else "mqtt"
        return {
            "device": self.device.public_id,
            "kind": self.device.kind,
            "name": self.device.name,
            "site": self.site,
            "broker": {
                "url": f"{scheme}://{self.broker.host}:{self.broker.port}",
                "host": self.broker.host,
                "port": self.broker.port,
                "tls": self.broker.tls,
                "username": self.username,
                "password": self.password,
                "client_id": self.client_id,
            },
            "ca_cert": self.ca_cert,
            # The flat form that firmware/provision.py reads for a status light.
            "device_id": self.device.public_id,
            "username": self.username,
            "password": self.password,
            "client_id": self.client_id,
            "rooms": device_rooms(self.device),
        }


class DeviceService:
    """Owns every change to devices: commits, then tells the broker and the devices."""

    def __init__(
        self,
        clock: Clock,
        site: str,
        publisher: DevicePublisher,
        broker_admin: BrokerAdmin,
        *,
        broker_url: str,
        ca_file: str = "",
        enroll_rate: int = 10,
    ) -> None:
        self.clock = clock
        self.site = site
        self.publisher = publisher
        self.broker_admin = broker_admin
        parsed = BrokerAddress.parse(broker_url)
        # Devices get the address without the hub's own login.
        self.device_broker = BrokerAddress(parsed.host, parsed.port, parsed.tls, None, None)
        self.ca_file = ca_file
        self.enroll_rate = enroll_rate

    # ---- reading ------------------------------------------------------------------
    def list_devices(
        self, db: Session, kind: str | None = None, location: str | None = None
    ) -> list[Device]:
        """Devices ordered by location and name, optionally only one kind or location."""
        stmt = select(Device)
        if kind:
            stmt = stmt.where(Device.kind == kind)
        if location:
            stmt = stmt.where(Device.location == location)
        return list(db.scalars(stmt.order_by(Device.revoked, Device.location, Device.name)))

    def locations(self, db: Session) -> list[str]:
        """Every location in use, for the filter."""
        stmt = select(Device.location).where(Device.location != "").distinct()
        return sorted(db.scalars(stmt))

    def get(self, db: Session, public_id: str) -> Device:
        """One device by id, or NotFound."""
        device = db.scalar(select(Device).where(Device.public_id == public_id))
        if device is None:
            raise NotFound(f"no device {public_id!r}", "device")
        return device

    # ---- admin changes ------------------------------------------------------------
    def check_rooms(self, db: Session, kind: str, value: object) -> list[str]:
        """Existing room slugs; a kiosk takes at most one room, of kind reception."""
        if value is None:
            value = []
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ValidationError("rooms", "must be a list of room slugs")
        if len(value) > MAX_ROOMS:
            raise ValidationError("rooms", f"must be at most {MAX_ROOMS} rooms")
        rooms: list[str] = []
        for item in value:
            slug = validation.slug(item, "rooms")
            if slug not in rooms:
                rooms.append(slug)
        if not rooms:
            return rooms
        found = {r.slug: r for r in db.scalars(select(Room).where(Room.slug.in_(rooms)))}
        for slug in rooms:
            if slug not in found:
                raise RuleBroken("rooms", f"no room {slug!r}")
        if kind == "kiosk":
            if len(rooms) > 1:
                raise RuleBroken("rooms", "a kiosk serves exactly one reception")
            if found[rooms[0]].kind != "reception":
                raise RuleBroken("rooms", f"{rooms[0]!r} is not a reception room")
        return rooms

    def create(self, db: Session, data: Mapping[str, Any]) -> NewCode:
        """Create a device and its first enrollment code (valid 24 hours)."""
        kind = validation.choice(data.get("kind"), "kind", DEVICE_KINDS)
        name = validation.text(data.get("name"), "name", max_len=MAX_NAME)
        location = validation.text(
            data.get("location"), "location", max_len=MAX_LOCATION, required=False
        )
        rooms = self.check_rooms(db, kind, data.get("rooms"))
        wanted = data.get("id")
        public_id = validation.slug(wanted, "id") if wanted else self._fresh_id(db, kind)
        if db.scalar(select(Device.id).where(Device.public_id == public_id)) is not None:
            raise Conflict(f"a device {public_id!r} exists already", "id")
        code, now = new_code(), self.clock.now()
        device = Device(
            public_id=public_id,
            kind=kind,
            name=name,
            location=location,
            rooms_json=json.dumps(rooms),
            created_at=now,
            code_hash=hash_code(str(normalize_code(code))),
            code_expires=now + CODE_LIFETIME,
            code_spent=False,
            revoked=False,
            online=False,
            telemetry_json="{}",
        )
        db.add(device)
        try:
            db.commit()
        except IntegrityError:
            db.rollback()
            raise Conflict(f"a device {public_id!r} exists already", "id") from None
        log.info("device %s (%s) created", public_id, kind)
        return NewCode(device, code, now + CODE_LIFETIME)

    def _fresh_id(self, db: Session, kind: str) -> str:
        while True:
            candidate = f"{kind}-{secrets.token_hex(3)}"
            if db.scalar(select(Device.id).where(Device.public_id == candidate)) is None:
                return candidate

    def new_code(self, db: Session, public_id: str) -> NewCode:
        """Issue a fresh code (the old one stops working), e.g. to re-enroll a device."""
        device = self.get(db, public_id)
        if device.revoked:
            raise Conflict("the device is revoked; create a new one", "device")
        code, now = new_code(), self.clock.now()
        device.code_hash = hash_code(str(normalize_code(code)))
        device.code_expires = now + CODE_LIFETIME
        device.code_spent = False
        db.commit()
        return NewCode(device, code, now + CODE_LIFETIME)

    def update(self, db: Session, public_id: str, data: Mapping[str, Any]) -> Device:
        """Change name, location and rooms; fields left out keep their value."""
        device = self.get(db, public_id)
        if device.revoked:
            raise Conflict("the device is revoked", "device")
        if "name" in data:
            device.name = validation.text(data.get("name"), "name", max_len=MAX_NAME)
        if "location" in data:
            device.location = validation.text(
                data.get("location"), "location", max_len=MAX_LOCATION, required=False
            )
        if "rooms" in data:
            rooms = self.check_rooms(db, device.kind, data.get("rooms"))
            return self._set_rooms(db, device, rooms)
        db.commit()
        return device

    def set_rooms(self, db: Session, public_id: str, rooms: object) -> Device:
        """Assign rooms; a running device follows its retained configuration at once."""
        device = self.get(db, public_id)
        if device.revoked:
            raise Conflict("the device is revoked", "device")
        return self._set_rooms(db, device, self.check_rooms(db, device.kind, rooms))

    def _set_rooms(self, db: Session, device: Device, rooms: list[str]) -> Device:
        if device.broker_username:
            # The broker's rules first: the device may knock on its new rooms only.
            try:
                self.broker_admin.sync_device(self._access(device, rooms))
            except BrokerAdminError as exc:
                db.rollback()
                log.error("rooms of %s not changed: %s", device.public_id, exc)
                raise BrokerUnavailable(f"the broker did not take the change: {exc}") from None
        device.rooms_json = json.dumps(rooms)
        db.commit()
        if device.broker_username:
            self._publish_config(device)
        log.info("device %s shows %s", device.public_id, ", ".join(rooms) or "no room")
        return device

    def revoke(self, db: Session, public_id: str) -> Device:
        """End the device's broker access at once; its code and login stop working."""
        device = self.get(db, public_id)
        if device.broker_username:
            try:
                self.broker_admin.remove_device(self._access(device))
            except BrokerAdminError as exc:
                db.rollback()
                log.error("device %s not revoked: %s", device.public_id, exc)
                raise BrokerUnavailable(f"the broker did not take the change: {exc}") from None
        device.revoked = True
        device.revoked_at = device.revoked_at or self.clock.now()
        device.code_spent = True
        device.online = False
        db.commit()
        self.publisher.clear_device(device.public_id)
        log.warning("device %s revoked", device.public_id)
        return device

    def command(self, db: Session, public_id: str, cmd: object) -> None:
        """Send reload or identify to an enrolled device."""
        name = validation.choice(cmd, "cmd", COMMANDS)
        device = self.get(db, public_id)
        if device.revoked or not device.broker_username:
            raise Conflict("the device is not enrolled", "device")
        self.publisher.publish_device_command(device.public_id, DeviceCommand(name))  # type: ignore[arg-type]

    def republish_configs(self, db: Session) -> int:
        """Publish every enrolled device's configuration again (after a broker restart)."""
        devices = db.scalars(
            select(Device).where(Device.revoked.is_(False), Device.broker_username.is_not(None))
        )
        count = 0
        for device in devices:
            self._publish_config(device)
            count += 1
        return count

    def _publish_config(self, device: Device) -> None:
        self.publisher.publish_device_config(
            device.public_id, DeviceConfig(rooms=tuple(device_rooms(device)))
        )

    def _access(self, device: Device, rooms: Sequence[str] | None = None) -> DeviceAccess:
        return DeviceAccess(
            site=self.site,
            device=device.public_id,
            kind=device.kind,
            username=device.broker_username or device_username(self.site, device.public_id),
            rooms=tuple(device_rooms(device) if rooms is None else rooms),
        )

    # ---- enrollment -----------------------------------------------------------------
    def enroll(self, db: Session, code: object, kind: object, address: str) -> Enrollment:
        """Spend a code: the device gets its id and its own broker login.

        The caller counts the attempt first (`count_attempt`), malformed ones included.
        """
        now = self.clock.now()
        if kind is not None:
            kind = validation.choice(kind, "kind", DEVICE_KINDS)
        device = self._by_code(db, code)
        if (
            device is None
            or device.code_spent
            or device.revoked
            or device.code_expires is None
            or device.code_expires <= now
        ):
            log.warning("enrollment refused for %s: unknown, expired or used code", address)
            raise EnrollmentRefused("the enrollment code is unknown, expired or already used")
        if kind is not None and kind != device.kind:
            raise Conflict(f"this code enrolls a {device.kind}, not a {kind}", "kind")
        # Claim the code atomically: of two requests with the same code only one wins.
        claimed = db.execute(
            update(Device)
            .where(Device.id == device.id, Device.code_spent.is_(False))
            .values(code_spent=True)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise EnrollmentRefused("the enrollment code is unknown, expired or already used")
        db.refresh(device)
        try:
            ca_cert = self._ca_cert()
            password = secrets.token_urlsafe(24)
            access = self._access(device)
            self.broker_admin.add_device(access, password)
        except (BrokerAdminError, OSError) as exc:
            device.code_spent = False  # the code stays usable: nothing happened
            db.commit()
            log.error("enrollment of %s failed: %s", device.public_id, exc)
            raise BrokerUnavailable(
                f"the device's broker login could not be set up: {exc}"
            ) from None
        device.broker_username = access.username
        device.enrolled_at = now
        db.commit()
        self._publish_config(device)
        log.info("device %s enrolled from %s", device.public_id, address)
        return Enrollment(
            device,
            self.site,
            self.device_broker,
            access.username,
            password,
            access.client_id,
            ca_cert,
        )

    def _by_code(self, db: Session, code: object) -> Device | None:
        normalized = normalize_code(code)
        if normalized is None:
            return None
        digest = hash_code(normalized)
        device = db.scalar(select(Device).where(Device.code_hash == digest))
        # The lookup goes by a hash, which tells nothing about near misses; compare in
        # constant time all the same.
        if device is None or not hmac.compare_digest(device.code_hash or "", digest):
            return None
        return device

    def _ca_cert(self) -> str:
        if not self.ca_file:
            return ""
        return Path(self.ca_file).read_text(encoding="utf-8")

    def count_attempt(self, db: Session, address: str) -> None:
        """Count one enrollment attempt from `address`, or refuse it past the limit.

        Every attempt counts (kept in the database, so all hub processes share it).
        """
        now = self.clock.now()
        key = address[:64]
        db.execute(
            delete(RateEvent).where(RateEvent.kind == "enroll", RateEvent.at < now - RATE_WINDOW)
        )
        used = db.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.kind == "enroll", RateEvent.key == key)
        )
        if (used or 0) >= self.enroll_rate:
            db.commit()
            log.warning("enrollment attempts from %s rate-limited", address)
            raise RateLimited("too many enrollment attempts from this address; try again later")
        db.add(RateEvent(kind="enroll", key=key, at=now))
        db.commit()

    # ---- state from the devices ---------------------------------------------------------
    def record_state(
        self, db: Session, public_id: str, state: DeviceState | None, retained: bool
    ) -> Device | None:
        """Take a device's reported state; None when it was ignored."""
        if state is None:
            return None  # a cleared retained state (revocation)
        device = db.scalar(select(Device).where(Device.public_id == public_id))
        if device is None or device.revoked:
            log.info("ignored the state of unknown or revoked device %s", public_id)
            return None
        if state.kind is not None and state.kind != device.kind:
            log.warning(
                "ignored the state of %s: it says kind %s, not %s",
                public_id,
                state.kind,
                device.kind,
            )
            return None
        now = self.clock.now()
        values: dict[str, Any] = {"online": state.state == "online"}
        if values["online"] or not retained:
            values["last_seen"] = now
        if state.version is not None:
            values["version"] = state.version
        if values["online"]:
            values["telemetry_json"] = json.dumps(dict(state.telemetry), sort_keys=True)
        # Every hub process hears every state; the first one records it, the others find
        # it recorded already (the same values, seen moments ago) and write nothing.
        differs = [
            getattr(Device, key).is_distinct_from(value)
            for key, value in values.items()
            if key != "last_seen"
        ]
        if "last_seen" in values:
            differs += [Device.last_seen.is_(None), Device.last_seen < now - SEEN_BY_ANOTHER]
        db.execute(
            update(Device)
            .where(Device.id == device.id, or_(*differs))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        db.refresh(device)
        return device
