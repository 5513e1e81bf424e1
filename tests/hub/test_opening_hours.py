"""Opening hours: schedule parsing, and rooms closing and opening at boundaries by themselves."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from hub.errors import ValidationError
from hub.runtime import HubRuntime
from hub.schedule import Schedule, parse_day, schedule_from_form
from protocol import topics
from protocol.payloads import RoomStatus
from tests.conftest import create_room
from tests.support.clock import ManualClock
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt import Watcher

BERLIN = ZoneInfo("Europe/Berlin")


def test_parse_day_sorts_ranges() -> None:
    assert parse_day("13:00-16:00, 08:00-12:00", "hours_mon") == (
        (time(8), time(12)),
        (time(13), time(16)),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("8-12", "is not a range"),
        ("25:00-26:00", "is not a valid time"),
        ("12:00-08:00", "ends before it starts"),
        ("08:00-08:00", "ends before it starts"),
        ("08:00-12:00, 11:00-14:00", "overlap"),
        ("08:60-09:00", "is not a valid time"),
    ],
)
def test_impossible_day_is_rejected_naming_the_field(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_day(text, "hours_tue")
    assert err.value.field == "hours_tue"
    assert reason in err.value.message


def test_closed_days_must_be_dates() -> None:
    with pytest.raises(ValidationError) as err:
        schedule_from_form({"closed_days": "2026-12-24\n24.12.2026"})
    assert err.value.field == "closed_days"


def test_schedule_is_open_in_local_time_and_on_closed_days() -> None:
    schedule = Schedule(
        weekly={"wed": ((time(8), time(12)),)}, closed_days=frozenset({date(2026, 12, 2)})
    )
    # 07:30 UTC is 08:30 in Berlin (winter time).
    assert schedule.is_open(datetime(2026, 11, 25, 7, 30, tzinfo=UTC), BERLIN)
    assert not schedule.is_open(datetime(2026, 11, 25, 6, 30, tzinfo=UTC), BERLIN)
    assert not schedule.is_open(datetime(2026, 11, 25, 11, 0, tzinfo=UTC), BERLIN)  # 12:00 local
    assert not schedule.is_open(datetime(2026, 12, 2, 8, 0, tzinfo=UTC), BERLIN)  # closed day
    # Summer time: 06:30 UTC is 08:30 in Berlin.
    summer = Schedule(weekly={"wed": ((time(8), time(12)),)})
    assert summer.is_open(datetime(2026, 7, 1, 6, 30, tzinfo=UTC), BERLIN)
    nxt = schedule.next_opening(datetime(2026, 11, 25, 11, 0, tzinfo=UTC), BERLIN)
    assert nxt == datetime(2026, 12, 9, 8, 0, tzinfo=BERLIN)  # Dec 2 is a closed day


def test_schedule_round_trips_through_json() -> None:
    schedule = schedule_from_form(
        {
            "hours_mon": "08:00-12:00, 13:00-16:00",
            "hours_fri": "08:00-12:00",
            "closed_days": "2026-12-24, 2026-12-31",
        }
    )
    assert Schedule.from_json(schedule.to_json()) == schedule
    assert schedule.format_day("mon") == "08:00-12:00, 13:00-16:00"


def test_room_turns_closed_at_boundary_and_back(
    mosquitto: Mosquitto,
    admin_client: tuple[FlaskClient, str],
    runtime: HubRuntime,
    clock: ManualClock,
) -> None:
    """The background ticker (0.2 s here) notices the boundary; nobody calls it by hand."""
    client, token = admin_client
    # Wednesday 2026-11-25; the clock stands at 10:00 Berlin time.
    create_room(
        client,
        token,
        "buergerbuero-1",
        opening_hours={"weekly": {"wed": ["08:00-10:30", "13:00-16:00"]}},
    )
    topic = topics.room_status("default", "buergerbuero-1")
    with Watcher(mosquitto.url, topic) as live:
        first = RoomStatus.parse(live.wait(lambda m: True).payload)
        assert first.state == "free"
        clock.set(datetime(2026, 11, 25, 9, 30, 0, tzinfo=UTC))  # 10:30 local: closes
        closed = RoomStatus.parse(
            live.wait(lambda m: RoomStatus.parse(m.payload).state == "closed", timeout=3).payload
        )
        assert closed.seq > first.seq
        assert closed.since == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
        # Staff cannot check in to a closed room.
        refused = client.post(
            "/api/v1/rooms/buergerbuero-1/checkin", headers={"X-CSRFToken": token}
        )
        assert refused.status_code == 409
        clock.set(datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC))  # 13:00 local: opens
        reopened = RoomStatus.parse(
            live.wait(lambda m: RoomStatus.parse(m.payload).seq > closed.seq, timeout=3).payload
        )
        assert reopened.state == "free"
    assert client.get("/api/v1/rooms/buergerbuero-1").get_json()["open"] is True
