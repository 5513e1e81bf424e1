"""The display's broker link: the device link of `edge.link`, with its timing from the
display's settings, and knocks on a room's door."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from display.config import MqttConfig
from edge.link import ConnectionHandler, DeviceLink, MessageHandler
from protocol import topics
from protocol.broker import BrokerAddress
from protocol.payloads import Knock

log = logging.getLogger(__name__)


class DisplayLink(DeviceLink):
    """The door display's one paho client; callbacks run on paho's network thread."""

    def __init__(
        self,
        broker: BrokerAddress,
        site: str,
        device: str,
        subscriptions: Sequence[str],
        on_message: MessageHandler,
        on_connection: ConnectionHandler,
        *,
        timing: MqttConfig | None = None,
        version: str = "0",
        telemetry: Callable[[], Mapping[str, object]] | None = None,
        announce: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ca_file: str | None = None,
        on_refused: Callable[[bool], None] | None = None,
    ) -> None:
        self.timing = timing or MqttConfig()
        self._clock = clock
        super().__init__(
            broker,
            site,
            device,
            "display",
            version=version,
            subscriptions=subscriptions,
            on_message=on_message,
            on_connection=on_connection,
            telemetry=telemetry,
            announce=announce,
            keepalive=self.timing.keepalive,
            reconnect=(self.timing.reconnect_min, self.timing.reconnect_max),
            ca_file=ca_file,
            on_refused=on_refused,
        )

    def publish_knock(self, room: str) -> bool:
        """Knock on a room's door (QoS 1, not retained); False while disconnected."""
        knock = Knock(device=self.device, at=self._clock())
        if not self.is_connected():
            log.warning("knock on %s not sent: no broker connection", room)
            return False
        return self.publish(topics.room_knock(self.site, room), knock.to_json())
