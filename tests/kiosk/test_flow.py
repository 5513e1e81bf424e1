"""The kiosk's screen state machine, driven by a manual clock."""

from __future__ import annotations

import pytest

from kiosk.flow import (
    CancelTicket,
    CheckHub,
    CreateTicket,
    Flow,
    FlowTimes,
    JoinCall,
    LeaveCall,
    PrivacyReset,
    Screen,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def flow(clock: Clock) -> Flow:
    return Flow(clock, ("de", "en"), FlowTimes(inactivity=90, goodbye=10, dim=60, poll=10))


def _to_waiting(flow: Flow) -> None:
    flow.start("en")
    flow.choose_category("wohngeld")
    flow.set_name("  Ada   L. ")
    assert flow.take_ticket() == [CreateTicket("en", "wohngeld", "Ada L.")]
    assert flow.ticket_created("tok", 1, 5) == []


def test_a_whole_visit_ends_in_a_privacy_reset(flow: Flow, clock: Clock) -> None:
    assert flow.screen == Screen.ATTRACT and flow.language == "de"
    _to_waiting(flow)
    assert flow.screen == Screen.WAITING
    assert flow.view()["position"] == 1 and flow.view()["has_ticket"] is True
    assert flow.ticket_update("waiting", 0, 1) == []
    assert flow.position == 0
    assert flow.ticket_update("serving") == [JoinCall("tok")]
    assert flow.screen == Screen.CALL
    clock.advance(600)  # no touch during a call: nothing happens
    assert flow.tick() == []
    assert flow.call_ended() == [LeaveCall()]
    assert flow.screen == Screen.GOODBYE
    clock.advance(9)
    assert flow.tick() == []
    clock.advance(1)
    assert flow.tick() == [PrivacyReset()]
    assert flow.screen == Screen.ATTRACT
    view = flow.view()
    assert (view["has_ticket"], view["name"], view["category"], view["language"]) == (
        False,
        "",
        None,
        "de",
    )


def test_the_name_is_optional(flow: Flow) -> None:
    flow.start()
    flow.choose_category("ausweis")
    assert flow.take_ticket() == [CreateTicket("de", "ausweis", "")]
    assert flow.take_ticket() == []  # one request at a time


def test_the_call_button_starts_in_the_default_language(flow: Flow) -> None:
    flow.start()
    assert (flow.screen, flow.language, flow.visits) == (Screen.CONCERN, "de", 1)
    assert flow.start() == [] and flow.visits == 1


def test_an_unknown_language_is_refused(flow: Flow) -> None:
    with pytest.raises(ValueError):
        flow.start("fr")


def test_inactivity_resets_before_the_ticket(flow: Flow, clock: Clock) -> None:
    flow.start()
    clock.advance(89)
    assert flow.tick() == []
    flow.touch()
    clock.advance(89)
    assert flow.tick() == []
    clock.advance(1)
    assert flow.tick() == [PrivacyReset()]
    assert flow.screen == Screen.ATTRACT


def test_waiting_is_not_reset_by_inactivity_and_cancel_returns_the_ticket(
    flow: Flow, clock: Clock
) -> None:
    _to_waiting(flow)
    clock.advance(300)
    assert flow.tick() == []
    assert flow.cancel() == [CancelTicket("tok"), PrivacyReset()]
    assert flow.screen == Screen.ATTRACT and flow.token is None


def test_the_citizen_ends_the_call(flow: Flow) -> None:
    _to_waiting(flow)
    flow.ticket_update("serving")
    assert flow.end_call() == [LeaveCall()]
    assert flow.screen == Screen.GOODBYE


def test_staff_ending_a_waiting_ticket_says_goodbye(flow: Flow) -> None:
    _to_waiting(flow)
    assert flow.ticket_update("ended") == [LeaveCall()]
    assert flow.screen == Screen.GOODBYE


def test_a_ticket_arriving_after_a_reset_is_given_back(flow: Flow) -> None:
    flow.start()
    flow.choose_category("wohngeld")
    flow.take_ticket()
    flow.hub_down()
    assert flow.ticket_created("late", 3, 9) == [CancelTicket("late")]
    assert flow.token is None


def test_a_refused_ticket_keeps_the_screen_with_a_reason(flow: Flow) -> None:
    flow.start()
    flow.choose_category("wohngeld")
    flow.take_ticket()
    assert flow.ticket_refused("closed") == []
    assert (flow.screen, flow.busy, flow.error) == (Screen.NAME, False, "closed")


def test_back_goes_one_screen_back(flow: Flow) -> None:
    flow.start()
    flow.choose_category("wohngeld")
    flow.back()
    assert flow.screen == Screen.CONCERN
    assert flow.back() == [PrivacyReset()]
    assert flow.screen == Screen.ATTRACT


def test_attract_dims_and_motion_wakes(flow: Flow, clock: Clock) -> None:
    clock.advance(59)
    flow.tick()
    assert not flow.dimmed
    clock.advance(1)
    flow.tick()
    assert flow.dimmed
    flow.motion()
    assert not flow.dimmed


def test_attract_polls_the_hub(flow: Flow, clock: Clock) -> None:
    assert flow.tick() == [CheckHub()]
    assert flow.tick() == []
    clock.advance(10)
    assert flow.tick() == [CheckHub()]


def test_hub_down_shows_out_of_service_and_retries_with_backoff(
    clock: Clock,
) -> None:
    flow = Flow(clock, ("de", "en"), FlowTimes(retry_min=1, retry_max=4))
    flow.start("en")
    assert flow.hub_down() == [PrivacyReset()]
    assert flow.screen == Screen.OUT_OF_SERVICE
    delays = []
    for _ in range(5):
        waited = 0.0
        while flow.tick() != [CheckHub()]:
            clock.advance(0.5)
            waited += 0.5
        delays.append(waited)
        flow.hub_down()
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert flow.hub_ok({"open": True}) == [PrivacyReset()]
    assert flow.screen == Screen.ATTRACT and flow.view()["hub"] == {"open": True}
    assert flow.language == "de"


def test_hub_down_does_not_break_a_call_or_a_waiting_ticket(flow: Flow) -> None:
    _to_waiting(flow)
    assert flow.hub_down() == []
    assert flow.screen == Screen.WAITING
    flow.ticket_update("serving")
    assert flow.hub_down() == []
    assert flow.screen == Screen.CALL
