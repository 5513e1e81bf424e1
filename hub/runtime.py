"""Everything one hub process holds: settings, database, broker link, live feed, services."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType

from flask import current_app
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hub.broker_admin import make_broker_admin
from hub.clock import Clock, SystemClock
from hub.config import Settings
from hub.db import make_engine, session_scope
from hub.live import LiveFeed
from hub.mqtt_bridge import MqttBridge
from hub.queue_feed import QueueFeed
from hub.services.calls import MB, CallService, DocumentLimits, TurnSettings
from hub.services.departments import DepartmentService
from hub.services.devices import DeviceService, device_view
from hub.services.reception import ReceptionService
from hub.services.rooms import RoomService
from hub.services.users import UserService
from hub.ticker import Ticker
from protocol.payloads import (
    DeviceState,
    HubEvent,
    HubEventKind,
    Knock,
    RoomStatus,
    Signal,
    format_time,
)

log = logging.getLogger(__name__)
ROOMS_TOPIC = "rooms"
DEVICES_TOPIC = "devices"
PURGE_INTERVAL = 60.0  # seconds between retention purges
KNOCK_INTERVAL = 3.0  # seconds between two knocks shown for the same room


def hub_version() -> str:
    """The installed version of empfang."""
    try:
        return version("empfang")
    except PackageNotFoundError:
        return "0+unknown"


class HubRuntime:
    """Owns the resources of one hub process; `close()` releases them all."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.version = hub_version()
        self.engine = make_engine(settings.database_url)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.live = LiveFeed()
        # Positions are computed once per burst of queue events, not once per citizen's page.
        self.queue_feed = QueueFeed(self.live, self._places)
        self.bridge = MqttBridge(
            settings.effective_mqtt_url,
            settings.site,
            self.version,
            on_status=self._on_status,
            broker_timeout=settings.broker_timeout,
            on_connected=self._on_connected,
            on_knock=self._on_knock,
            on_event=self._on_event,
            on_signal=self._on_signal,
            on_device_state=self._on_device_state,
            discovery_prefix=settings.home_assistant_prefix,
        )
        self.broker_admin = make_broker_admin(
            settings.broker_admin_backend,
            settings.effective_mqtt_url,
            settings.site,
            settings.home_assistant_prefix,
        )
        self.devices = DeviceService(
            self.clock,
            settings.site,
            self.bridge,
            self.broker_admin,
            broker_url=settings.device_broker_url or settings.effective_mqtt_url,
            ca_file=settings.device_ca_file,
            enroll_rate=settings.enroll_rate,
        )
        self.rooms = RoomService(
            self.clock,
            settings.zone,
            settings.status_ttl,
            self.bridge,
            notify_presence=self._notify_user("presence"),
        )
        self.users = UserService(self.clock)
        self.departments = DepartmentService()
        self.reception = ReceptionService(
            self.clock,
            settings.zone,
            notify=lambda kind, ref: self.bridge.publish_event(HubEvent(kind=kind, ref=ref)),
            sync_room=self.rooms.sync,
            retention=timedelta(hours=settings.retention_hours),
            ticket_rate=settings.ticket_rate,
            end_call=lambda db, ticket: self.calls.end_for_ticket(db, ticket),
            open_call=lambda db, ticket: self.calls.ticket_session(db, ticket),
        )
        self.calls = CallService(
            self.clock,
            settings.instance_path / "documents",
            notify=lambda ref: self.bridge.publish_event(HubEvent(kind="call", ref=ref)),
            sync_room=self.rooms.sync,
            set_dnd=self.rooms.set_dnd,
            notify_user=self._notify_user("colleague"),
            send_signal=self.bridge.publish_signal,
            limits=DocumentLimits(
                per_call=settings.documents_per_call,
                bytes_per_call=settings.documents_mb_per_call * MB,
                min_free=settings.documents_min_free_mb * MB,
                max_pixels=round(settings.image_max_megapixels * 1_000_000),
            ),
        )
        self.turn = TurnSettings(
            stun=_split(settings.stun_urls),
            turn=_split(settings.turn_urls),
            secret=settings.turn_secret,
        )
        self.ticker = Ticker(
            refresh=self.refresh,
            republish=self.republish,
            interval=settings.tick_seconds,
            republish_every=settings.status_ttl / 3,
        )
        self._closed = False
        self._last_knock: dict[str, float] = {}
        self._last_purge = 0.0

    def _notify_user(self, kind: HubEventKind) -> Callable[[int], None]:
        """Tell one staff member's pages, in every hub process, that `kind` changed."""
        return lambda user_id: self.bridge.publish_event(
            HubEvent(kind=kind, ref=staff_topic(user_id))
        )

    def start(self) -> None:
        """Connect to the broker and start the background ticker."""
        # First the broker admin: it makes sure the hub's own login may publish.
        self.broker_admin.start()
        self.queue_feed.start()
        self.bridge.start()
        self.ticker.start()

    def refresh(self) -> None:
        """Publish every room whose derived state changed (e.g. opening hours)."""
        with session_scope(self.sessions) as db:
            self.rooms.refresh_all(db)
        self.reap()
        if time.monotonic() - self._last_purge >= PURGE_INTERVAL:
            self._last_purge = time.monotonic()
            self.purge()

    def reap(self) -> int:
        """Drop call participants whose connection died silently."""
        with session_scope(self.sessions) as db:
            return self.calls.reap(db)

    def purge(self) -> int:
        """Erase personal data past its retention period; returns how many visits."""
        with session_scope(self.sessions) as db:
            return self.reception.purge(db)

    def republish(self) -> None:
        """Publish every room again so receivers know the status is current."""
        with session_scope(self.sessions) as db:
            self.rooms.refresh_all(db)
            self.rooms.republish_all(db)

    def health(self) -> dict[str, bool]:
        """Database reachability; broker connected and answering the hub's probe in time."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            database = True
        except Exception:
            log.exception("database check failed")
            database = False
        return {"database": database, "broker": self.bridge.is_answering()}

    def _on_status(self, room: str, status: RoomStatus | None) -> None:
        event = (
            {"type": "room", "status": status.to_dict()}
            if status is not None
            else {"type": "removed", "room": room}
        )
        self.live.publish(ROOMS_TOPIC, event)

    def _on_knock(self, room: str, knock: Knock) -> None:
        # A stuck or hostile button must not make every staff page ring without pause.
        now = time.monotonic()
        if now - self._last_knock.get(room, -KNOCK_INTERVAL) < KNOCK_INTERVAL:
            return
        self._last_knock[room] = now
        # Only the room and the device travel on: a knock names no person.
        event = {"type": "knock", "room": room, "device": knock.device, "at": format_time(knock.at)}
        self.live.publish(ROOMS_TOPIC, event)

    def _on_signal(self, session: str, to: str, signal: Signal) -> None:
        self.live.publish(
            f"participant:{to}",
            {"type": "signal", "from": signal.sender, "kind": signal.kind, "data": signal.data},
        )

    def _on_event(self, event: HubEvent) -> None:
        if event.kind == "call":
            self.live.publish(f"call:{event.ref}", {"type": "call", "session": event.ref})
            return
        if event.kind in STAFF_NOTICES and event.ref:
            self.live.publish(event.ref, {"type": STAFF_NOTICES[event.kind]})
            return
        self.queue_feed.push(event.kind, event.ref)

    def _places(self) -> dict[str, tuple[int, int | None]]:
        with session_scope(self.sessions) as db:
            places = self.reception.places(db)
        return {k: (p.position, p.estimate_minutes) for k, p in places.items()}

    def _on_device_state(self, device: str, state: DeviceState | None, retained: bool) -> None:
        with session_scope(self.sessions) as db:
            recorded = self.devices.record_state(db, device, state, retained)
            if recorded is None:
                return
            view = device_view(recorded, self.clock.now())
        self.live.publish(DEVICES_TOPIC, {"type": "device", "device": view})

    def _on_connected(self) -> None:
        self.ticker.request_republish()
        try:  # a broker restart without persistence forgets retained device configs
            with session_scope(self.sessions) as db:
                self.devices.republish_configs(db)
        except Exception:
            log.exception("could not republish the device configurations")

    def close(self) -> None:
        """Stop background work, say offline, release the database; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.ticker.stop()
        self.bridge.stop()
        self.queue_feed.stop()
        self.broker_admin.close()
        self.engine.dispose()


# Events for one staff member's pages, by the kind of hub event that brings them.
STAFF_NOTICES: Mapping[str, str] = MappingProxyType({"colleague": "brought", "presence": "mine"})


def staff_topic(user_id: int) -> str:
    """The live topic (and event reference) of one staff member's own notices."""
    return f"staff-{user_id}"


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def current_runtime() -> HubRuntime:
    """The runtime of the app that handles the current request."""
    return current_app.extensions["empfang"]
