"""One running door display: board, outputs, core, broker link and knock button, wired
from the configuration. Hardware modules are imported only for the outputs in use."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from display.config import DisplayConfig
from display.core import DisplayCore, Output
from display.model import RoomBoard, Shown
from display.mqtt_client import DisplayLink
from display.outputs import InlineOutput, LatencyReport, Renderer, ThreadedOutput
from protocol import topics
from protocol.errors import PayloadError
from protocol.payloads import DeviceCommand, DeviceConfig

log = logging.getLogger(__name__)

STATE_EVERY_SECONDS = 60.0


def display_version() -> str:
    """The installed version of empfang."""
    try:
        return version("empfang")
    except PackageNotFoundError:
        return "0+unknown"


class Display:
    """Builds everything from ``config``; ``start()`` connects, ``close()`` releases all."""

    def __init__(
        self,
        config: DisplayConfig,
        *,
        extra: Sequence[Renderer] = (),
        pin_factory: Any = None,
        clock: Callable[[], datetime] | None = None,
        report: LatencyReport | None = None,
        tick_seconds: float = 1.0,
    ) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.version = display_version()
        self._started_at = time.monotonic()
        self._last_state = time.monotonic()
        self._hardware: list[Any] = []
        self.core: DisplayCore | None = None
        self.link: DisplayLink | None = None
        self.knock: Any = None
        self.light: Any = None  # the status LED, when configured
        self.panel: Any = None  # the e-paper panel, when configured
        self._closed = False
        try:
            self.board = RoomBoard(config.site, config.rooms, self.clock, label=config.device)
            self._config_topic = topics.device_config(config.site, config.device)
            self._cmd_topic = topics.device_cmd(config.site, config.device)
            outputs = self._outputs(extra, pin_factory, report)
            self.core = DisplayCore(
                self.board, outputs, config.zone, tick_seconds=tick_seconds, on_tick=self._tick
            )
            self.link = DisplayLink(
                config.broker,
                config.site,
                config.device,
                self._subscriptions(),
                self._on_message,
                self.core.on_connection,
                timing=config.mqtt,
                version=self.version,
                telemetry=self._telemetry,
                clock=self.clock,
                ca_file=config.ca_file,
                on_refused=self.core.set_refused,
            )
            self.knock = self._knock_button(self.link, pin_factory)
        except BaseException:
            self.close()
            raise

    def _outputs(
        self, extra: Sequence[Renderer], pin_factory: Any, report: LatencyReport | None
    ) -> list[Output]:
        config = self.config
        outputs: list[Output] = []
        if config.leds is not None:
            from display.leds import status_light

            light = self.light = status_light(config.leds, pin_factory)
            self._hardware.append(light)
            outputs.append(InlineOutput(light, report))
        if config.epaper is not None:
            from display.epaper import EpaperOutput
            from display.panels import open_panel

            panel = self.panel = open_panel(config.epaper)
            self._hardware.append(panel)
            epaper = EpaperOutput(panel, config.epaper, config.language, config.zone, self.clock)
            outputs.append(ThreadedOutput(epaper, report))
        outputs.extend(ThreadedOutput(renderer, report) for renderer in extra)
        return outputs

    def _knock_button(self, link: DisplayLink, pin_factory: Any) -> Any:
        if self.config.knock is None:
            return None
        from display.leds import KnockButton

        return KnockButton(
            self.config.knock,
            link.publish_knock,
            pin_factory,
            current_room=lambda: self.board.rooms[0] if self.board.rooms else None,
        )

    def _subscriptions(self) -> list[str]:
        """The shown rooms and the hub state, plus this device's config and commands."""
        return [*self.board.subscriptions(), self._config_topic, self._cmd_topic]

    def _on_message(self, topic: str, payload: bytes, received: float) -> None:
        if topic == self._config_topic:
            self._on_config(payload)
        elif topic == self._cmd_topic:
            self._on_command(payload)
        else:
            assert self.core is not None
            self.core.on_message(topic, payload, received)

    def _on_config(self, payload: bytes) -> None:
        """The hub assigned rooms: show them from now on, without a restart."""
        assert self.core is not None and self.link is not None
        if not payload:
            return  # cleared (the device was revoked): keep showing what we have
        try:
            config = DeviceConfig.parse(payload)
        except PayloadError as exc:
            log.warning("ignored a malformed configuration from the hub: %s", exc)
            return
        if self.core.set_rooms(config.rooms):
            self.link.set_subscriptions(self._subscriptions())
            log.info("the hub assigns rooms: %s", ", ".join(config.rooms) or "none")

    def _on_command(self, payload: bytes) -> None:
        assert self.core is not None and self.link is not None
        try:
            command = DeviceCommand.parse(payload)
        except PayloadError as exc:
            log.warning("ignored a malformed command: %s", exc)
            return
        log.info("command from the hub: %s", command.cmd)
        if command.cmd == "reload":
            self.core.redraw()
            self.link.publish_state()
        elif command.cmd == "identify":
            log.warning("identify: this is display %s", self.config.device)

    @property
    def failed(self) -> threading.Event:
        """Set when the display can no longer work (the process should exit 1)."""
        assert self.core is not None
        return self.core.failed

    def start(self) -> None:
        """Show UNKNOWN everywhere, then connect; the outputs follow the broker from here."""
        assert self.core is not None and self.link is not None
        self.core.start()
        self.link.start()

    def _telemetry(self) -> dict[str, object]:
        assert self.core is not None
        view = self.core.view()
        return {
            "uptime_s": int(time.monotonic() - self._started_at),
            "rooms": len(view.rooms),
            "unknown": sum(1 for room in view.rooms if room.shown == Shown.UNKNOWN),
            "outputs": ",".join(self.config.outputs),
        }

    def _tick(self) -> None:
        if self.link is not None and time.monotonic() - self._last_state >= STATE_EVERY_SECONDS:
            self._last_state = time.monotonic()
            self.link.publish_state()

    def close(self) -> None:
        """Knock button, broker link (saying offline), core and outputs; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for item in [self.knock, self.link, self.core, *self._hardware]:
            if item is None:
                continue
            try:
                item.close()
            except Exception:
                log.exception("closing %s failed", type(item).__name__)
