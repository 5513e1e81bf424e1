"""The display's board: what it may show, and when it must say it does not know."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from display.model import Reason, RoomBoard, Shown
from display.texts import ICONS, WORDS, room_text, waiting_text
from protocol import topics
from protocol.payloads import HubState, RoomState, RoomStatus
from tests.support.clock import ManualClock

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SITE = "default"
STATUS = topics.room_status(SITE, "raum-1")
HUB = topics.hub_state(SITE)


def status(state: str = "free", seq: int = 1, updated: datetime = T0, **extra: object) -> bytes:
    fields: dict[str, object] = {
        "room": "raum-1",
        "name": "Raum 1",
        "state": RoomState(state),
        "occupants": 1 if state == "busy" else 0,
        "waiting": 0,
        "since": T0 - timedelta(minutes=5),
        "seq": seq,
        "updated": updated,
        "ttl": 90,
        **extra,
    }
    return RoomStatus(**fields).to_json()  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def board(clock: ManualClock) -> RoomBoard:
    board = RoomBoard(SITE, ["raum-1", "raum-2"], clock.now)
    board.set_connected(True)
    board.feed(HUB, HubState("online", "1").to_json())
    return board


def shown(board: RoomBoard, room: str = "raum-1") -> tuple[Shown, Reason | None]:
    view = board.view().room(room)
    return view.shown, view.reason


def test_nothing_known_until_a_status_arrives(clock: ManualClock) -> None:
    board = RoomBoard(SITE, ["raum-1"], clock.now)
    assert shown(board) == (Shown.UNKNOWN, Reason.BROKER_LOST)
    board.set_connected(True)
    assert shown(board) == (Shown.UNKNOWN, Reason.NO_STATUS)
    assert board.view().room("raum-1").name == "raum-1"
    assert board.feed(STATUS, status("busy"))
    view = board.view().room("raum-1")
    assert (view.shown, view.name, view.since) == (Shown.BUSY, "Raum 1", T0 - timedelta(minutes=5))


def test_subscriptions_are_the_hub_state_and_each_room() -> None:
    board = RoomBoard(SITE, ["raum-1", "raum-2"], lambda: T0)
    assert board.subscriptions() == [
        HUB,
        STATUS,
        topics.room_status(SITE, "raum-2"),
    ]


def test_stale_after_ttl(board: RoomBoard, clock: ManualClock) -> None:
    board.feed(STATUS, status("free"))
    clock.advance(seconds=90)
    assert shown(board) == (Shown.FREE, None)  # exactly ttl old is still fresh
    clock.advance(seconds=1)
    assert shown(board) == (Shown.UNKNOWN, Reason.STALE)
    # A republish (same seq, fresh updated) makes it current again.
    assert board.feed(STATUS, status("free", updated=clock.now()))
    assert shown(board) == (Shown.FREE, None)


def test_status_from_the_future_is_not_trusted(board: RoomBoard, clock: ManualClock) -> None:
    board.feed(STATUS, status("free", updated=T0 + timedelta(seconds=91)))
    assert shown(board) == (Shown.UNKNOWN, Reason.CLOCK)
    clock.advance(seconds=2)
    assert shown(board) == (Shown.FREE, None)


def test_older_seq_is_ignored(board: RoomBoard) -> None:
    assert board.feed(STATUS, status("busy", seq=5))
    assert not board.feed(STATUS, status("free", seq=4, updated=T0 + timedelta(seconds=30)))
    assert shown(board) == (Shown.BUSY, None)
    # A duplicate (same seq, not fresher) changes nothing either.
    assert not board.feed(STATUS, status("busy", seq=5))
    assert board.feed(STATUS, status("free", seq=6))
    assert shown(board) == (Shown.FREE, None)


def test_hub_offline_means_unknown_until_the_hub_vouches_again(board: RoomBoard) -> None:
    board.feed(STATUS, status("busy", seq=3))
    board.feed(HUB, HubState.offline_json())
    assert shown(board) == (Shown.UNKNOWN, Reason.HUB_OFFLINE)
    board.feed(HUB, HubState("online").to_json())
    # Online again, but the old status is not confirmed by the new hub process yet.
    assert shown(board) == (Shown.UNKNOWN, Reason.UNCONFIRMED)
    assert board.feed(STATUS, status("busy", seq=3))  # republished: same seq confirms
    assert shown(board) == (Shown.BUSY, None)


def test_broker_lost_means_unknown_until_a_status_arrives_again(board: RoomBoard) -> None:
    board.feed(STATUS, status("free", seq=7))
    board.set_connected(False)
    assert shown(board) == (Shown.UNKNOWN, Reason.BROKER_LOST)
    board.set_connected(True)
    assert shown(board) == (Shown.UNKNOWN, Reason.UNCONFIRMED)
    assert not board.feed(STATUS, status("busy", seq=6))  # an older seq confirms nothing
    assert shown(board) == (Shown.UNKNOWN, Reason.UNCONFIRMED)
    assert board.feed(STATUS, status("free", seq=7))  # the retained copy
    assert shown(board) == (Shown.FREE, None)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"v":1}',
        json.dumps({**json.loads(status("busy", seq=9)), "state": "party"}).encode(),
        json.dumps({**json.loads(status("busy", seq=9)), "seq": "9"}).encode(),
        json.dumps({**json.loads(status("busy", seq=9)), "room": "raum-2"}).encode(),
        json.dumps({**json.loads(status("busy", seq=9)), "updated": "yesterday"}).encode(),
        json.dumps({**json.loads(status("busy", seq=9)), "name": "x" * 20000}).encode(),
        b"{" * 100000,
    ],
    ids=[
        "text",
        "bad-utf8",
        "array",
        "missing-fields",
        "unknown-state",
        "seq-as-string",
        "other-room",
        "bad-time",
        "oversized",
        "deep-nesting",
    ],
)
def test_malformed_status_keeps_the_last_good_state(
    board: RoomBoard, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    board.feed(STATUS, status("free", seq=2))
    assert not board.feed(STATUS, payload)
    assert shown(board) == (Shown.FREE, None)
    assert "ignored malformed payload" in caplog.text


def test_malformed_hub_state_keeps_the_last_good_state(board: RoomBoard) -> None:
    board.feed(STATUS, status("free"))
    board.feed(HUB, HubState.offline_json())
    assert not board.feed(HUB, b'{"state":"maybe"}')
    assert shown(board) == (Shown.UNKNOWN, Reason.HUB_OFFLINE)


def test_deleted_room_and_foreign_topics(board: RoomBoard) -> None:
    board.feed(STATUS, status("busy"))
    other_site = topics.room_status("elsewhere", "raum-1")
    assert not board.feed(other_site, status("free", seq=99))
    assert not board.feed(topics.room_status(SITE, "raum-9"), status("free", seq=99))
    assert not board.feed("some/other/topic", b"{}")
    assert shown(board) == (Shown.BUSY, None)
    assert board.feed(STATUS, b"")  # the hub cleared the retained status: room deleted
    assert shown(board) == (Shown.UNKNOWN, Reason.NO_STATUS)


def test_words_and_icons_cover_every_state() -> None:
    for language in ("de", "en"):
        words = WORDS[language]
        assert set(words) == set(Shown)
        assert len(set(words.values())) == len(Shown)
    assert WORDS["de"][Shown.DND] == "BITTE NICHT STÖREN"
    assert WORDS["en"][Shown.UNKNOWN] == "STATUS UNKNOWN"
    assert len(set(ICONS.values())) == len(Shown)  # colour is never the only signal
    assert waiting_text(1, "de") == "1 Person wartet"
    assert waiting_text(3, "de") == "3 Personen warten"
    assert waiting_text(0, "en") == ""


def test_room_text_in_local_time(board: RoomBoard, clock: ManualClock) -> None:
    from zoneinfo import ZoneInfo

    board.feed(STATUS, status("busy"))
    text = room_text(board.view().room("raum-1"), "de", ZoneInfo("Europe/Berlin"), clock.now())
    assert (text.word, text.since, text.icon) == ("BESETZT", "seit 09:55", "no-entry")
    clock.advance(days=1)
    board.feed(STATUS, status("busy", updated=clock.now()))
    text = room_text(board.view().room("raum-1"), "de", ZoneInfo("Europe/Berlin"), clock.now())
    assert text.since == "seit 25.11. 09:55"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    topic=st.sampled_from([STATUS, HUB, topics.room_status(SITE, "raum-2")]),
    payload=st.one_of(st.binary(max_size=20000), st.text(max_size=2000).map(str.encode)),
)
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    board = RoomBoard(SITE, ["raum-1", "raum-2"], lambda: T0)
    board.set_connected(True)
    board.feed(STATUS, status("busy", seq=3))
    board.feed(topic, payload)
    view = board.view()
    assert view.room("raum-1").shown in (Shown.BUSY, Shown.UNKNOWN)
    if topic == STATUS and payload:
        assert view.room("raum-1").shown == Shown.BUSY  # junk never replaces a good state


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["v", "room", "name", "state", "occupants", "waiting", "since", "seq", "updated", "ttl"]
        ),
        _json_values,
    )
)
def test_json_objects_with_wrong_fields_never_raise(fields: dict[str, object]) -> None:
    good = json.loads(status("busy", seq=3))
    payload = json.dumps({**good, **fields}).encode()
    board = RoomBoard(SITE, ["raum-1"], lambda: T0)
    board.set_connected(True)
    board.feed(STATUS, status("busy", seq=3))
    board.feed(STATUS, payload)
    board.feed(HUB, payload)
    assert board.view().room("raum-1").shown in set(Shown)
