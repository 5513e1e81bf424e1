"""The kiosk's call peer: parsing the browsers' signals, and perfect negotiation between two
aiortc peers over an in-memory live channel (crossing offers, a peer that waits, leaving)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from kiosk.call import CallPeer, ice_servers_from_json, parse_candidate, parse_description
from kiosk.media import SyntheticVideoTrack

MEDIA_SECONDS = 15.0
# What Chromium's RTCIceCandidate.toJSON() gives.
CHROME_CANDIDATE = {
    "candidate": "candidate:3154542451 1 udp 2122260223 192.0.2.2 54123 typ host generation 0 "
    "ufrag Fx3k network-id 1",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "Fx3k",
}


# ---- parsing ----------------------------------------------------------------------------
def test_a_chrome_candidate_becomes_an_aiortc_candidate() -> None:
    candidate = parse_candidate(CHROME_CANDIDATE)
    assert candidate is not None
    assert (candidate.ip, candidate.port, candidate.protocol, candidate.type) == (
        "192.0.2.2",
        54123,
        "udp",
        "host",
    )
    assert (candidate.foundation, candidate.component, candidate.priority) == (
        "3154542451",
        1,
        2122260223,
    )
    assert (candidate.sdpMid, candidate.sdpMLineIndex) == ("0", 0)
    srflx = parse_candidate(
        {
            "candidate": "candidate:1 1 udp 1686052607 198.51.100.7 61000 typ srflx "
            "raddr 192.0.2.2 rport 54123",
            "sdpMLineIndex": 1,
        }
    )
    assert srflx is not None
    assert (srflx.relatedAddress, srflx.relatedPort, srflx.sdpMid) == ("192.0.2.2", 54123, None)


def test_an_empty_candidate_ends_the_candidates() -> None:
    assert parse_candidate({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}) is None


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"candidate": 5, "sdpMid": "0"},
        {"candidate": "candidate:1 1 udp 1 192.0.2.2", "sdpMid": "0"},
        {"candidate": CHROME_CANDIDATE["candidate"]},
        {"candidate": CHROME_CANDIDATE["candidate"], "sdpMid": 0},
        {"candidate": CHROME_CANDIDATE["candidate"], "sdpMLineIndex": "0"},
        {"candidate": CHROME_CANDIDATE["candidate"], "sdpMLineIndex": True},
    ],
)
def test_malformed_candidates_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_candidate(data)


def test_descriptions_need_a_type_and_sdp() -> None:
    assert parse_description({"type": "offer", "sdp": "v=0\r\n"}).type == "offer"
    for bad in ({"type": "offer"}, {"type": "rollback", "sdp": "v=0"}, {"sdp": "v=0"}):
        with pytest.raises(ValueError):
            parse_description(bad)


def test_ice_servers_are_always_a_list_of_what_the_hub_named() -> None:
    assert ice_servers_from_json([]) == []  # never None: aiortc would use a public STUN
    servers = ice_servers_from_json(
        [
            {"urls": "stun:stun.example:3478"},
            {"urls": ["turn:turn.example:3478"], "username": "1:p-1", "credential": "pw"},
            {"urls": []},
            {"urls": [5]},
            {"username": "x"},
        ]
    )
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        (["stun:stun.example:3478"], None, None),
        (["turn:turn.example:3478"], "1:p-1", "pw"),
    ]


# ---- two peers over an in-memory hub ----------------------------------------------------
class MemoryHub:
    """Relays signals between channels after `delay` seconds, in order; announces state."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.channels: dict[str, MemoryChannel] = {}

    def channel(self, participant: str) -> MemoryChannel:
        made = MemoryChannel(self, participant)
        self.channels[participant] = made
        return made

    def announce(self) -> None:
        """Every channel gets a state listing everyone still in the call."""
        people = [{"id": p, "name": p.upper(), "role": "guest"} for p in self.channels]
        for channel in self.channels.values():
            channel.inbox.put_nowait(
                {"type": "state", "me": {"id": channel.participant}, "participants": people}
            )


class MemoryChannel:
    """One participant's end of a MemoryHub (the `Signalling` protocol)."""

    def __init__(self, hub: MemoryHub, participant: str) -> None:
        self.hub = hub
        self.participant = participant
        self.inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.sent: list[tuple[str, str, str | None]] = []  # (to, kind, description type)
        self.left = False
        self._outbox: asyncio.Queue[tuple[float, str, dict[str, Any]]] = asyncio.Queue()
        self._courier = asyncio.get_running_loop().create_task(self._deliver())

    async def messages(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self.inbox.get()
            if message is None:
                return
            yield message

    async def send_signal(self, to: str, kind: str, data: Mapping[str, Any]) -> None:
        self.sent.append((to, kind, data.get("type")))
        message = {"type": "signal", "from": self.participant, "kind": kind, "data": data}
        due = asyncio.get_running_loop().time() + self.hub.delay
        self._outbox.put_nowait((due, to, json.loads(json.dumps(message))))

    async def leave(self) -> None:
        self.left = True
        self.hub.channels.pop(self.participant, None)
        self.hub.announce()

    async def close(self) -> None:
        self._courier.cancel()
        self.inbox.put_nowait(None)

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, to, message = await self._outbox.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if to in self.hub.channels:
                self.hub.channels[to].inbox.put_nowait(message)

    def descriptions(self) -> list[str | None]:
        return [kind for _, signal, kind in self.sent if signal == "description"]


async def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


def _sees_video(peer: CallPeer, other: str) -> bool:
    stats = peer.stats().get(other)
    return stats is not None and stats.connection == "connected" and stats.video_frames > 5


async def _call(
    delay: float,
    offer_after: tuple[float, float],
    body: Callable[[MemoryHub, CallPeer, CallPeer], Awaitable[None]],
) -> tuple[MemoryChannel, MemoryChannel]:
    """Run peers p-a and p-b (p-b sorts greater, so it is the polite one) through `body`."""
    hub = MemoryHub(delay)
    channels = hub.channel("p-a"), hub.channel("p-b")
    tracks = SyntheticVideoTrack(fps=15), SyntheticVideoTrack(fps=15)
    peers = [
        CallPeer(channel, track, offer_after=wait)
        for channel, track, wait in zip(channels, tracks, offer_after, strict=True)
    ]
    runs = [asyncio.ensure_future(peer.run()) for peer in peers]
    try:
        hub.announce()
        await body(hub, *peers)
    finally:
        for peer in peers:
            await peer.close()
        for track in tracks:
            track.stop()
        assert await asyncio.wait_for(asyncio.gather(*runs), 5) == ["closed", "closed"]
        await asyncio.sleep(0.1)  # let the relays see their sources end
    return channels


async def _both_see_video(hub: MemoryHub, a: CallPeer, b: CallPeer) -> None:
    await _until(lambda: _sees_video(a, "p-b"), MEDIA_SECONDS, "p-a to see p-b")
    await _until(lambda: _sees_video(b, "p-a"), MEDIA_SECONDS, "p-b to see p-a")
    assert a.stats()["p-b"].name == "P-B"
    assert a.stats()["p-b"].video_size == (640, 480)


def test_crossing_offers_end_in_one_call_where_the_polite_peer_gives_way() -> None:
    # Both offer at once; each offer is still on its way when the other is made.
    a, b = asyncio.run(_call(0.3, (0.05, 0.05), _both_see_video))
    assert a.descriptions() == ["offer"]  # impolite: its offer stands
    assert b.descriptions() == ["offer", "answer"]  # polite: answered p-a's offer instead


def test_the_impolite_peer_offers_at_once() -> None:
    """call.js leaves the first offer to the impolite side (the smaller id), so p-a offers
    at once even with a long fallback delay, and p-b only answers."""

    async def body(hub: MemoryHub, a: CallPeer, b: CallPeer) -> None:
        # Garbage on the channel changes nothing.
        for junk in (
            {"type": "signal", "from": "p-b", "kind": "description", "data": {"type": "pranswer"}},
            {"type": "signal", "from": "p-b", "kind": "candidate", "data": {"candidate": 1}},
            {"type": "signal", "from": "p-b", "kind": "dance", "data": {}},
            {"type": "signal", "from": 7, "kind": "bye", "data": {}},
            {"type": "state", "participants": "everyone"},
            {"type": "error", "error": "no such participant in this call"},
        ):
            hub.channels["p-a"].inbox.put_nowait(junk)
        await _both_see_video(hub, a, b)

    a, b = asyncio.run(_call(0.0, (60.0, 60.0), body))
    assert a.descriptions() == ["offer"]
    assert b.descriptions() == ["answer"]


def test_a_participant_who_leaves_is_dropped_and_close_is_idempotent() -> None:
    async def body(hub: MemoryHub, a: CallPeer, b: CallPeer) -> None:
        await _both_see_video(hub, a, b)
        await b.close()
        await b.close()
        assert b.ended is None or b.ended == "closed"
        await _until(lambda: "p-b" not in a.stats(), 5, "p-a to drop p-b")
        assert b.stats() == {}

    a, b = asyncio.run(_call(0.0, (0.05, 60.0), body))
    assert b.left and a.left  # p-a left when _call closed it


def test_the_call_ends_when_the_hub_says_so() -> None:
    async def main() -> str:
        hub = MemoryHub()
        channel = hub.channel("p-a")
        track = SyntheticVideoTrack()
        peer = CallPeer(channel, track)
        run = asyncio.ensure_future(peer.run())
        hub.announce()
        channel.inbox.put_nowait({"type": "removed"})
        reason = await asyncio.wait_for(run, 5)
        await peer.close()
        track.stop()
        return reason

    assert asyncio.run(main()) == "removed"
