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
            self.board = RoomBoard(config.site, config.rooms, self.clock)
            outputs = self._outputs(extra, pin_factory, report)
            self.core = DisplayCore(
                self.board, outputs, config.zone, tick_seconds=tick_seconds, on_tick=self._tick
            )
            self.link = DisplayLink(
                config.broker,
                config.site,
                config.device,
                self.board.subscriptions(),
                self.core.on_message,
                self.core.on_connection,
                timing=config.mqtt,
                version=self.version,
                telemetry=self._telemetry,
                clock=self.clock,
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

        return KnockButton(self.config.knock, link.publish_knock, pin_factory)

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
