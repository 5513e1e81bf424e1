"""The kiosk's engine: the screen flow, the hub, the call and the hardware on one asyncio loop.

`Engine.run()` owns everything that talks to the outside: the hub's reception API (in
threads), the ticket's live channel, the call (`kiosk.call`), the camera, the page server
(`kiosk.server`), the GPIO parts and the MQTT health. The page and the GPIO threads reach
the flow only through `act()`, which hands the action to the loop; so `kiosk.flow` is only
ever touched from the loop's thread.

The window (or a test) plugs in through `Ui`: ``reset()`` for the privacy reset of the
web view (cookies, storage, cache, a fresh page) and ``reload()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from av.video.reformatter import VideoReformatter
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException
from websockets.typing import Origin

from kiosk.audio import MutableAudioTrack, Speakers, open_microphone
from kiosk.call import CallPeer, join
from kiosk.camera import open_configured_camera
from kiosk.config import KioskConfig
from kiosk.flow import (
    CancelTicket,
    CheckHub,
    CreateTicket,
    Effect,
    Flow,
    FlowTimes,
    JoinCall,
    LeaveCall,
    PrivacyReset,
    Screen,
)
from kiosk.hardware import Hardware, LedState
from kiosk.hub_client import HubClient, HubRefused, HubUnreachable
from kiosk.media import CameraSource
from kiosk.pictures import FrameFeed, to_picture
from kiosk.server import PageServer
from kiosk.signalling import CallCredentials, SignallingError, live_url, origin_of

log = logging.getLogger(__name__)

TICK = 0.2
REMOTE_FPS = 15.0  # at most this many pictures a second of the staff's video
PREVIEW_FPS = 5.0
PREVIEW_SIZE = (320, 240)
STATS_EVERY = 2.0
STATE_WAIT = 20.0  # seconds a page's request for the next view waits at most
GUEST_NAME = {"de": "Gast am Kiosk", "en": "Kiosk guest"}
ACTIONS = (
    "start", "set_language", "choose_category", "set_name", "take_ticket", "back", "cancel",
    "end_call", "touch", "motion", "mute",
)  # fmt: skip


class Ui(Protocol):
    """What the engine asks of the window."""

    def reset(self) -> None:
        """Privacy reset of the web view: cookies, storage, cache gone; a fresh page."""
        ...

    def reload(self) -> None:
        """Load the page again."""
        ...


class NoUi:
    """A headless kiosk (tests, benchmarks): nothing to reset."""

    def reset(self) -> None:
        """Nothing to clear."""

    def reload(self) -> None:
        """Nothing to load."""


def view_tag(view: dict[str, Any]) -> str:
    """A short fingerprint of a view: equal views, equal tags."""
    raw = json.dumps(view, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.blake2s(raw, digest_size=8).hexdigest()


class CallStats:
    """Media figures of the current call (none outside a call)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the last call's figures."""
        self.frames_received = 0
        self.serving_at: float | None = None
        self.first_frame_at: float | None = None
        self.pictures = 0

    def admit_to_first_frame(self) -> float | None:
        """Seconds from learning of the admission to the first staff frame."""
        if self.serving_at is None or self.first_frame_at is None:
            return None
        return self.first_frame_at - self.serving_at


class Engine:
    """The kiosk without its window; see the module's docstring."""

    def __init__(
        self,
        config: KioskConfig,
        *,
        version: str = "0",
        ui: Ui | None = None,
        pin_factory: Any = None,
        camera_factory: Callable[[KioskConfig], CameraSource] | None = None,
        microphone_factory: Callable[[KioskConfig], MutableAudioTrack | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.version = version
        self.ui: Ui = ui or NoUi()
        self._pin_factory = pin_factory
        self._camera_factory = camera_factory or (
            lambda c: open_configured_camera(c.camera, c.video)
        )
        self._microphone_factory = microphone_factory or (
            lambda c: open_microphone(c.audio.microphone)
        )
        self._clock = clock
        t = config.timeouts
        self.flow = Flow(
            clock,
            config.languages,
            FlowTimes(t.inactivity, t.goodbye, t.dim, t.retry_min, t.retry_max, t.poll),
        )
        self.hub = HubClient(config.hub)
        self.remote = FrameFeed()
        self.preview = FrameFeed()
        self.stats = CallStats()
        self.server: PageServer | None = None
        self.camera: CameraSource | None = None
        self.hardware: Hardware | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._relay = MediaRelay()
        self._remote_converter = VideoReformatter()  # both used on the loop's thread only
        self._preview_converter = VideoReformatter()
        self._source: MediaStreamTrack | None = None
        self.microphone: MutableAudioTrack | None = None
        self._encoded: MediaStreamTrack | None = None  # the H.264 track, once a call used it
        self.speakers = Speakers(config.audio.speaker)
        self._peer: CallPeer | None = None
        self._call_task: asyncio.Task[None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._preview_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_remote_picture = 0.0
        self._led: LedState | None = None
        self._stop: asyncio.Event | None = None

    # ---- life cycle ---------------------------------------------------------------------
    async def run(self, ready: Callable[[str], None] | None = None) -> None:
        """Run until `stop()`; `ready(page_url)` is called once the page server listens."""
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.camera = self._camera_factory(self.config)
        self._source = self.camera.track()
        self.microphone = self._microphone_factory(self.config)
        routes: dict[str, Any] = {"/state": self.next_view, "/status": self._status}
        self.server = await PageServer(routes, port=self.config.ui_port).start()
        try:
            self.hardware = Hardware(
                self.config.gpio,
                on_call=lambda: self.act_threadsafe("start"),
                on_motion=lambda: self.act_threadsafe("motion"),
                pin_factory=self._pin_factory,
            )
            log.info("kiosk %s: page on %s, hub %s", self.config.device, self.server.url,
                     self.config.hub)  # fmt: skip
            if ready is not None:
                ready(self.server.url)
            self._update_led()
            next_stats = self._clock() + STATS_EVERY
            while not self._stop.is_set():
                self._run_effects(self.flow.tick())
                self._update_led()
                if self.flow.screen == Screen.CALL and self._clock() >= next_stats:
                    next_stats = self._clock() + STATS_EVERY
                    self._log_stats()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), TICK)
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """Ask `run()` to end (thread-safe)."""
        if self.loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self.loop.call_soon_threadsafe(self._stop.set)

    async def _shutdown(self) -> None:
        await self._end_call(leave=True)
        await self._cancel(self._follow_task)
        for task in list(self._tasks):
            task.cancel()
        if self.hardware is not None:
            self.hardware.close()
        if self.server is not None:
            await self.server.close()
        if self.camera is not None:
            self.camera.close()
        if self.microphone is not None:
            self.microphone.stop()

    # ---- actions from the page and the hardware -----------------------------------------
    def act_threadsafe(self, name: str, *args: Any, timeout: float = 5.0) -> dict[str, Any]:
        """Run a flow action from another thread; the new view (or an error)."""
        if self.loop is None:
            return {"error": "not running"}
        future = asyncio.run_coroutine_threadsafe(self.act(name, *args), self.loop)
        return future.result(timeout)

    async def act(self, name: str, *args: Any) -> dict[str, Any]:
        """Run the flow action `name` and carry out its effects; the new view."""
        if name not in ACTIONS:
            raise ValueError(f"unknown action {name!r}")
        if name == "mute":
            return self._mute(*args)
        try:
            effects = getattr(self.flow, name)(*args)
        except (TypeError, ValueError) as exc:
            log.warning("page action %s refused: %s", name, exc)
            return {**self.view(), "refused": str(exc)}
        self._run_effects(effects)
        self._update_led()
        return self.view()

    def _mute(self, *args: Any) -> dict[str, Any]:
        """The citizen mutes or unmutes the microphone (only during a call)."""
        if len(args) != 1 or not isinstance(args[0], bool):
            return {**self.view(), "refused": "mute takes true or false"}
        if self.flow.screen != Screen.CALL or self.microphone is None:
            return {**self.view(), "refused": "there is no microphone in use"}
        self.microphone.muted = args[0]
        self.flow.touch()  # a touch like any other
        log.info("microphone %s", "muted" if args[0] else "on")
        return self.view()

    def view(self) -> dict[str, Any]:
        """What the page draws: the flow's view plus the microphone's state."""
        return {
            **self.flow.view(),
            "microphone": self.microphone is not None,
            "muted": bool(self.microphone and self.microphone.muted),
        }

    def command(self, cmd: str) -> None:
        """A command from the hub (thread-safe): reload, identify or reset."""
        if self.loop is None:
            return
        if cmd == "identify":
            if self.hardware is not None:
                self.hardware.identify()
        elif cmd == "reload":
            self.loop.call_soon_threadsafe(self._spawn, asyncio.to_thread(self.ui.reload))
        elif cmd == "reset":
            self.loop.call_soon_threadsafe(lambda: self._run_effects(self.flow.cancel()))

    # ---- effects ----------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _run_effects(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, CheckHub):
                self._spawn(self._check_hub())
            elif isinstance(effect, CreateTicket):
                self._spawn(self._create_ticket(effect))
            elif isinstance(effect, CancelTicket):
                self._spawn(self._cancel_ticket(effect.token))
            elif isinstance(effect, JoinCall):
                self.stats.serving_at = self._clock()
                self._call_task = self._spawn(self._call(effect.token))
            elif isinstance(effect, LeaveCall):
                self._spawn(self._end_call(leave=True))
            elif isinstance(effect, PrivacyReset):
                self._spawn(self._privacy_reset())

    async def _check_hub(self) -> None:
        try:
            figures: dict[str, Any] = {"categories": {}}
            for language in self.config.languages:
                answer = await asyncio.to_thread(self.hub.reception, language)
                figures["open"] = bool(answer.get("open"))
                figures["waiting"] = answer.get("waiting")
                figures["estimate_minutes"] = answer.get("estimate_minutes")
                figures["categories"][language] = [
                    {"slug": str(c.get("slug")), "name": str(c.get("name"))}
                    for c in answer.get("categories") or []
                    if isinstance(c, dict)
                ]
        except (HubUnreachable, HubRefused) as exc:
            if self.flow.screen != Screen.OUT_OF_SERVICE:
                log.warning("the hub does not answer: %s", exc)
            self._run_effects(self.flow.hub_down())
        else:
            if self.flow.screen == Screen.OUT_OF_SERVICE:
                log.info("the hub answers again")
            self._run_effects(self.flow.hub_ok(figures))
        self._update_led()

    async def _create_ticket(self, effect: CreateTicket) -> None:
        name = effect.name or GUEST_NAME.get(effect.language, GUEST_NAME["de"])
        try:
            answer = await asyncio.to_thread(
                self.hub.take_ticket,
                self.config.device,
                effect.language,
                effect.category,
                name,
            )
        except HubRefused as exc:
            log.warning("the hub refused the ticket: %s", exc)
            self._run_effects(self.flow.ticket_refused(str(exc)))
            return
        except HubUnreachable as exc:
            log.warning("no ticket, the hub does not answer: %s", exc)
            self.flow.ticket_refused("unreachable")
            self._run_effects(self.flow.hub_down())
            return
        token = answer["token"]
        effects = self.flow.ticket_created(
            token,
            _int_or_none(answer.get("position")),
            _int_or_none(answer.get("estimate_minutes")),
        )
        log.info("ticket taken (source %s)", self.config.device)
        if self.flow.token == token:
            await self._cancel(self._follow_task)
            self._follow_task = self._spawn(self._follow(token))
        self._run_effects(effects)

    async def _cancel_ticket(self, token: str) -> None:
        with contextlib.suppress(HubUnreachable, HubRefused):
            await asyncio.to_thread(self.hub.cancel_ticket, token)
        log.info("ticket given back")

    async def _follow(self, token: str) -> None:
        """The ticket's live channel, reconnecting until the ticket ends or is dropped."""
        path = f"/api/v1/reception/tickets/{quote(token, safe='')}/live"
        url = live_url(self.config.hub, path, "").split("?", 1)[0]
        while self.flow.token == token:
            try:
                async with ws_connect(
                    url, origin=Origin(origin_of(self.config.hub)), open_timeout=5, proxy=None
                ) as ws:
                    async for raw in ws:
                        try:
                            message = json.loads(raw)
                        except ValueError:
                            continue
                        if not isinstance(message, dict) or message.get("type") != "ticket":
                            continue
                        status = message.get("status")
                        if not isinstance(status, str):
                            continue
                        self._run_effects(
                            self.flow.ticket_update(
                                status,
                                _int_or_none(message.get("position")),
                                _int_or_none(message.get("estimate_minutes")),
                            )
                        )
                        self._update_led()
                        if status == "ended":
                            return
            except (OSError, TimeoutError, WebSocketException) as exc:
                log.info("ticket channel: %s; trying again", exc)
            await asyncio.sleep(2)

    async def _call(self, token: str) -> None:
        """Join the call for `token` and stay until it ends."""
        credentials: CallCredentials | None = None
        for _attempt in range(10):
            try:
                body = await asyncio.to_thread(self.hub.call_credentials, token)
                credentials = CallCredentials.from_json(body)
                break
            except (HubUnreachable, HubRefused, SignallingError) as exc:
                log.warning("no seat in the call yet: %s", exc)
                await asyncio.sleep(1)
        if credentials is None or self._source is None:
            self._run_effects(self.flow.call_ended())
            return
        self.stats.reset()
        self.stats.serving_at = self._clock()
        try:
            if self.microphone is not None:
                self.microphone.muted = False  # every visit starts with the microphone on
            peer = await join(
                self.config.hub,
                credentials,
                self._call_video(),
                audio=self.microphone,
                on_frame=self._on_remote_frame,
                on_audio=self.speakers.play,
                proxy=None,
            )
        except SignallingError as exc:
            log.warning("could not join the call: %s", exc)
            self._run_effects(self.flow.call_ended())
            return
        self._peer = peer
        self._preview_task = self._spawn(self._preview())
        log.info("in the call as %s", credentials.participant)
        ended = await peer.run()
        log.info("the call ended (%s)", ended)
        self._log_stats()
        self._run_effects(self.flow.call_ended())
        self._update_led()

    def _call_video(self) -> MediaStreamTrack:
        """The camera's picture for a call: its packets as they are, raw frames relayed."""
        assert self.camera is not None and self._source is not None
        video = self.camera.call_track()
        if getattr(video, "mime", None) is not None:
            self._encoded = video
            return video  # pre-encoded: the call's own relay keeps every packet
        return self._relay.subscribe(self._source, buffered=False)

    async def _end_call(self, leave: bool) -> None:
        peer, self._peer = self._peer, None
        task, self._call_task = self._call_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if peer is not None:
            await peer.close(leave=leave)
        await asyncio.to_thread(self.speakers.close)
        if self.microphone is not None:
            self.microphone.muted = False
        await self._cancel(self._preview_task)
        self._preview_task = None
        self.remote.put(None)
        self.preview.put(None)

    async def _privacy_reset(self) -> None:
        """Nothing of the visit stays: call, ticket channel, pictures, the web view."""
        await self._end_call(leave=True)
        await self._cancel(self._follow_task)
        self._follow_task = None
        self.stats.reset()
        try:
            await asyncio.to_thread(self.ui.reset)
        except Exception:
            log.exception("the web view's privacy reset failed")
        log.info("privacy reset done")

    @staticmethod
    async def _cancel(task: asyncio.Task[Any] | None) -> None:
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---- media ----------------------------------------------------------------------------
    def _on_remote_frame(self, _participant: str, frame: Any) -> None:
        self.stats.frames_received += 1
        now = self._clock()
        if self.stats.first_frame_at is None:
            self.stats.first_frame_at = now
            log.info("first frame from staff after %.2f s", self.stats.admit_to_first_frame() or 0)
        if self.remote.watchers and now - self._last_remote_picture >= 1 / REMOTE_FPS:
            self._last_remote_picture = now
            self.remote.put(to_picture(frame, self._remote_converter, self.remote.box))
            self.stats.pictures += 1

    async def _preview(self) -> None:
        """The citizen's own picture, small and slow, while the page shows it."""
        if self._source is None:
            return
        track = self._relay.subscribe(self._source, buffered=False)
        last = 0.0
        try:
            while True:
                frame = await track.recv()
                now = self._clock()
                if self.preview.watchers and now - last >= 1 / PREVIEW_FPS:
                    last = now
                    box = self.preview.box or PREVIEW_SIZE
                    self.preview.put(to_picture(frame, self._preview_converter, box))
        except MediaStreamError:
            return
        finally:
            track.stop()

    # ---- views --------------------------------------------------------------------------
    def _log_stats(self) -> None:
        figures = self.media_figures()
        log.info(
            "frames from staff: %d (%.1f/s), frames sent: %s",
            figures["frames_received"],
            figures["received_fps"],
            figures["frames_sent"],
        )

    def media_figures(self) -> dict[str, Any]:
        """Frames received from staff and sent, and the admit-to-first-frame time."""
        fps = 0.0
        connection = None
        if self._peer is not None:
            for peer in self._peer.stats().values():
                fps += peer.video_fps
                connection = peer.connection
        sent = getattr(self._source, "frames_sent", None)
        if sent is None:  # pre-encoded: the packets sent (one per picture)
            sent = getattr(self._encoded, "packets_sent", None)
        return {
            "frames_received": self.stats.frames_received,
            "received_fps": round(fps, 1),
            "frames_sent": sent,
            "connection": connection,
            "admit_to_first_frame": self.stats.admit_to_first_frame(),
            "pictures": self.stats.pictures,
            "audio_frames_sent": self.microphone.frames_sent if self.microphone else None,
            "audio_frames_played": self.speakers.frames_played(),
            "muted": bool(self.microphone and self.microphone.muted),
        }

    def camera_ok(self) -> bool:
        """Whether the camera's track is live."""
        return self._source is not None and self._source.readyState == "live"

    async def next_view(self, query: dict[str, str]) -> dict[str, Any]:
        """The page's view, tagged (``/state``); with ``?seen=<tag>`` it waits for a change.

        The page asks again at once: it learns of every change within a tick, and the web
        view makes one request per change (or per `STATE_WAIT`), not several a second.
        """
        seen = query.get("seen")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STATE_WAIT
        while True:
            view = self.view()
            tag = view_tag(view)
            if tag != seen or loop.time() >= deadline:
                return {**view, "tag": tag}
            await asyncio.sleep(TICK)

    async def _status(self, _query: dict[str, str]) -> dict[str, Any]:
        view = self.flow.view()
        return {
            "screen": view["screen"],
            "has_ticket": view["has_ticket"],
            "dimmed": view["dimmed"],
            "device": self.config.device,
            "camera_ok": self.camera_ok(),
            "media": self.media_figures(),
        }

    def telemetry(self) -> dict[str, object]:
        """Device facts for the health state (no personal data)."""
        return {
            "camera_ok": self.camera_ok(),
            "microphone_ok": self.microphone is not None and self.microphone.readyState == "live",
            "screen": self.flow.screen.value,
        }

    def _update_led(self) -> None:
        if self.hardware is None:
            return
        screen = self.flow.screen
        if screen == Screen.OUT_OF_SERVICE:
            state = LedState.FAULT
        elif screen == Screen.CALL:
            state = LedState.IN_CALL
        else:
            state = LedState.READY
        if state != self._led:
            self._led = state
            self.hardware.show(state)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
