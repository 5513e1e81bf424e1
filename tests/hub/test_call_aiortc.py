"""A kiosk's aiortc peer and a staff member's Chromium see each other in an admitted call.

The citizen takes a ticket through the JSON API as a kiosk would, staff admit it from the
queue in real Chromium (fake camera), and the kiosk joins with `kiosk.call` and a
synthetic camera on its own asyncio loop in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect

from hub.runtime import HubRuntime
from kiosk.audio import MutableAudioTrack, Speakers, ToneTrack
from kiosk.call import CallPeer, PeerStats, join
from kiosk.camera import EncodingCamera
from kiosk.media import CameraSource, SyntheticCamera
from kiosk.signalling import CallCredentials
from tests.conftest import add_user
from tests.support.browser import PageLog, browser_context, log_in_page
from tests.support.call_pages import prepare
from tests.support.hubserver import LiveServer
from tests.support.reception import join_queues, setup_reception

pytestmark = pytest.mark.browser
MEDIA_SECONDS = 10.0
SHOTS = Path(__file__).resolve().parents[2] / "shots"
T = TypeVar("T")

# Resolves once a remote <video> plays (has a size and time moves on); as in
# test_call_browser.py.
REMOTE_VIDEO_PLAYS = """
async () => {
  const videos = [...document.querySelectorAll('video[data-participant]')];
  for (const v of videos) {
    if (v.videoWidth > 0) {
      const t0 = v.currentTime;
      await new Promise((r) => setTimeout(r, 500));
      if (v.currentTime > t0) return true;
    }
  }
  return false;
}
"""
# Width and height of the first remote <video> that has a picture, else null.
REMOTE_VIDEO_SIZE = """
() => {
  const v = [...document.querySelectorAll('video[data-participant]')].find((v) => v.videoWidth > 0);
  return v ? [v.videoWidth, v.videoHeight] : null;
}
"""
# The codecs of the video the page receives.
VIDEO_CODECS = """
async () => {
  const seen = new Set();
  for (const pc of window.__peerConnections || []) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && s.codecId) {
        seen.add(stats.get(s.codecId).mimeType);
      }
    });
  }
  return [...seen];
}
"""
# The summed energy of the audio the page receives (WebRTC stats): it grows while sound,
# not silence, arrives.
AUDIO_ENERGY = """
async () => {
  let total = 0;
  for (const pc of window.__peerConnections || []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') total += s.totalAudioEnergy || 0;
    });
  }
  return total;
}
"""


def _http_json(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One JSON request straight to the test hub (never through a proxy)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def _wait_for(check: Callable[[], T | None], seconds: float, what: str) -> T:
    """Poll `check` until it returns something truthy; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.1)


class KioskLoop:
    """An asyncio event loop on its own thread, as the kiosk process runs one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coro` on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Cancel what is left on the loop, stop it and join the thread."""
        self.run(self._cancel_rest(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the kiosk loop did not stop"
        self.loop.close()

    @staticmethod
    async def _cancel_rest() -> None:
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*rest, return_exceptions=True), timeout=5)


class Kiosk:
    """The kiosk's side of the call: a synthetic camera, a test-tone microphone, ALSA's null
    device as the speaker and a CallPeer, on a KioskLoop."""

    def __init__(
        self, base_url: str, credentials: CallCredentials, pre_encoded: bool = False
    ) -> None:
        self._aio = KioskLoop()
        self.pre_encoded = pre_encoded
        self.camera: CameraSource | None = None
        self.microphone: MutableAudioTrack | None = None
        self.speakers = Speakers("alsa:null")
        self.peer: CallPeer | None = None
        self.run_task: asyncio.Future[str] | None = None
        try:
            self._aio.run(self._start(base_url, credentials))
        except BaseException:
            self.close()
            raise

    async def _start(self, base_url: str, credentials: CallCredentials) -> None:
        camera: CameraSource = SyntheticCamera(640, 480, fps=15)
        if self.pre_encoded:  # H.264 packets, as the Pi's hardware encoder gives them
            camera = EncodingCamera(camera, fps=15)
        self.camera = camera
        self.microphone = MutableAudioTrack(ToneTrack())
        self.peer = await join(
            base_url,
            credentials,
            camera.call_track(),
            audio=self.microphone,
            on_audio=self.speakers.play,
            proxy=None,
        )
        self.run_task = asyncio.ensure_future(self.peer.run())

    def stats(self) -> dict[str, PeerStats]:
        """The peer's per-participant figures, read on its own loop."""
        assert self.peer is not None
        peer = self.peer

        async def read() -> dict[str, PeerStats]:
            return peer.stats()

        return self._aio.run(read(), timeout=5)

    def close(self) -> None:
        """Leave the call, close every connection and the channel, stop the loop."""
        try:
            self._aio.run(self._stop(), timeout=15)
        finally:
            self._aio.close()

    def mute(self, on: bool) -> None:
        """The citizen's mute button."""
        assert self.microphone is not None
        self.microphone.muted = on

    async def _stop(self) -> None:
        if self.peer is not None:
            await self.peer.close()
        await asyncio.to_thread(self.speakers.close)
        if self.camera is not None:
            self.camera.close()
        if self.microphone is not None:
            self.microphone.stop()
        if self.run_task is not None:
            await asyncio.wait_for(self.run_task, timeout=5)


@pytest.mark.parametrize("pre_encoded", [False, True], ids=["raw", "pre-encoded-h264"])
def test_kiosk_aiortc_peer_and_staff_chromium_exchange_video(
    browser: Browser, app: Flask, runtime: HubRuntime, pre_encoded: bool
) -> None:
    setup_reception(runtime)
    staff = add_user(runtime, "erika")
    join_queues(runtime, "erika", "sozialamt")
    server = LiveServer(app).start()
    kiosk: Kiosk | None = None
    try:
        status, ticket = _http_json(
            "POST",
            f"{server.url}/api/v1/reception/tickets",
            {
                "name": "Kiosk-Gast",
                "category": "wohngeld",
                "description": "Antrag auf Wohngeld",
                "consent": True,
                "language": "de",
                "device": "kiosk-rathaus",
            },
        )
        assert status == 201, ticket
        token = ticket["token"]

        with browser_context(browser) as staff_ctx:
            prepare(staff_ctx)
            desk = staff_ctx.new_page()
            log_in_page(desk, server.url, staff.username, staff.password)
            desk.goto(f"{server.url}/staff/queue")
            expect(desk.get_by_text("Kiosk-Gast")).to_be_visible()
            with staff_ctx.expect_page() as call_page_info:
                desk.get_by_role("button", name="Einlassen").click()
            call = call_page_info.value
            page_log = PageLog().watch(call)
            call.wait_for_url("**/call/p-*", timeout=5000)

            _wait_for(
                lambda: (
                    _http_json("GET", f"{server.url}/api/v1/reception/tickets/{token}")[1]["status"]
                    == "serving"
                ),
                5,
                "the ticket to be admitted",
            )
            status, body = _http_json("POST", f"{server.url}/api/v1/reception/tickets/{token}/call")
            assert status == 201, body
            credentials = CallCredentials.from_json(body)
            kiosk = live = Kiosk(server.url, credentials, pre_encoded)

            # Staff see the kiosk's synthetic camera, playing, at its full size.
            try:
                call.wait_for_function(
                    "() => [...document.querySelectorAll('video[data-participant]')]"
                    ".some((v) => v.videoWidth > 0)",
                    timeout=MEDIA_SECONDS * 1000,
                )
            except Exception:
                pytest.fail(f"no kiosk video on the staff page; {page_log}; {kiosk.stats()}")
            assert call.evaluate(REMOTE_VIDEO_PLAYS) is True
            assert call.evaluate(REMOTE_VIDEO_SIZE) == [640, 480]
            # A pre-encoded picture travels as H.264 (the only codec the kiosk offers then).
            expected_codec = "video/H264" if pre_encoded else "video/VP8"
            assert call.evaluate(VIDEO_CODECS) == [expected_codec]
            expect(call.locator("#call-status")).to_have_text(
                "Im Gespräch", timeout=MEDIA_SECONDS * 1000
            )

            # The kiosk receives the staff's fake camera (and their microphone).
            def staff_video() -> PeerStats | None:
                seen = [s for s in live.stats().values() if s.video_frames > 10]
                return seen[0] if seen else None

            received = _wait_for(staff_video, MEDIA_SECONDS, "> 10 video frames from staff")
            assert received.name == "Erika"
            assert received.connection == "connected"
            assert received.video_size is not None
            assert _wait_for(
                lambda: next(iter(live.stats().values())).audio_frames > 0,
                MEDIA_SECONDS,
                "audio frames from staff",
            )
            # ... and plays it on its speaker (ALSA's null device here).
            _wait_for(lambda: live.speakers.frames_played() > 10, MEDIA_SECONDS, "staff's voice")

            # Staff hear the kiosk's microphone; muted, only silence arrives.
            def energy_grows(seconds: float = 1.0) -> float:
                before = call.evaluate(AUDIO_ENERGY)
                time.sleep(seconds)
                return call.evaluate(AUDIO_ENERGY) - before

            _wait_for(lambda: energy_grows() > 1e-4 or None, MEDIA_SECONDS, "the kiosk's tone")
            live.mute(True)
            _wait_for(lambda: energy_grows() < 1e-7 or None, MEDIA_SECONDS, "silence")
            live.mute(False)
            _wait_for(lambda: energy_grows() > 1e-4 or None, MEDIA_SECONDS, "the tone again")
            SHOTS.mkdir(exist_ok=True)
            shot = "call-staff-with-kiosk" + ("-h264" if pre_encoded else "")
            call.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
            assert page_log.errors == []

            kiosk.close()
            kiosk = None
            # The kiosk left: its tile goes from the staff's page.
            expect(call.locator("video[data-participant]")).to_have_count(
                0, timeout=MEDIA_SECONDS * 1000
            )
    finally:
        if kiosk is not None:
            kiosk.close()
        server.stop()
