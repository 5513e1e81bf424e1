"""The kiosk's screens as a state machine: pure logic with an injected clock.

attract -> concern -> name (optional) -> waiting -> call -> goodbye -> privacy reset ->
attract. Every input (a touch, the call button, the hub's answers, the clock) is a method
call; what the kiosk must *do* comes back as a list of effects for the engine to carry out
(`CreateTicket`, `CancelTicket`, `JoinCall`, `LeaveCall`, `PrivacyReset`, `CheckHub`).
Nothing here does I/O, so every rule is unit-tested with a manual clock.

Rules:
- no touch for `inactivity` seconds on the concern or name screen resets the visit; the
  waiting screen is exempt (the citizen is waiting for staff, and touching nothing is
  right there), and so is the call;
- the attract screen dims after `dim` seconds without touch or motion;
- the goodbye screen stays `goodbye` seconds, then the privacy reset;
- when the hub cannot be reached (outside a call and a waiting ticket) the kiosk shows
  out-of-service and checks again after `retry_min`, doubling up to `retry_max`; the first
  good answer brings back the attract screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MAX_NAME = 60


class Screen(StrEnum):
    """What the citizen sees."""

    ATTRACT = "attract"
    CONCERN = "concern"
    NAME = "name"
    WAITING = "waiting"
    CALL = "call"
    GOODBYE = "goodbye"
    OUT_OF_SERVICE = "out-of-service"


@dataclass(frozen=True)
class CreateTicket:
    """Take a ticket at the hub."""

    language: str
    category: str
    name: str


@dataclass(frozen=True)
class CancelTicket:
    """Give the ticket back (the citizen left before the call)."""

    token: str


@dataclass(frozen=True)
class JoinCall:
    """Ask the hub for a seat in the call and join it."""

    token: str


@dataclass(frozen=True)
class LeaveCall:
    """Leave the call and stop its media."""


@dataclass(frozen=True)
class PrivacyReset:
    """Forget everything of the visit: ticket, page storage, cookies, cached media."""


@dataclass(frozen=True)
class CheckHub:
    """Ask the hub whether it answers (and for its open/waiting/estimate figures)."""


Effect = CreateTicket | CancelTicket | JoinCall | LeaveCall | PrivacyReset | CheckHub


@dataclass(frozen=True)
class FlowTimes:
    """Seconds the flow waits for things (see the module's rules)."""

    inactivity: float = 90.0
    goodbye: float = 10.0
    dim: float = 60.0
    retry_min: float = 1.0
    retry_max: float = 30.0
    poll: float = 10.0


class Flow:
    """The kiosk's screen state; all methods return the effects to carry out."""

    def __init__(
        self,
        clock: Callable[[], float],
        languages: tuple[str, ...] = ("de", "en"),
        times: FlowTimes | None = None,
    ) -> None:
        if not languages:
            raise ValueError("at least one language is needed")
        self._clock = clock
        self.languages = languages
        self.times = times or FlowTimes()
        self.screen = Screen.ATTRACT
        self.dimmed = False
        self.hub_figures: dict[str, Any] = {}
        self.visits = 0  # sessions started, for logs and tests
        self._retry_delay = self.times.retry_min
        self._retry_at: float | None = None
        self._poll_at = clock()
        self._clear()
        self._last_touch = clock()

    def _clear(self) -> None:
        self.language = self.languages[0]
        self.category: str | None = None
        self.name = ""
        self.token: str | None = None
        self.position: int | None = None
        self.estimate: int | None = None
        self.busy = False
        self.error: str | None = None
        self._goodbye_at: float | None = None

    # ---- touches and hardware ---------------------------------------------------------
    def touch(self) -> list[Effect]:
        """Any touch on the screen: the citizen is still there."""
        self._last_touch = self._clock()
        self.dimmed = False
        return []

    def motion(self) -> list[Effect]:
        """Someone walks up: wake the dimmed screen."""
        self._last_touch = self._clock()
        self.dimmed = False
        return []

    def start(self, language: str | None = None) -> list[Effect]:
        """Begin a visit (a language chosen on the attract screen, or the call button)."""
        self.touch()
        if language is not None and language not in self.languages:
            raise ValueError(f"unknown language {language!r}")
        if self.screen != Screen.ATTRACT:
            if language is not None and self.screen in (Screen.CONCERN, Screen.NAME):
                self.language = language
            return []
        self._clear()
        self.language = language or self.languages[0]
        self.screen = Screen.CONCERN
        self.visits += 1
        return []

    def set_language(self, language: str) -> list[Effect]:
        """Switch the language (on any screen; the visit keeps going)."""
        self.touch()
        if language not in self.languages:
            raise ValueError(f"unknown language {language!r}")
        self.language = language
        return []

    def choose_category(self, category: str) -> list[Effect]:
        """The concern is chosen: ask for a name (optional) next."""
        self.touch()
        if self.screen != Screen.CONCERN or not category:
            return []
        self.category = category
        self.screen = Screen.NAME
        return []

    def set_name(self, name: str) -> list[Effect]:
        """Remember the (optional) name or alias; trimmed to MAX_NAME characters."""
        self.touch()
        if self.screen == Screen.NAME:
            self.name = " ".join(name.split())[:MAX_NAME]
        return []

    def take_ticket(self) -> list[Effect]:
        """Queue up: the engine creates the ticket and answers with ticket_created()."""
        self.touch()
        if self.screen != Screen.NAME or self.busy or self.category is None:
            return []
        self.busy = True
        self.error = None
        return [CreateTicket(self.language, self.category, self.name)]

    def back(self) -> list[Effect]:
        """One screen back (name -> concern -> attract)."""
        self.touch()
        if self.screen == Screen.NAME and not self.busy:
            self.screen = Screen.CONCERN
        elif self.screen == Screen.CONCERN:
            return self._reset()
        return []

    def cancel(self) -> list[Effect]:
        """The citizen gives up: the ticket (if any) goes back, then the privacy reset."""
        self.touch()
        if self.screen in (Screen.CONCERN, Screen.NAME, Screen.WAITING):
            effects: list[Effect] = [CancelTicket(self.token)] if self.token else []
            return effects + self._reset()
        return []

    def end_call(self) -> list[Effect]:
        """The citizen ends the call: goodbye."""
        self.touch()
        if self.screen == Screen.CALL:
            return self._goodbye()
        return []

    # ---- answers from the hub ---------------------------------------------------------
    def ticket_created(
        self, token: str, position: int | None, estimate: int | None
    ) -> list[Effect]:
        """The hub gave a ticket: wait for staff."""
        if self.screen != Screen.NAME or not self.busy:
            return [CancelTicket(token)]  # reset meanwhile: give it back at once
        self.busy = False
        self.token = token
        self.position, self.estimate = position, estimate
        self.screen = Screen.WAITING
        return []

    def ticket_refused(self, reason: str) -> list[Effect]:
        """The hub refused the ticket (closed, rate limit, bad input): say so, stay."""
        self.busy = False
        self.error = reason
        return []

    def ticket_update(
        self, status: str, position: int | None = None, estimate: int | None = None
    ) -> list[Effect]:
        """The ticket's live state: waiting (position, estimate), serving, or ended."""
        if self.token is None:
            return []
        if status == "waiting" and self.screen == Screen.WAITING:
            self.position, self.estimate = position, estimate
        elif status == "serving" and self.screen == Screen.WAITING:
            self.screen = Screen.CALL
            return [JoinCall(self.token)]
        elif status == "ended" and self.screen in (Screen.WAITING, Screen.CALL):
            return self._goodbye()
        return []

    def call_ended(self) -> list[Effect]:
        """The call ended from the other side (staff ended it, or we were removed)."""
        if self.screen == Screen.CALL:
            return self._goodbye()
        return []

    def hub_ok(self, figures: dict[str, Any] | None = None) -> list[Effect]:
        """The hub answered; out-of-service ends with a fresh attract screen."""
        if figures is not None:
            self.hub_figures = dict(figures)
        self._retry_delay = self.times.retry_min
        self._retry_at = None
        if self.screen == Screen.OUT_OF_SERVICE:
            self.screen = Screen.ATTRACT
            self._poll_at = self._clock() + self.times.poll
            return [PrivacyReset()]
        return []

    def hub_down(self) -> list[Effect]:
        """The hub did not answer: out-of-service (not during a call or a waiting ticket)."""
        now = self._clock()
        if self.screen == Screen.OUT_OF_SERVICE:
            self._retry_delay = min(self._retry_delay * 2, self.times.retry_max)
            self._retry_at = now + self._retry_delay
            return []
        if self.screen in (Screen.WAITING, Screen.CALL, Screen.GOODBYE):
            return []
        self._clear()
        self.screen = Screen.OUT_OF_SERVICE
        self.dimmed = False
        self._retry_delay = self.times.retry_min
        self._retry_at = now + self._retry_delay
        return [PrivacyReset()]

    @property
    def retry_in(self) -> float | None:
        """Seconds until the next check of an unreachable hub."""
        if self._retry_at is None:
            return None
        return max(0.0, self._retry_at - self._clock())

    # ---- time ---------------------------------------------------------------------------
    def tick(self) -> list[Effect]:
        """Let time act: inactivity, the goodbye's end, dimming and hub checks."""
        now = self._clock()
        idle = now - self._last_touch
        if self.screen == Screen.GOODBYE:
            if self._goodbye_at is not None and now >= self._goodbye_at:
                return self._reset()
        elif self.screen in (Screen.CONCERN, Screen.NAME):
            if idle >= self.times.inactivity and not self.busy:
                return self._reset()
        elif self.screen == Screen.ATTRACT:
            if idle >= self.times.dim:
                self.dimmed = True
            if now >= self._poll_at:
                self._poll_at = now + self.times.poll
                return [CheckHub()]
        elif (
            self.screen == Screen.OUT_OF_SERVICE
            and self._retry_at is not None
            and now >= self._retry_at
        ):
            self._retry_at = None  # hub_ok or hub_down sets the next step
            return [CheckHub()]
        return []

    def view(self) -> dict[str, Any]:
        """What the page draws from (no hub secrets; the token stays in Python)."""
        return {
            "screen": self.screen.value,
            "language": self.language,
            "languages": list(self.languages),
            "category": self.category,
            "name": self.name,
            "has_ticket": self.token is not None,
            "position": self.position,
            "estimate": self.estimate,
            "busy": self.busy,
            "error": self.error,
            "dimmed": self.dimmed,
            "retry_in": None if self.retry_in is None else round(self.retry_in),
            "hub": self.hub_figures,
        }

    # ---- helpers ------------------------------------------------------------------------
    def _goodbye(self) -> list[Effect]:
        self.screen = Screen.GOODBYE
        self._goodbye_at = self._clock() + self.times.goodbye
        return [LeaveCall()]

    def _reset(self) -> list[Effect]:
        self._clear()
        self.screen = Screen.ATTRACT
        self._last_touch = self._clock()
        self.dimmed = False
        return [PrivacyReset()]
