"""The kiosk in a call: one aiortc peer connection per other participant.

The browsers (``hub/static/call.js``) use *perfect negotiation*: each side creates an offer
whenever it needs one, and when two offers cross, the "polite" side (the one whose
participant id sorts greater) gives way. `CallPeer` plays by the same rule so that it
interoperates with call.js whatever the ids are:

- every offer is answered (aiortc's answer already lists all its ICE candidates, so the
  kiosk never trickles its own);
- the kiosk only offers itself when no offer came within `offer_after` seconds of
  meeting a participant (a browser that waits, or an offer lost on the way);
- when offers cross, an impolite kiosk ignores the browser's offer (the browser answers
  the kiosk's), and a polite kiosk gives up its own offer. aiortc cannot roll a
  description back, so the polite kiosk starts over with a fresh peer connection;
- the browser's trickled candidates are parsed with `aiortc.sdp.candidate_from_sdp`, and
  held back until a remote description is set.

A peer connection is closed when it fails (and a fresh one waits for the browser's ICE
restart offer), when its participant leaves or says "bye", and at `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.exceptions import (
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
)
from aiortc.sdp import candidate_from_sdp

from kiosk.media import FrameCounter
from kiosk.signalling import (
    SIGNAL_KINDS,
    CallCredentials,
    Signalling,
    SignallingError,
    connect,
)

log = logging.getLogger(__name__)

OFFER_AFTER = 2.0  # seconds to wait for the browser's offer before offering ourselves
# What aiortc and the hub raise when a description or candidate cannot be applied or sent.
NEGOTIATION_ERRORS = (
    ValueError,
    InternalError,
    InvalidAccessError,
    InvalidStateError,
    OperationError,
    SignallingError,
)


def ice_servers_from_json(servers: Sequence[Mapping[str, Any]]) -> list[RTCIceServer]:
    """The hub's RTCIceServer dicts as aiortc objects; malformed entries are logged and skipped.

    Always returns a list, possibly empty: aiortc falls back to a public STUN server when
    given None, and a kiosk must only use the servers its hub names.
    """
    result: list[RTCIceServer] = []
    for server in servers:
        urls = server.get("urls")
        if isinstance(urls, str):
            urls = [urls]
        if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
            log.warning("ignored an ICE server without string urls: %r", server)
            continue
        username, credential = server.get("username"), server.get("credential")
        result.append(
            RTCIceServer(
                urls=urls,
                username=username if isinstance(username, str) else None,
                credential=credential if isinstance(credential, str) else None,
            )
        )
    return result


def parse_candidate(data: Mapping[str, Any]) -> RTCIceCandidate | None:
    """A browser's ``RTCIceCandidate.toJSON()`` as aiortc's candidate.

    Returns None for the end-of-candidates marker (an empty ``candidate``); raises
    ValueError for anything malformed.
    """
    text = data.get("candidate")
    if not isinstance(text, str):
        raise ValueError("candidate must be a string")
    text = text.strip().removeprefix("candidate:")
    if not text:
        return None
    mid, index = data.get("sdpMid"), data.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise ValueError("sdpMid must be a string")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise ValueError("sdpMLineIndex must be an integer")
    if mid is None and index is None:
        raise ValueError("a candidate needs sdpMid or sdpMLineIndex")
    if len(text.split()) < 8:
        raise ValueError(f"not an ICE candidate: {text!r}")
    candidate = candidate_from_sdp(text)
    candidate.sdpMid = mid
    candidate.sdpMLineIndex = index
    return candidate


def parse_description(data: Mapping[str, Any]) -> RTCSessionDescription:
    """A browser's ``RTCSessionDescription.toJSON()``; raises ValueError if malformed."""
    sdp, kind = data.get("sdp"), data.get("type")
    if kind not in ("offer", "answer") or not isinstance(sdp, str) or not sdp:
        raise ValueError("a description needs type offer or answer and an sdp string")
    return RTCSessionDescription(sdp=sdp, type=kind)


async def _close_pc(pc: RTCPeerConnection) -> None:
    """Close `pc` and stop its local tracks (relay subscriptions end with them)."""
    tracks = [sender.track for sender in pc.getSenders() if sender.track is not None]
    await pc.close()
    for track in tracks:
        track.stop()


@dataclass(frozen=True)
class PeerStats:
    """What the kiosk knows about its connection to one other participant."""

    participant: str
    name: str
    connection: str  # RTCPeerConnection.connectionState
    video_frames: int  # frames received so far
    video_fps: float  # frames received in the last second
    video_size: tuple[int, int] | None
    audio_frames: int


class _Link:
    """The connection to one other participant; only its worker task touches `pc`."""

    def __init__(self, remote: str, polite: bool) -> None:
        self.remote = remote
        self.polite = polite
        self.name = ""
        self.pc: RTCPeerConnection | None = None
        self.inbox: asyncio.Queue[tuple[str, Mapping[str, Any]]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.pending: list[RTCIceCandidate | None] = []
        self.counters: list[FrameCounter] = []

    def stats(self) -> PeerStats:
        """Connection state and what was received over this link so far."""
        video = [c for c in self.counters if c.kind == "video"]
        sizes = [c.size for c in video if c.size is not None]
        return PeerStats(
            participant=self.remote,
            name=self.name,
            connection=self.pc.connectionState if self.pc is not None else "closed",
            video_frames=sum(c.frames for c in video),
            video_fps=sum(c.rate() for c in video if c.running),
            video_size=sizes[-1] if sizes else None,
            audio_frames=sum(c.frames for c in self.counters if c.kind == "audio"),
        )


class CallPeer:
    """Takes part in a call as one participant, sending `source` (and `audio`) to everyone else.

    `run()` follows the live channel until the call ends for us; `close()` (idempotent)
    leaves the call, closes every peer connection and the channel. The caller owns
    `source` and `audio` and stops them after `close()`. `on_frame(participant, frame)`
    (optional) sees every video frame received, e.g. to show it; `on_audio(participant,
    frame)` every audio frame, e.g. to play it. Without `audio` the kiosk only listens.
    Usable as ``async with``.
    """

    def __init__(
        self,
        signalling: Signalling,
        source: MediaStreamTrack,
        *,
        audio: MediaStreamTrack | None = None,
        ice_servers: Sequence[Mapping[str, Any]] = (),
        offer_after: float = OFFER_AFTER,
        on_frame: Callable[[str, Any], None] | None = None,
        on_audio: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.me = signalling.participant
        self._on_frame = on_frame
        self._on_audio = on_audio
        self._audio = audio
        self.ended: str | None = None  # "ended", "removed" or "closed" once over
        self._signalling = signalling
        self._source = source
        self._relay = MediaRelay()
        self._ice_servers = ice_servers_from_json(ice_servers)
        self._offer_after = offer_after
        self._links: dict[str, _Link] = {}
        self._closed = False

    async def __aenter__(self) -> CallPeer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- the live channel -------------------------------------------------------------
    async def run(self) -> str:
        """Handle the hub's messages until the call ends for us; returns why it ended."""
        async for message in self._signalling.messages():
            if self._closed:
                break
            kind = message["type"]
            if kind == "state":
                await self._on_state(message)
            elif kind == "signal":
                await self._on_signal(message)
            elif kind in ("ended", "removed"):
                self.ended = kind
                break
            elif kind == "error":
                log.warning("the hub refused a message: %s", message.get("error"))
        if self.ended is None:
            self.ended = "closed"
        return self.ended

    def stats(self) -> dict[str, PeerStats]:
        """Per other participant: connection state and frames received."""
        return {remote: link.stats() for remote, link in self._links.items()}

    async def close(self, leave: bool = True) -> None:
        """Leave the call (unless `leave` is False), close every connection and the channel."""
        if self._closed:
            return
        self._closed = True
        if leave:
            await self._signalling.leave()
        for remote in list(self._links):
            await self._drop(remote)
        await self._signalling.close()

    async def _on_state(self, state: Mapping[str, Any]) -> None:
        servers = state.get("ice_servers")
        if isinstance(servers, list):
            self._ice_servers = ice_servers_from_json(
                [s for s in servers if isinstance(s, Mapping)]
            )
        participants = state.get("participants")
        if not isinstance(participants, list):
            log.warning("ignored a state without a participants list")
            return
        others: dict[str, str] = {}
        for entry in participants:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                log.warning("ignored a malformed participant: %r", entry)
                continue
            if entry["id"] != self.me:
                name = entry.get("name")
                others[entry["id"]] = name if isinstance(name, str) else ""
        for remote in [r for r in self._links if r not in others]:
            await self._drop(remote)
        for remote, name in others.items():
            link = self._link(remote)
            if link is not None:
                link.name = name

    async def _on_signal(self, message: Mapping[str, Any]) -> None:
        sender, kind, data = message.get("from"), message.get("kind"), message.get("data")
        if not isinstance(sender, str) or kind not in SIGNAL_KINDS or not isinstance(data, Mapping):
            log.warning("ignored a malformed signal from %r", sender)
            return
        if sender == self.me:
            return
        if kind == "bye":
            await self._drop(sender)
            return
        link = self._link(sender)
        if link is not None:
            link.inbox.put_nowait((kind, data))

    # ---- links --------------------------------------------------------------------------
    def _link(self, remote: str) -> _Link | None:
        """The link to `remote`, made (with a fresh peer connection) on first need.

        None once the peer is closing.
        """
        link = self._links.get(remote)
        if link is None and not self._closed:
            link = _Link(remote, polite=self.me > remote)  # call.js's rule, mirrored
            link.pc = self._new_pc(link)
            link.worker = asyncio.get_running_loop().create_task(
                self._work(link), name=f"link {remote}"
            )
            # call.js leaves the first offer to the impolite side: offer at once then;
            # a polite kiosk waits for the browser's offer (and offers itself only if none comes).
            self._schedule_offer(link, 0.0 if not link.polite else None)
            self._links[remote] = link
        return link

    async def _drop(self, remote: str) -> None:
        link = self._links.pop(remote, None)
        if link is None:
            return
        if link.timer is not None:
            link.timer.cancel()
        if link.worker is not None:
            link.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.worker
        if link.pc is not None:
            await _close_pc(link.pc)
        for counter in link.counters:
            await counter.stop()
        log.info("closed the connection to %s", remote)

    def _new_pc(self, link: _Link) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=list(self._ice_servers)))
        mime = getattr(self._source, "mime", None)  # a pre-encoded track sends its codec only
        if mime is not None:
            # Packets depend on each other: the relay must not drop any (buffered).
            video = pc.addTransceiver(
                self._relay.subscribe(self._source, buffered=True), direction="sendrecv"
            )
            codecs = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in codecs if c.mimeType == mime])
        else:
            pc.addTrack(self._relay.subscribe(self._source, buffered=False))
        if self._audio is not None:
            pc.addTrack(self._relay.subscribe(self._audio, buffered=False))
        elif self._source.kind != "audio":
            pc.addTransceiver("audio", direction="recvonly")  # hear the other side

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            handler = self._on_frame if track.kind == "video" else self._on_audio
            sink = None
            if handler is not None:
                sink = lambda frame: handler(link.remote, frame)  # noqa: E731
            link.counters.append(FrameCounter(track, on_frame=sink).start())

        @pc.on("connectionstatechange")
        def on_connection_state() -> None:
            log.info("connection to %s: %s", link.remote, pc.connectionState)
            if pc.connectionState == "failed" and link.pc is pc:
                link.inbox.put_nowait(("failed", {}))

        return pc

    def _schedule_offer(self, link: _Link, delay: float | None = None) -> None:
        if link.timer is not None:
            link.timer.cancel()
        link.timer = asyncio.get_running_loop().call_later(
            self._offer_after if delay is None else delay, link.inbox.put_nowait, ("offer", {})
        )

    async def _renew(self, link: _Link) -> RTCPeerConnection:
        """Replace the link's peer connection with a fresh one (aiortc has no rollback)."""
        old = link.pc
        link.pc = self._new_pc(link)
        link.pending.clear()
        if old is not None:
            await _close_pc(old)
        return link.pc

    # ---- negotiation (on the link's worker task only) ---------------------------------
    async def _work(self, link: _Link) -> None:
        while True:
            kind, data = await link.inbox.get()
            try:
                if kind == "description":
                    await self._on_description(link, parse_description(data))
                elif kind == "candidate":
                    await self._on_candidate(link, parse_candidate(data))
                elif kind == "offer":
                    await self._offer(link)
                elif kind == "failed":
                    log.warning("the connection to %s failed; starting over", link.remote)
                    await self._renew(link)
                    self._schedule_offer(link)
            except NEGOTIATION_ERRORS as exc:
                log.warning("%s from %s not applied: %s", kind, link.remote, exc)

    async def _on_description(self, link: _Link, description: RTCSessionDescription) -> None:
        pc = link.pc
        assert pc is not None
        if description.type == "offer":
            if pc.signalingState != "stable":  # our offers crossed
                if not link.polite:
                    log.info("offers crossed with %s: waiting for its answer", link.remote)
                    return
                log.info("offers crossed with %s: answering its offer", link.remote)
                pc = await self._renew(link)
            if link.timer is not None:
                link.timer.cancel()
            await pc.setRemoteDescription(description)
            await self._flush(link)
            await pc.setLocalDescription(await pc.createAnswer())
            await self._send_description(link, pc)
        elif pc.signalingState == "have-local-offer":
            await pc.setRemoteDescription(description)
            await self._flush(link)
        else:
            log.info("ignored a stale answer from %s", link.remote)

    async def _on_candidate(self, link: _Link, candidate: RTCIceCandidate | None) -> None:
        pc = link.pc
        assert pc is not None
        if pc.remoteDescription is None:
            link.pending.append(candidate)
        else:
            await pc.addIceCandidate(candidate)

    async def _flush(self, link: _Link) -> None:
        pc = link.pc
        assert pc is not None
        pending, link.pending = link.pending, []
        for candidate in pending:
            try:
                await pc.addIceCandidate(candidate)
            except NEGOTIATION_ERRORS as exc:
                log.info("held-back candidate from %s not applied: %s", link.remote, exc)

    async def _offer(self, link: _Link) -> None:
        pc = link.pc
        assert pc is not None
        if pc.signalingState != "stable" or pc.remoteDescription is not None:
            return  # negotiation is under way or done
        log.info("no offer from %s: offering ourselves", link.remote)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send_description(link, pc)

    async def _send_description(self, link: _Link, pc: RTCPeerConnection) -> None:
        local = pc.localDescription
        await self._signalling.send_signal(
            link.remote, "description", {"type": local.type, "sdp": local.sdp}
        )


async def join(
    base_url: str,
    credentials: CallCredentials,
    source: MediaStreamTrack,
    *,
    offer_after: float = OFFER_AFTER,
    proxy: str | Literal[True] | None = True,
    audio: MediaStreamTrack | None = None,
    on_frame: Callable[[str, Any], None] | None = None,
    on_audio: Callable[[str, Any], None] | None = None,
) -> CallPeer:
    """Open the live channel for `credentials` and return a CallPeer (then call `run()`)."""
    signalling = await connect(
        base_url,
        credentials.participant,
        credentials.key,
        live_path=credentials.live,
        proxy=proxy,
    )
    return CallPeer(
        signalling,
        source,
        audio=audio,
        ice_servers=credentials.ice_servers,
        offer_after=offer_after,
        on_frame=on_frame,
        on_audio=on_audio,
    )
