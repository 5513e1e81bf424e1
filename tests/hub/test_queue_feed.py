"""Queue events reach each waiting citizen only when their own place or ticket changed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask

from hub.live import LiveFeed, Subscription
from hub.queue_feed import QUEUE_TOPIC, QueueFeed, ticket_topic
from hub.runtime import HubRuntime
from tests.conftest import PASSWORD, Account, add_user, log_in
from tests.support.reception import join_queues, setup_reception

WAIT = 10.0


def create(app: Flask, name: str) -> tuple[str, str]:
    """A ticket through the kiosk API; returns (public id, token)."""
    answer = app.test_client().post(
        "/api/v1/reception/tickets",
        json={"name": name, "category": "wohngeld", "consent": True},
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body = answer.get_json()
    return body["ticket"], body["token"]


def next_event(sub: Subscription, timeout: float = WAIT) -> dict[str, Any]:
    """The next event of `sub`, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = sub.get(timeout=0.1)
        if event is not None:
            return event
    raise AssertionError("no event arrived")


def staff_sees(sub: Subscription, *refs: str) -> None:
    """Wait until staff nudges have named all `refs`; earlier bursts may come first."""
    missing = set(refs)
    deadline = time.monotonic() + WAIT
    while missing and time.monotonic() < deadline:
        missing -= set(next_event(sub, deadline - time.monotonic())["refs"])
    assert not missing, f"staff never heard of {missing}"


def quiet(sub: Subscription, seconds: float = 0.5) -> bool:
    """Whether `sub` stays without events for `seconds`."""
    return sub.get(timeout=seconds) is None


@pytest.fixture
def lobby(app: Flask, runtime: HubRuntime) -> tuple[str, str]:
    """Anna and then Ben wait for the Sozialamt."""
    setup_reception(runtime)
    with runtime.live.subscribe(QUEUE_TOPIC) as staff:
        anna, ben = create(app, "Anna")[0], create(app, "Ben")[0]
        # Their own arrivals travel over MQTT: the tests start once both are through.
        staff_sees(staff, anna, ben)
    return anna, ben


def test_a_newcomer_wakes_only_staff_and_themselves(
    app: Flask, runtime: HubRuntime, lobby: tuple[str, str]
) -> None:
    anna, ben = lobby
    live = runtime.live
    with (
        live.subscribe(QUEUE_TOPIC) as staff,
        live.subscribe(ticket_topic(anna)) as anna_feed,
        live.subscribe(ticket_topic(ben)) as ben_feed,
    ):
        # A citizen who starts listening hears their place with the next burst.
        warm_up = create(app, "Warm-up")[0]
        assert next_event(anna_feed)["place"] == [1, None]
        assert next_event(ben_feed)["place"] == [2, None]
        staff_sees(staff, warm_up)
        carla = create(app, "Carla")[0]
        staff_sees(staff, carla)
        # Anna and Ben keep their places behind nobody new: they hear nothing.
        assert quiet(anna_feed) and quiet(ben_feed)


def test_an_admission_moves_everybody_behind(
    app: Flask, runtime: HubRuntime, lobby: tuple[str, str]
) -> None:
    anna, ben = lobby
    add_user(runtime, "erika")
    join_queues(runtime, "erika", "sozialamt")
    erika = app.test_client()
    csrf = log_in(erika, Account("erika", PASSWORD))
    with (
        runtime.live.subscribe(ticket_topic(anna)) as anna_feed,
        runtime.live.subscribe(ticket_topic(ben)) as ben_feed,
    ):
        create(app, "Warm-up")
        next_event(anna_feed), next_event(ben_feed)
        answer = erika.post(
            f"/api/v1/queue/{anna}/admit",
            json={"room": "sozialamt-1"},
            headers={"X-CSRFToken": csrf},
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert next_event(anna_feed) == {"type": "queue", "own": True, "place": None}
        assert next_event(ben_feed) == {"type": "queue", "own": False, "place": [1, None]}


def test_a_burst_of_events_costs_one_computation() -> None:
    live = LiveFeed()
    computed: list[int] = []

    def places() -> dict[str, tuple[int, int | None]]:
        computed.append(1)
        return {"t-a": (1, 3), "t-b": (2, 6)}

    feed = QueueFeed(live, places)
    with live.subscribe(ticket_topic("t-b")) as sub:
        for n in range(100):  # queued before the worker runs: one burst
            feed.push("queue", f"t-new-{n}")
        feed.start()
        try:
            assert next_event(sub) == {"type": "queue", "own": False, "place": [2, 6]}
            assert quiet(sub)
        finally:
            feed.stop()
    assert len(computed) == 1


def test_nobody_listening_computes_nothing() -> None:
    live = LiveFeed()
    computed: list[int] = []

    def places() -> dict[str, tuple[int, int | None]]:
        computed.append(1)
        return {}

    feed = QueueFeed(live, places)
    feed.deliver([("queue", "t-a"), ("queue", "t-b")])
    assert computed == []
    with live.subscribe(ticket_topic("t-z")) as sub:
        feed.deliver([("queue", "t-z")])
        assert next_event(sub) == {"type": "queue", "own": True, "place": None}
    assert computed == [1]
