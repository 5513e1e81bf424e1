"""Call pages in real Chromium: remote video that plays, audio bytes that grow, room states
over MQTT, a small valid PDF, and a Chromium of its own that a test can freeze or kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, BrowserType, Page
from playwright.sync_api import Error as PlaywrightError

from protocol import topics
from protocol.payloads import RoomState, RoomStatus
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.mqtt import Received, Watcher

MEDIA_MS = 10_000  # upper bound for remote media to show up and play
ACTION_MS = 10_000  # upper bound for one browser action here (the test machine may be busy)
CALL_URL = "**/call/p-*"

# Installed before any page script: remembers every RTCPeerConnection the page makes, so a
# test can read WebRTC statistics and count (re)negotiated connections. call.js is unchanged.
PEER_HOOK = """
(() => {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__peerConnections) return;
  const made = [];
  window.__peerConnections = made;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      made.push(this);
    }
  };
})();
"""

# How many remote <video>s show a picture whose time moves on within half a second.
PLAYING_REMOTE_VIDEOS = """
async () => {
  const videos = [...document.querySelectorAll('video[data-participant]')]
    .filter((v) => v.videoWidth > 0);
  const before = videos.map((v) => v.currentTime);
  await new Promise((r) => setTimeout(r, 500));
  return videos.filter((v, i) => v.currentTime > before[i]).length;
}
"""
SIZED_REMOTE_VIDEOS = (
    "(n) => [...document.querySelectorAll('video[data-participant]')]"
    ".filter((v) => v.videoWidth > 0).length >= n"
)
# The sum of one field (arg: [kind, field]) over the inbound-rtp statistics of one kind
# ('audio' or 'video') of every open peer connection of the page.
INBOUND_TOTAL = """
async ([kind, field]) => {
  let total = 0;
  for (const pc of window.__peerConnections || []) {
    if (pc.connectionState === 'closed') continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === kind) total += s[field] || 0;
    });
  }
  return total;
}
"""
MEDIA_REPORT = """
() => ({
  videos: [...document.querySelectorAll('video[data-participant]')]
    .map((v) => [v.dataset.participant, v.videoWidth, v.currentTime]),
  peers: (window.__peerConnections || [])
    .map((pc) => [pc.connectionState, pc.signalingState, pc.iceConnectionState]),
  status: document.getElementById('call-status')?.textContent,
})
"""
PEER_STATES = """
() => (window.__peerConnections || []).map((pc) => pc.connectionState)
"""


def prepare(context: BrowserContext) -> BrowserContext:
    """Install the peer-connection hook in every page the context opens from now on, and
    allow each action ACTION_MS (WebRTC pages keep a busy machine busier)."""
    context.add_init_script(script=PEER_HOOK)
    context.set_default_timeout(ACTION_MS)
    return context


def wait_remote_videos(page: Page, count: int = 1, timeout_ms: int = MEDIA_MS) -> None:
    """At least `count` remote videos have a picture and play (time advances), in time."""
    started = time.monotonic()
    try:
        page.wait_for_function(SIZED_REMOTE_VIDEOS, arg=count, timeout=timeout_ms)
    except PlaywrightError:
        raise AssertionError(
            f"{page.url}: fewer than {count} remote videos have a picture after "
            f"{timeout_ms} ms; {media_report(page)}"
        ) from None
    while True:
        playing = page.evaluate(PLAYING_REMOTE_VIDEOS)
        if playing >= count:
            return
        if (time.monotonic() - started) * 1000 > timeout_ms:
            raise AssertionError(
                f"{page.url}: {playing} of {count} remote videos play; {media_report(page)}"
            )


def media_report(page: Page) -> str:
    """What a failure message needs: remote video sizes, peer connection and call states."""
    return str(page.evaluate(MEDIA_REPORT))


def inbound_total(page: Page, kind: str, field: str) -> int:
    """Sum of `field` (e.g. bytesReceived) over the page's open inbound-rtp stats of `kind`."""
    return int(page.evaluate(INBOUND_TOTAL, [kind, field]))


def wait_audio_flowing(page: Page, timeout_ms: int = MEDIA_MS) -> tuple[int, int]:
    """Audio bytes received grow between two readings; returns (first, later) reading."""
    deadline = time.monotonic() + timeout_ms / 1000
    first = 0
    while first == 0:
        first = inbound_total(page, "audio", "bytesReceived")
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url}: no audio bytes received")
        if first == 0:
            time.sleep(0.2)
    while True:
        time.sleep(0.3)
        later = inbound_total(page, "audio", "bytesReceived")
        if later > first:
            return first, later
        if time.monotonic() > deadline:
            raise AssertionError(f"{page.url}: audio bytes stuck at {later}")


def peer_states(page: Page) -> list[str]:
    """connectionState of every RTCPeerConnection the page made (closed ones included)."""
    return list(page.evaluate(PEER_STATES))


def call_config(page: Page) -> dict[str, Any]:
    """The call page's own configuration (participant id, role, …)."""
    return json.loads(page.locator("#call-config").text_content() or "{}")


def small_pdf(text: str = "Nachweis") -> bytes:
    """A one-page PDF with a correct cross-reference table (as a real viewer expects)."""
    content = f"BT /F1 12 Tf 20 50 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


# ---- room statuses over MQTT -------------------------------------------------------------------
class RoomWatch:
    """A subscriber to one room's retained status topic; use as a context manager."""

    def __init__(self, broker_url: str, room: str, site: str = "default") -> None:
        self.room = room
        self.watcher = Watcher(broker_url, topics.room_status(site, room))

    def __enter__(self) -> RoomWatch:
        self.watcher.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.watcher.__exit__(*exc)

    def current(self, timeout: float = 5.0) -> RoomStatus:
        """The latest status received (waits for the retained one if nothing came yet)."""
        self.watcher.wait(lambda _m: True, timeout=timeout)
        return RoomStatus.parse(self.watcher.messages[-1].payload)

    def shows(self, state: RoomState, timeout: float = 5.0) -> RoomStatus:
        """The first status in `state` (retained or new); fails after `timeout` seconds."""
        try:
            found = self.watcher.wait(
                lambda m: RoomStatus.parse(m.payload).state == state, timeout=timeout
            )
        except AssertionError:
            seen = [RoomStatus.parse(m.payload).state.value for m in self.watcher.messages[-6:]]
            raise AssertionError(f"{self.room} not {state.value}; last: {seen}") from None
        return RoomStatus.parse(found.payload)

    def reaches(self, state: RoomState, *, after: float, within: float) -> float:
        """Seconds from `after` (monotonic) until a status in `state` arrived; fails if the
        first such status arrived more than `within` seconds after `after`."""

        def fits(msg: Received) -> bool:
            return msg.at >= after and RoomStatus.parse(msg.payload).state == state

        left = max(0.05, after + within - time.monotonic())
        try:
            found = self.watcher.wait(fits, timeout=left)
        except AssertionError:
            seen = [
                (round(m.at - after, 3), RoomStatus.parse(m.payload).state.value)
                for m in self.watcher.messages[-6:]
            ]
            raise AssertionError(
                f"{self.room} not {state.value} within {within}s; last (s after, state): {seen}"
            ) from None
        took = found.at - after
        assert took <= within, f"{self.room} became {state.value} after {took:.3f}s > {within}s"
        return took


# ---- a browser a test may freeze or kill ---------------------------------------------------------
@dataclass
class Victim:
    """A Chromium of its own (own user-data directory, own processes) for one participant.

    `freeze()` stops every process of it with SIGSTOP: pages stop sending anything, but the
    kernel keeps their TCP connections open, as when a device hangs or its network vanishes
    silently. `kill()` ends them with SIGKILL (the kernel then closes the connections).
    """

    folder: Path
    context: BrowserContext

    @classmethod
    def launch(cls, browser_type: BrowserType, folder: Path) -> Victim:
        """Start the Chromium (headless, fake camera and microphone)."""
        context = browser_type.launch_persistent_context(
            str(folder),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            locale="de-DE",
            timezone_id="Europe/Berlin",
            viewport={"width": 1280, "height": 800},
            timeout=30_000,
        )
        context.set_default_navigation_timeout(10_000)
        return cls(folder, prepare(context))

    def pids(self) -> list[int]:
        """Every process of this Chromium: those naming its user-data directory, and their
        descendants (zygotes, renderers, the network service)."""
        marker = f"--user-data-dir={self.folder}".encode()
        parent: dict[int, int] = {}
        roots: set[int] = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            pid = int(entry.name)
            parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
            if marker in args:
                roots.add(pid)
        found = set(roots)
        grew = True
        while grew:
            more = {pid for pid, ppid in parent.items() if ppid in found} - found
            found |= more
            grew = bool(more)
        return sorted(found)

    def _signal(self, signum: int) -> list[int]:
        hit: set[int] = set()
        for _ in range(3):  # catch processes started while we were signalling
            for pid in set(self.pids()) - hit:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
                hit.add(pid)
        return sorted(hit)

    def freeze(self) -> list[int]:
        """SIGSTOP every process; returns the pids (all verified stopped)."""
        pids = self._signal(signal.SIGSTOP)
        assert pids, f"no Chromium process found for {self.folder}"
        deadline = time.monotonic() + 5
        while running := [p for p in pids if _state(p) not in ("T", "t", "", "Z", "X")]:
            assert time.monotonic() < deadline, f"still running after SIGSTOP: {running}"
            time.sleep(0.02)
        return pids

    def kill(self) -> list[int]:
        """SIGKILL every process (stopped ones too); returns the pids."""
        return self._signal(signal.SIGKILL)

    def close(self) -> None:
        """Kill what is left, then let Playwright notice; safe after freeze() or kill()."""
        self.kill()
        with contextlib.suppress(Exception):  # the browser is gone: closing may complain
            self.context.close()


def _state(pid: int) -> str:
    """The one-letter process state from /proc ('' when the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
